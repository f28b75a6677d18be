"""The `chat` pipeline as a job: tiny-llama on the real workers, tokens on the event bus,
partial text kept on cancel, the context window enforced or trimmed, credits per the rule."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer

MESSAGES = [
    {"role": "system", "content": "You are a knight.", "pin": True},
    {"role": "user", "content": "tell me a story"},
]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, tiny: TinyModels) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("chat-data")
    with LiveServer(make_settings(data, models_path=tiny.dir, worker_threads=1)) as s:
        yield s


def _ws(srv: LiveServer, path: str) -> str:
    return srv.url.replace("http://", "ws://", 1) + path


def _submit(srv: LiveServer, key: str, params: dict[str, Any], wait: int = 60) -> dict[str, Any]:
    with srv.client(key) as c:
        r = c.post(
            "/v1/jobs",
            json={"pipeline": "chat", "params": {"model": "tiny-llama", **params}},
            headers={"Prefer": f"wait={wait}"} if wait else {},
        )
    assert r.status_code in (200, 201, 202), r.text
    body: dict[str, Any] = r.json()
    return body


def _balance(srv: LiveServer, account_id: str) -> int:
    return srv.services.accounts.balance(account_id).available


def test_a_chat_job_streams_its_tokens_and_keeps_the_text_usage_and_timings(
    srv: LiveServer,
) -> None:
    account, key = srv.account(credits=10)
    with connect(_ws(srv, f"/v1/events?token={key}"), open_timeout=10) as ws:
        job = _submit(srv, key, {"messages": MESSAGES, "n": 2, "max_tokens": 24, "seed": 7})
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not events or events[-1]["type"] not in ("succeeded", "failed", "canceled"):
            assert time.monotonic() < deadline, events[-3:]
            events.append(json.loads(ws.recv(timeout=30)))
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert [c["index"] for c in result["choices"]] == [0, 1]
    tokens = [e for e in events if e["type"] == "token"]
    for choice in result["choices"]:
        mine = [e for e in tokens if e["index"] == choice["index"]]
        # The pieces on the bus add up to the stored text, and the last one says why it ended.
        assert "".join(e["delta"] for e in mine) == choice["text"]
        assert mine[-1]["finish_reason"] == choice["finish_reason"] in ("stop", "length")
        assert choice["completion_tokens"] >= 1
    usage = result["usage"]
    assert usage["completion_tokens"] == sum(c["completion_tokens"] for c in result["choices"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 20
    assert result["timings"]["ttft_ms"] > 0 and result["timings"]["total_ms"] > 0
    # 2 candidates x ceil(24 / 1000) = 2 credits, charged once on success.
    assert _balance(srv, account) == 8


def test_the_same_seed_gives_the_same_text(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    params = {"prompt": "Once upon a time", "max_tokens": 16, "seed": 3, "temperature": 1.0}
    a, b = (_submit(srv, key, params)["result"]["choices"][0]["text"] for _ in range(2))
    assert a == b and a


def test_a_canceled_generation_keeps_its_partial_text_and_is_not_charged(srv: LiveServer) -> None:
    account, key = srv.account(credits=10)
    with connect(_ws(srv, f"/v1/events?token={key}"), open_timeout=10) as ws:
        # Greedy with no stop: runs to max_tokens unless canceled.
        params = {"prompt": "a", "max_tokens": 480, "temperature": 0}
        job = _submit(srv, key, params, wait=0)
        pieces = []
        while len(pieces) < 3:
            ev = json.loads(ws.recv(timeout=30))
            if ev["type"] == "token":
                pieces.append(ev["delta"])
        with srv.client(key) as c:
            assert c.delete(f"/v1/jobs/{job['id']}").status_code in (200, 202)
            done = srv.wait_job(c, job["id"])
    assert done["status"] == "canceled", done
    choice = done["result"]["choices"][0]
    assert choice["finish_reason"] == "cancelled"
    assert choice["text"].startswith("".join(pieces)) and 0 < choice["completion_tokens"] < 480
    assert _balance(srv, account) == 10


def test_a_prompt_longer_than_the_window_fails_clearly_unless_trimmed(srv: LiveServer) -> None:
    account, key = srv.account(credits=10)
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " + "word " * 40}
        for i in range(30)
    ]
    messages = [MESSAGES[0], *history, {"role": "user", "content": "and now?"}]
    failed = _submit(srv, key, {"messages": messages, "max_tokens": 8})
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "context_length_exceeded", failed
    assert "512 tokens" in failed["error"]["message"] and "trim" in failed["error"]["message"]
    ok = _submit(srv, key, {"messages": messages, "max_tokens": 8, "trim": True})
    assert ok["status"] == "succeeded", ok
    trimmed = ok["result"]["trimmed_messages"]
    assert 0 < trimmed < len(history)
    assert ok["result"]["usage"]["prompt_tokens"] <= 512 - 8
    # Only the success was charged.
    assert _balance(srv, account) == 9


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"prompt": "x", "messages": MESSAGES}, "exactly one of messages and prompt"),
        ({}, "exactly one of messages and prompt"),
        ({"messages": MESSAGES, "continue_last": True}, "end with an assistant message"),
        ({"prompt": "x", "n": 9}, "params.n"),
        ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "params.stop"),
        ({"prompt": "x", "stop": [""]}, "stop sequences must not be empty"),
    ],
)
def test_bad_chat_params_are_refused_before_anything_is_held(
    srv: LiveServer, params: dict[str, Any], needle: str
) -> None:
    account, key = srv.account(credits=10)
    with srv.client(key) as c:
        r = c.post("/v1/jobs", json={"pipeline": "chat", "params": params})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_parameter"
    assert needle in r.json()["error"]["message"]
    assert _balance(srv, account) == 10


def test_an_option_the_backend_lacks_fails_the_job_clearly(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    job = _submit(srv, key, {"prompt": "x", "tools": [{"type": "function"}]})
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_parameter"
    assert "does not support tools" in job["error"]["message"]


def test_an_unknown_model_fails_the_job_with_model_unavailable(
    srv: LiveServer, tmp_path: Path
) -> None:
    _, key = srv.account(credits=10)
    with srv.client(key) as c:
        r = c.post(
            "/v1/jobs",
            json={"pipeline": "chat", "params": {"model": "no-such-llm", "prompt": "x"}},
            headers={"Prefer": "wait=30"},
        )
    body = r.json()
    assert body["status"] == "failed", body
    assert body["error"]["code"] in ("invalid_parameter", "model_unavailable")
    assert "no-such-llm" in body["error"]["message"]
