"""Chats over HTTP with tiny-llama generating for real: greetings, replies (waited for,
NDJSON, SSE), candidates, regenerate, continue, edits, delete-from, bad input, a restart,
a stream the client leaves, PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chat.live_chat import CARD, character, error_code, llm_models_dir, ndjson, ok, sse
from tests.conftest import make_settings
from tests.live import LiveServer

SHORT = {"max_tokens": 8}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return llm_models_dir(tmp_path_factory.mktemp("chat-models"))


@pytest.fixture(scope="module")
def srv(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("chats")
    with LiveServer(make_settings(data, models_path=models, worker_threads=1)) as s:
        yield s


def _chat(c: httpx.Client, **kw: Any) -> dict[str, Any]:
    ch = character(c)
    body: dict[str, Any] = ok(c.post("/v1/chats", json={"character_id": ch["id"], **kw}), 201)
    return body


def _turns(messages: list[dict[str, Any]]) -> list[str]:
    """The user and assistant texts a job was sent."""
    return [m["content"] for m in messages if m["role"] != "system"]


def _settled(c: httpx.Client, chat_id: str) -> dict[str, Any]:
    """The last message's only candidate once it is no longer generating."""
    deadline = time.monotonic() + 30
    while True:
        [cand] = ok(c.get(f"/v1/chats/{chat_id}"))["messages"][-1]["candidates"]
        if cand["status"] != "generating" or time.monotonic() > deadline:
            return dict(cand)
        time.sleep(0.1)


def _available(c: httpx.Client) -> tuple[int, int]:
    me = c.get("/v1/me").json()
    return me["credits_available"], me["credits_held"]


