"""An OpenAI-shaped server on loopback for the upstream tests: it records each request
(path, headers, JSON body), answers chat/completions and completions for `n` candidates,
whole or as server-sent events, can hold a stream open until released, and serves llama.cpp's
/tokenize and /apply-template."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.live import free_port


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), _Handler)
        self.requests: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        self.release = threading.Event()  # a held stream goes on once this is set
        self.released_before_end: bool | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, dict(self.headers), body))
        if self.path == "/tokenize":
            return self._json(200, {"tokens": list(range(len(body["content"].split())))})
        if self.path == "/apply-template":
            turns = [f"<{m['role']}> {m['content']}" for m in body["messages"]]
            return self._json(200, {"prompt": " ".join([*turns, "<assistant>"])})
        if body.get("model") == "missing":
            return self._json(404, {"error": {"message": "model 'missing' not found"}})
        if body.get("model") == "broken":
            return self._json(500, {"error": {"message": "CUDA out of memory"}})
        if body.get("tools"):
            return self._tool_call(body)
        texts = [f"reply {i} to {len(body.get('messages', []))} messages" for i in range(body["n"])]
        if not body.get("stream"):
            key = "message" if self.path == "/v1/chat/completions" else "text"
            choices = [
                {
                    "index": i,
                    key: {"role": "assistant", "content": t} if key == "message" else t,
                    "finish_reason": "stop",
                }
                for i, t in enumerate(texts)
            ]
            usage = {"prompt_tokens": 11, "completion_tokens": 5 * len(texts)}
            return self._json(200, {"choices": choices, "usage": usage})
        self._stream(texts, hold=body.get("model") == "hold")

    def _tool_call(self, body: dict[str, Any]) -> None:
        """Calls the first tool, as OpenAI does: whole, or streamed in fragments."""
        name = body["tools"][0]["function"]["name"]
        call = {"id": "call_1", "type": "function"}
        if not body.get("stream"):
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {**call, "function": {"name": name, "arguments": '{"city": "Paris"}'}}
                ],
            }
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
            return self._json(200, {"choices": [choice], "usage": {"completion_tokens": 7}})
        self._start_stream()
        first = {"index": 0, **call, "function": {"name": name, "arguments": ""}}
        for fragment in (first, {"index": 0, "function": {"arguments": '{"city": "Paris"}'}}):
            self._event({"choices": [{"index": 0, "delta": {"tool_calls": [fragment]}}]})
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _stream(self, texts: list[str], *, hold: bool) -> None:
        self._start_stream()
        words = [t.split(" ") for t in texts]
        for step in range(max(len(w) for w in words)):
            for i, w in enumerate(words):  # candidates interleaved, as vLLM sends them
                if step < len(w):
                    piece = w[step] if step == 0 else " " + w[step]
                    self._event({"choices": [{"index": i, "delta": {"content": piece}}]})
            if hold and step == 0:
                self.server.released_before_end = self.server.release.wait(10)
        for i in range(len(texts)):
            self._event({"choices": [{"index": i, "delta": {}, "finish_reason": "stop"}]})
        self._event({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 13}})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _event(self, data: dict[str, Any]) -> None:
        self._chunk(f"data: {json.dumps(data)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, data: dict[str, Any]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
