"""Chat through an OpenAI-compatible server (vLLM, llama.cpp server, Ollama, LocalAI, a hosted
API): the `openai-upstream` profile kind. The profile is admin configuration (models.json);
no user-supplied URL is ever requested."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Generator, Iterator, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import ModelProfile
from pixelforge.models.llm import (
    FEATURE_JSON,
    FEATURE_TOOLS,
    Completion,
    Delta,
    FinishReason,
    Message,
    Sampling,
    require_supported,
)
from pixelforge.models.llm_options import sampling_from

log = logging.getLogger(__name__)

OPENAI_UPSTREAM = "openai-upstream"
DEFAULT_CONTEXT = 4096
DEFAULT_TIMEOUT_S = 300.0
# `extra["tokenizer"]`: how count_tokens asks the server; absent = estimate.
LLAMA_CPP_SERVER = "llama.cpp"
# Estimate when the server cannot count: ~4 characters a token in English text (the usual
# rule of thumb for BPE vocabularies), 4 tokens of role markers per message and 3 for the
# opened assistant turn (what ChatML-style templates add).
_CHARS_PER_TOKEN = 4
_PER_MESSAGE = 4
_REPLY_PRIMER = 3


def check_upstream(profile: ModelProfile) -> None:
    """Concise errors for an openai-upstream profile written by hand."""
    extra = profile.extra
    base = extra.get("base_url")
    parts = urlsplit(base) if isinstance(base, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r}: an {OPENAI_UPSTREAM} profile needs extra.base_url, the "
            "server's OpenAI API root such as http://127.0.0.1:8000/v1",
        )
    context = extra.get("context_length", DEFAULT_CONTEXT)
    if not isinstance(context, int) or isinstance(context, bool) or context < 1:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r}: extra.context_length must be a positive integer",
        )
    if extra.get("tokenizer") not in (None, LLAMA_CPP_SERVER):
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r}: extra.tokenizer may only be {LLAMA_CPP_SERVER!r} (a "
            "llama.cpp server counts tokens with /tokenize); leave it out to estimate",
        )


class UpstreamChat:
    """A ChatEngine that forwards to `extra.base_url`. Thread-safe (httpx's client is)."""

    features = frozenset({FEATURE_JSON, FEATURE_TOOLS})
    resident_bytes = 0  # nothing in this process's memory

    def __init__(
        self, profile: ModelProfile, *, api_key: str | None, timeout_s: float | None = None
    ) -> None:
        check_upstream(profile)
        self.model_id = profile.id
        self.context_length: int = profile.extra.get("context_length", DEFAULT_CONTEXT)
        self.base_url = str(profile.extra["base_url"]).rstrip("/")
        self.remote_model = str(profile.extra.get("remote_model") or profile.source)
        self._tokenizer = profile.extra.get("tokenizer")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeout = timeout_s or float(profile.extra.get("timeout_s", DEFAULT_TIMEOUT_S))
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0))
        )

    def release(self) -> None:
        """Close the connection pool (the model cache calls this on eviction)."""
        self._client.close()

    # -- ChatEngine ----------------------------------------------------------------------------

    def count_tokens(self, prompt: str | Sequence[Message], *, continue_last: bool = False) -> int:
        """Exact through a llama.cpp server's /apply-template and /tokenize when the profile
        says `"tokenizer": "llama.cpp"`; otherwise an estimate (see `_CHARS_PER_TOKEN`)."""
        if continue_last:
            require_supported(self, Sampling(continue_last=True))
        if self._tokenizer == LLAMA_CPP_SERVER:
            return self._count_on_server(prompt)
        if isinstance(prompt, str):
            return _estimate(prompt)
        return _REPLY_PRIMER + sum(_PER_MESSAGE + _estimate(m["content"]) for m in prompt)

    def generate(
        self, prompt: str | Sequence[Message], *, n: int = 1, **sampling: Any
    ) -> list[Completion]:
        """`n` candidates in one request (more requests if the server returns fewer)."""
        opts = sampling_from(sampling)
        require_supported(self, opts)
        done: list[Completion] = []
        while len(done) < n:
            path, body = self._body(prompt, n - len(done), _later(opts, len(done)), stream=False)
            data = self._post(path, body)
            done += _completions(data, offset=len(done), wanted=n - len(done))
        return done

    def stream(
        self, prompt: str | Sequence[Message], *, n: int = 1, **sampling: Any
    ) -> Iterator[Delta]:
        """Deltas as the server sends them (its candidates interleaved by index); each
        candidate's last one, which carries its finish_reason, comes when the reply ends."""
        opts = sampling_from(sampling)
        require_supported(self, opts)
        seen = 0
        while seen < n:
            path, body = self._body(prompt, n - seen, _later(opts, seen), stream=True)
            finished = yield from self._stream_once(path, body, offset=seen, limit=n)
            if not finished:
                raise self._error(ErrorCode.error_inference, "the stream ended without a reply")
            seen = max(finished) + 1

    def _stream_once(
        self, path: str, body: dict[str, Any], *, offset: int, limit: int
    ) -> Generator[Delta, None, set[int]]:
        """One streamed request. A chunk counts as one token until the final usage report
        (stream_options.include_usage) corrects the total on the last finishing delta."""
        finals: dict[int, Delta] = {}
        counted = 0
        usage: dict[str, Any] = {}
        for event in self._events(path, body):
            usage = event.get("usage") or usage
            for delta in _deltas(event, offset=offset):
                if delta.index >= limit or delta.index in finals:
                    continue
                counted += delta.tokens
                if delta.finish_reason is None:
                    yield delta
                else:
                    finals[delta.index] = delta
        reported = usage.get("completion_tokens")
        correction = int(reported) - counted if isinstance(reported, int) else 0
        for i in sorted(finals):
            delta = finals[i]
            if i == max(finals) and correction:
                delta = replace(delta, tokens=max(0, delta.tokens + correction))
            yield delta
        return set(finals)

    # -- requests ------------------------------------------------------------------------------

    def _body(
        self, prompt: str | Sequence[Message], n: int, opts: Sampling, *, stream: bool
    ) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.remote_model,
            "n": n,
            "max_tokens": opts.max_tokens,
            "temperature": opts.temperature,
            "top_p": opts.top_p,
        }
        # Sent only when asked for: a strict server (a hosted API) rejects what it lacks.
        optional = {
            "top_k": opts.top_k if opts.top_k > 0 else None,
            "repetition_penalty": opts.repetition_penalty
            if opts.repetition_penalty != 1.0
            else None,
            "frequency_penalty": opts.frequency_penalty or None,
            "presence_penalty": opts.presence_penalty or None,
            "seed": opts.seed,
            "stop": list(opts.stop) or None,
            "response_format": opts.response_format,
            "tools": opts.tools,
            "tool_choice": opts.tool_choice,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        if isinstance(prompt, str):
            if opts.tools or opts.response_format:
                raise PixelForgeError(
                    ErrorCode.invalid_parameter,
                    "tools and response_format need chat messages, not a raw prompt",
                )
            return "/completions", {**body, "prompt": prompt}
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
        return "/chat/completions", {**body, "messages": messages}

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post(self.base_url + path, json=body)
        except httpx.TransportError as e:
            raise self._unreachable(e) from e
        self._check(response)
        data = _json(response)
        if not isinstance(data, dict):
            raise self._error(ErrorCode.error_inference, "the reply is not a JSON object")
        return data

    def _events(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The server-sent events of a streamed reply, as parsed JSON, up to [DONE]."""
        try:
            with self._client.stream("POST", self.base_url + path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                data: list[str] = []
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                        continue
                    if line or not data:
                        continue  # comments, event names, keep-alives
                    payload, data = "\n".join(data), []
                    if payload == "[DONE]":
                        return
                    yield self._event(payload)
                if data and data != ["[DONE]"]:
                    yield self._event("\n".join(data))
        except httpx.TransportError as e:
            raise self._unreachable(e) from e

    def _event(self, payload: str) -> dict[str, Any]:
        try:
            event = json.loads(payload)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            raise self._error(ErrorCode.error_inference, f"bad stream data {payload[:200]!r}")
        if "error" in event:  # a failure after the 200 status was sent
            raise self._error(ErrorCode.error_inference, _message(event))
        return event

    def _count_on_server(self, prompt: str | Sequence[Message]) -> int:
        root = self.base_url.removesuffix("/v1")
        text = prompt
        if not isinstance(prompt, str):
            body = {"messages": [{"role": m["role"], "content": m["content"]} for m in prompt]}
            text = str(self._post_root(root + "/apply-template", body).get("prompt", ""))
        tokens = self._post_root(root + "/tokenize", {"content": text, "add_special": True})
        return len(tokens.get("tokens", []))

    def _post_root(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.post(url, json=body)
        except httpx.TransportError as e:
            raise self._unreachable(e) from e
        self._check(response)
        data = _json(response)
        return data if isinstance(data, dict) else {}

    # -- errors --------------------------------------------------------------------------------

    def _check(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = _message(_json(response)) or response.text[:500] or response.reason_phrase
        if status in (401, 403):
            # The server's credentials are the admin's to fix, not the caller's.
            raise self._error(
                ErrorCode.model_unavailable,
                f"refused the API key ({status}: {detail}); set this profile's key in "
                "PIXELFORGE_UPSTREAM_API_KEYS",
            )
        if status in (408, 429):
            raise self._error(ErrorCode.unavailable, f"is busy ({status}: {detail}); retry later")
        if status < 500:
            # OpenAI's (and llama-cpp-python's) code for a prompt over the window.
            too_long = _code(_json(response)) == "context_length_exceeded"
            code = ErrorCode.context_length_exceeded if too_long else ErrorCode.invalid_parameter
            raise PixelForgeError(code, f"model {self.model_id!r} (upstream): {detail}")
        raise self._error(ErrorCode.error_inference, f"failed ({status}: {detail})")

    def _unreachable(self, e: Exception) -> PixelForgeError:
        return PixelForgeError(
            ErrorCode.model_unavailable,
            f"upstream {self.base_url} unreachable: {type(e).__name__}: {e}",
        )

    def _error(self, code: ErrorCode, what: str) -> PixelForgeError:
        return PixelForgeError(code, f"upstream {self.base_url} {what}")


def _later(opts: Sampling, done: int) -> Sampling:
    """The settings for a follow-up request: another seed, so candidates differ."""
    if done == 0 or opts.seed is None:
        return opts
    return replace(opts, seed=opts.seed + done)


def _completions(data: dict[str, Any], *, offset: int, wanted: int) -> list[Completion]:
    choices = sorted(data.get("choices") or [], key=lambda c: int(c.get("index", 0)))[:wanted]
    if not choices:
        raise PixelForgeError(ErrorCode.error_inference, f"upstream sent no choices: {data}")
    usage = data.get("usage") or {}
    texts = [_choice_text(c) for c in choices]
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    counts = _split(int(usage.get("completion_tokens") or 0), texts)
    out = []
    for i, (choice, text) in enumerate(zip(choices, texts, strict=True)):
        calls = (choice.get("message") or {}).get("tool_calls") or None
        finish = _finish(choice.get("finish_reason"))
        out.append(Completion(offset + i, text, finish, prompt_tokens, counts[i], calls))
    return out


def _deltas(event: dict[str, Any], *, offset: int) -> Iterator[Delta]:
    for choice in event.get("choices") or []:
        delta = choice.get("delta") or {}
        text = choice.get("text") if "text" in choice else delta.get("content")
        calls = delta.get("tool_calls") or None
        reason = choice.get("finish_reason")
        if text or calls or reason:
            finish = _finish(reason) if reason else None
            index = offset + int(choice.get("index", 0))
            yield Delta(index, text or "", finish, calls, tokens=1 if text or calls else 0)


def _choice_text(choice: dict[str, Any]) -> str:
    if "text" in choice:
        return str(choice["text"] or "")
    return str((choice.get("message") or {}).get("content") or "")


def _finish(reason: Any) -> FinishReason:
    if reason in ("tool_calls", "function_call"):
        return "tool_calls"
    return "length" if reason == "length" else "stop"


def _split(total: int, texts: list[str]) -> list[int]:
    """The reply's completion tokens shared among its candidates by text length (OpenAI
    reports one total for all of them; for one candidate it is exact)."""
    if len(texts) == 1:
        return [total]
    chars = sum(len(t) for t in texts)
    counts = [total * len(t) // chars if chars else total // len(texts) for t in texts]
    counts[-1] += total - sum(counts)
    return counts


def _estimate(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _code(data: Any) -> Any:
    error = data.get("error") if isinstance(data, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def _message(data: Any) -> str:
    """The human part of an error body: OpenAI's {"error": {"message"}}, FastAPI's
    {"detail"}, or a bare {"error": "..."} (Ollama)."""
    if not isinstance(data, dict):
        return ""
    error = data.get("error", data.get("detail"))
    if isinstance(error, dict):
        error = error.get("message", error)
    if error is None:
        return ""
    return (error if isinstance(error, str) else json.dumps(error))[:500]