def test_a_chat_opens_with_the_greeting_and_a_reply_is_waited_for(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    with srv.client(key) as c:
        chat = _chat(c, temperature=0.7, stop=["\n\n"])
        assert chat["id"].startswith("cht_") and chat["sampling"] == {
            "temperature": 0.7,
            "stop": ["\n\n"],
        }
        [greeting] = chat["messages"]
        assert greeting["role"] == "assistant" and greeting["selected"] == 0
        assert [x["text"] for x in greeting["candidates"]] == [
            "Hello User, I am Sera.",
            "Welcome back, User.",
            "User? You are awake!",
        ]
        assert {x["status"] for x in greeting["candidates"]} == {"complete"}
        r = c.post(f"/v1/chats/{chat['id']}/messages", json={"content": "hi", "n": 2, **SHORT})
        reply = ok(r)
        assert reply["role"] == "assistant" and len(reply["candidates"]) == 2
        for cand in reply["candidates"]:
            assert cand["status"] == "complete" and cand["finish_reason"] in ("stop", "length")
            assert cand["job_id"] == r.headers["X-Job-Id"] and cand["completion_tokens"] >= 1
            assert cand["prompt_tokens"] > 10
        assert reply["content"] == reply["candidates"][0]["text"]
        job = ok(c.get(f"/v1/jobs/{r.headers['X-Job-Id']}"))
        assert job["pipeline"] == "chat" and job["status"] == "succeeded"
        assert job["metadata"] == {"chat_id": chat["id"], "message_id": reply["id"]}
        params = job["params"]
        assert params["n"] == 2 and params["trim"] is True and params["temperature"] == 0.7
        assert params["stop"] == ["\n\n"] and params["max_tokens"] == 8
        assert params["messages"][0]["role"] == "system" and params["messages"][0]["pin"]
        assert "guardian of the forest" in params["messages"][0]["content"]
        # The card's context (examples may come first), then the history, then the card's
        # post-history instructions.
        assert _turns(params["messages"])[-2:] == ["Hello User, I am Sera.", "hi"]
        assert params["messages"][-1] == {
            "role": "system",
            "content": "Stay in character.",
            "pin": True,
        }
        full = ok(c.get(f"/v1/chats/{chat['id']}"))
        assert [m["role"] for m in full["messages"]] == ["assistant", "user", "assistant"]
        assert full["messages"][2] == reply
        assert _available(c) == (8, 0)  # 2 candidates x 1 credit
        listed = ok(c.get("/v1/chats"))["data"]
        assert [x["id"] for x in listed] == [chat["id"]] and listed[0]["messages"] is None


def test_an_ndjson_stream_carries_init_tokens_and_the_final_message(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    with srv.client(key) as c:
        chat = _chat(c)
        body = {"content": "tell me more", "n": 2, "stream": "ndjson", "max_tokens": 12}
        with c.stream("POST", f"/v1/chats/{chat['id']}/messages", json=body) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("application/x-ndjson")
            events = ndjson(list(r.iter_lines()))
        init, *tokens, done = events
        assert init["type"] == "init" and init["chat_id"] == chat["id"]
        assert init["candidates"] == 2 and init["job_id"].startswith("job_")
        assert tokens and {t["type"] for t in tokens} == {"token"}
        assert done["type"] == "complete"
        message = done["message"]
        assert message["id"] == init["message_id"]
        for cand in message["candidates"]:
            streamed = "".join(t["delta"] for t in tokens if t["index"] == cand["index"])
            assert streamed == cand["text"] and cand["status"] == "complete"
        assert ok(c.get(f"/v1/chats/{chat['id']}"))["messages"][-1] == message


def test_sse_regenerate_adds_candidates_only_on_the_last_reply(srv: LiveServer) -> None:
    _, key = srv.account(credits=20)
    with srv.client(key) as c:
        chat = _chat(c)
        cid = chat["id"]
        first = ok(c.post(f"/v1/chats/{cid}/messages", json={"content": "hi", **SHORT}))
        headers = {"Accept": "text/event-stream"}
        r = c.post(
            f"/v1/chats/{cid}/messages/{first['id']}/regenerate",
            json={"n": 2, **SHORT},
            headers=headers,
        )
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse(r.text)
        assert events[0][0] == "init" and events[-1][0] == "complete"
        assert events[0][1]["first_index"] == 1 and events[0][1]["candidates"] == 2
        assert {d["index"] for e, d in events if e == "token"} <= {1, 2}
        message = events[-1][1]["message"]
        assert len(message["candidates"]) == 3 and message["selected"] == 1
        assert message["candidates"][0] == first["candidates"][0]  # the old one stays
        for idx in (1, 2):
            streamed = "".join(d["delta"] for e, d in events if e == "token" and d["index"] == idx)
            assert message["candidates"][idx]["text"] == streamed
        # Only the last message, and only an assistant reply, can be regenerated.
        user = ok(c.get(f"/v1/chats/{cid}"))["messages"][1]
        r = c.post(f"/v1/chats/{cid}/messages/{user['id']}/regenerate", json=SHORT)
        assert error_code(r, 409) == "conflict"
        ok(c.post(f"/v1/chats/{cid}/messages", json={"content": "again", **SHORT}))
        r = c.post(f"/v1/chats/{cid}/messages/{first['id']}/regenerate", json=SHORT)
        assert error_code(r, 409) == "conflict" and "last" in r.json()["error"]["message"]
        r = c.post(f"/v1/chats/{cid}/messages/msg_nope/regenerate", json=SHORT)
        assert error_code(r, 404) == "not_found"


def test_continue_appends_to_the_selected_candidate(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    with srv.client(key) as c:
        cid = _chat(c)["id"]
        reply = ok(c.post(f"/v1/chats/{cid}/messages", json={"content": "hi", **SHORT}))
        before = reply["candidates"][0]
        r = c.post(
            f"/v1/chats/{cid}/messages/{reply['id']}/continue",
            json={"stream": "ndjson", **SHORT},
        )
        init, *tokens, done = ndjson(r.text.splitlines())
        assert init["first_index"] == 0 and init["candidates"] == 1
        after = done["message"]["candidates"][0]
        added = "".join(t["delta"] for t in tokens)
        assert added and after["text"] == before["text"] + added
        assert after["job_id"] == init["job_id"] != before["job_id"]
        assert after["completion_tokens"] > before["completion_tokens"]
        job = ok(c.get(f"/v1/jobs/{init['job_id']}"))
        assert job["params"]["continue_last"] is True
        assert job["params"]["messages"][-1] == {
            "role": "assistant",
            "content": before["text"],
            "pin": False,
        }


def test_select_edit_and_delete_from_a_message(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    with srv.client(key) as c:
        chat = _chat(c)
        cid, greeting = chat["id"], chat["messages"][0]
        url = f"/v1/chats/{cid}/messages/{greeting['id']}"
        picked = ok(c.patch(url, json={"selected": 2}))
        assert picked["selected"] == 2 and picked["content"] == "User? You are awake!"
        assert error_code(c.patch(url, json={"selected": 3}), 400) == "invalid_parameter"
        edited = ok(c.patch(f"{url}/candidates/1", json={"text": "Edited."}))
        assert edited["candidates"][1]["text"] == "Edited." and edited["selected"] == 2
        assert error_code(c.patch(f"{url}/candidates/7", json={"text": "x"}), 404)
        assert error_code(c.patch(f"{url}/candidates/1", json={"text": ""}), 400)
        ok(c.post(f"/v1/chats/{cid}/messages", json={"content": "one", **SHORT}))
        ok(c.post(f"/v1/chats/{cid}/messages", json={"content": "two", **SHORT}))
        messages = ok(c.get(f"/v1/chats/{cid}"))["messages"]
        assert len(messages) == 5
        assert c.delete(f"/v1/chats/{cid}/messages/{messages[3]['id']}").status_code == 204
        left = ok(c.get(f"/v1/chats/{cid}"))["messages"]
        assert [m["id"] for m in left] == [m["id"] for m in messages[:3]]
        assert left[0]["content"] == "User? You are awake!"
        r = c.delete(f"/v1/chats/{cid}/messages/{messages[3]['id']}")
        assert error_code(r, 404) == "not_found"
        # The history sent next is what the chat now shows.
        r = c.post(f"/v1/chats/{cid}/messages", json={"content": "three", **SHORT})
        job = ok(c.get(f"/v1/jobs/{r.headers['X-Job-Id']}"))
        # (A random-weight reply may be empty; an empty turn is not sent.)
        expected = [t for t in ("User? You are awake!", "one", left[2]["content"], "three") if t]
        assert _turns(job["params"]["messages"])[-len(expected) :] == expected
        assert c.delete(f"/v1/chats/{cid}").status_code == 204
        assert error_code(c.get(f"/v1/chats/{cid}"), 404) == "not_found"


def test_bad_input_and_other_accounts(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    _, other_key = srv.account(credits=10)
    with srv.client(key) as c, srv.client(other_key) as other:
        chat = _chat(c)
        cid = chat["id"]
        url = f"/v1/chats/{cid}/messages"
        for body in (
            {"content": ""},
            {"content": "   "},
            {"content": "x" * 32_001},
            {"content": "hi", "n": 0},
            {"content": "hi", "n": 9},
            {"content": "hi", "temperature": 3},
            {"content": "hi", "stream": "xml"},
        ):
            assert error_code(c.post(url, json=body), 400) == "invalid_parameter", body
        assert error_code(c.post("/v1/chats", json={"character_id": "chr_x"}), 404)
        r = c.post("/v1/chats", json={"character_id": chat["character_id"], "model": "sd-turbo"})
        assert error_code(r, 400) == "invalid_parameter"
        assert error_code(c.post("/v1/chats/cht_nope/messages", json={"content": "hi"}), 404)
        for r in (
            other.get(f"/v1/chats/{cid}"),
            other.post(url, json={"content": "hi"}),
            other.delete(f"/v1/chats/{cid}"),
            other.patch(f"{url}/{chat['messages'][0]['id']}", json={"selected": 0}),
            other.delete(f"{url}/{chat['messages'][0]['id']}"),
        ):
            assert error_code(r, 404) == "not_found"
        assert ok(other.get("/v1/chats"))["data"] == []
        assert len(ok(c.get(f"/v1/chats/{cid}"))["messages"]) == 1
        # A deleted character: the chat reads, takes no new message.
        assert c.delete(f"/v1/characters/{chat['character_id']}").status_code == 204
        r = c.post(url, json={"content": "hi"})
        assert error_code(r, 409) == "conflict" and "deleted" in r.json()["error"]["message"]
        assert ok(c.get(f"/v1/chats/{cid}"))["character_name"] == "Seraphina"
        assert _available(c) == (10, 0)


def test_a_refused_submit_stores_nothing(srv: LiveServer) -> None:
    _, key = srv.account(credits=0)
    with srv.client(key) as c:
        chat = _chat(c)
        r = c.post(f"/v1/chats/{chat['id']}/messages", json={"content": "hi", "stream": "ndjson"})
        assert error_code(r, 402) == "insufficient_credits"
        assert ok(c.get(f"/v1/chats/{chat['id']}"))["messages"] == chat["messages"]
        assert ok(c.get("/v1/jobs"))["data"] == []


def test_a_failed_generation_is_a_failed_candidate_and_an_error_event(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    with srv.client(key) as c:
        chat = _chat(c, model="qwen3-0.6b")  # a chat model that is not on this machine
        url = f"/v1/chats/{chat['id']}/messages"
        events = ndjson(c.post(url, json={"content": "hi", "stream": "ndjson"}).text.splitlines())
        assert [e["type"] for e in events] == ["init", "error"]
        assert events[1]["code"] == "model_unavailable" and "qwen3" in events[1]["message"]
        [cand] = ok(c.get(f"/v1/chats/{chat['id']}"))["messages"][-1]["candidates"]
        assert cand["status"] == "failed" and cand["error_code"] == "model_unavailable"
        failed = ok(c.get(f"/v1/chats/{chat['id']}"))["messages"][-1]
        r = c.post(f"{url}/{failed['id']}/continue", json={})
        assert error_code(r, 409) == "conflict" and "no text" in r.json()["error"]["message"]
        # A failed reply does not block the chat, and was not charged.
        assert _available(c) == (10, 0)
        ok(c.post(url, json={"content": "again", "n": 1}))


def test_a_stream_the_client_leaves_cancels_and_keeps_the_text(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    with srv.client(key) as c:
        ch = ok(c.post("/v1/characters", json={"name": "Kit"}), 201)
        cid = ok(c.post("/v1/chats", json={"character_id": ch["id"]}), 201)["id"]
        # Greedy with no stop: runs to max_tokens unless canceled.
        body = {"content": "a", "stream": "ndjson", "max_tokens": 400, "temperature": 0}
        pieces: list[str] = []
        with c.stream("POST", f"/v1/chats/{cid}/messages", json=body) as r:
            lines = r.iter_lines()
            init = ndjson([next(lines)])[0]
            while len(pieces) < 3:
                event = ndjson([next(lines)])[0]
                assert event["type"] == "token", event
                pieces.append(event["delta"])
            # One reply at a time: the chat refuses another turn while this one generates.
            busy = c.post(f"/v1/chats/{cid}/messages", json={"content": "b", **SHORT})
            assert error_code(busy, 409) == "conflict" and "generated" in busy.text
        # The response is closed: the job is canceled, the message keeps what it got.
        cand = _settled(c, cid)
        assert cand["status"] == "incomplete" and cand["finish_reason"] == "cancelled"
        assert cand["text"].startswith("".join(pieces)) and 0 < cand["completion_tokens"] < 400
        assert ok(c.get(f"/v1/jobs/{init['job_id']}"))["status"] == "canceled"
        assert _available(c) == (10, 0)
        # The chat goes on.
        ok(c.post(f"/v1/chats/{cid}/messages", json={"content": "b", **SHORT}))


def _round_trip(settings_for: Any) -> None:
    """A chat written by one server is read back whole by the next on the same database."""
    with LiveServer(settings_for()) as first:
        _, key = first.account(credits=10)
        with first.client(key) as c:
            chat = _chat(c)
            ok(c.post(f"/v1/chats/{chat['id']}/messages", json={"content": "hi", **SHORT}))
            before = ok(c.get(f"/v1/chats/{chat['id']}"))
    with LiveServer(settings_for()) as second, second.client(key) as c:
        assert ok(c.get(f"/v1/chats/{chat['id']}")) == before
        assert [x["id"] for x in ok(c.get("/v1/chats"))["data"]] == [chat["id"]]
        ok(c.post(f"/v1/chats/{chat['id']}/messages", json={"content": "more", **SHORT}))
        # NUL characters (which PostgreSQL text cannot hold) are refused, never a 500.
        url = f"/v1/chats/{chat['id']}/messages"
        assert error_code(c.post(url, json={"content": "a\u0000b"}), 400) == "invalid_parameter"
        r = c.post("/v1/characters", json={**CARD, "scenario": "x\u0000"})
        assert "data.scenario" in r.json()["error"]["message"], r.text
        r = c.post("/v1/personas", json={"name": "P", "description": "\u0000"})
        assert error_code(r, 400) == "invalid_parameter"
        assert len(ok(c.get(url.rsplit("/", 1)[0]))["messages"]) == len(before["messages"]) + 2


def test_a_chat_survives_a_restart(models: Path, tmp_path: Path) -> None:
    _round_trip(lambda: make_settings(tmp_path / "data", models_path=models, worker_threads=1))


def test_a_reply_left_generating_at_shutdown_is_settled_after_the_restart(
    models: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    # No workers and a short wait: the reply is still queued when the server stops.
    with LiveServer(make_settings(data, models_path=models, workers=0, max_wait_s=0.3)) as first:
        _, key = first.account(credits=10)
        with first.client(key) as c:
            cid = _chat(c)["id"]
            r = c.post(f"/v1/chats/{cid}/messages", json={"content": "hi", **SHORT})
            assert r.status_code == 202, r.text
            assert r.json()["candidates"][0]["status"] == "generating"
    settings = make_settings(data, models_path=models, worker_threads=1)
    with LiveServer(settings) as second, second.client(key) as c:
        cand = _settled(c, cid)
        assert cand["status"] == "complete" and cand["text"]
        assert cand["job_id"] == r.headers["X-Job-Id"]


@pytest.mark.services
def test_a_chat_on_postgresql(models: Path, tmp_path: Path, pg_url: str) -> None:
    _round_trip(
        lambda: make_settings(
            tmp_path / "data", models_path=models, worker_threads=1, database_url=pg_url
        )
    )
