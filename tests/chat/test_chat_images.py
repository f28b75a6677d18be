"""In-chat images over HTTP on the real stack: tiny-llama writes the prompt, tiny-sd draws it
(image_to_image on the avatar, text_to_image without one); the image message's candidates
hold readable media; regenerate; other accounts; credits."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from pixelforge.store.tables import ChatMessageRow, Job
from tests.chat.live_chat import character, error_code, image_models_dir, ok
from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer, png_bytes

COST = 2  # the prompt job (160 tokens: 1 credit) + one image (1 credit)


@pytest.fixture(scope="module")
def srv(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = image_models_dir(tiny, tmp_path_factory.mktemp("chat-image-models"))
    data = tmp_path_factory.mktemp("chat-images")
    with LiveServer(make_settings(data, models_path=models, worker_threads=1)) as s:
        yield s


def _chat(srv: LiveServer, c: Any, *, avatar: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if avatar:
        pixels = np.full((64, 64, 3), 180, dtype=np.uint8)
        fields["avatar"] = srv.upload(c, png_bytes(pixels))["id"]
    ch = character(c, **fields)
    chat: dict[str, Any] = ok(c.post("/v1/chats", json={"character_id": ch["id"]}), 201)
    return chat


def _available(srv: LiveServer, account: str) -> int:
    return srv.services.accounts.balance(account).available


def _image_of(c: Any, candidate: dict[str, Any]) -> Image.Image:
    assert candidate["kind"] == "image" and candidate["media_id"]
    meta = ok(c.get(f"/v1/media/{candidate['media_id']}"))
    assert meta["id"] == candidate["media_id"] and meta["kind"] == "result"
    r = c.get(meta["url"])
    assert r.status_code == 200, r.text
    return Image.open(io.BytesIO(r.content))


def test_image_message_regenerate_and_credits(srv: LiveServer) -> None:
    account, key = srv.account(credits=20)
    with srv.client(key) as c:
        chat = _chat(srv, c, avatar=True)
        cid = chat["id"]
        before = _available(srv, account)
        msg = ok(c.post(f"/v1/chats/{cid}/images", json={"prompt_hint": "in the rain"}))
        assert _available(srv, account) == before - COST
        assert msg["role"] == "assistant" and len(msg["candidates"]) == 1
        first = msg["candidates"][0]
        assert first["status"] == "complete" and first["text"].strip()
        assert msg["content"] == first["text"]  # the image prompt
        assert _image_of(c, first).size == (64, 64)  # the avatar's size
        job = ok(c.get(f"/v1/jobs/{first['job_id']}"))
        assert job["pipeline"] == "image_to_image"  # drawn on the avatar
        # The chat holds it as its last message.
        got = ok(c.get(f"/v1/chats/{cid}"))
        assert got["messages"][-1]["id"] == msg["id"]

        again = ok(c.post(f"/v1/chats/{cid}/messages/{msg['id']}/images/regenerate"))
        assert len(again["candidates"]) == 2 and again["selected"] == 1
        second = again["candidates"][1]
        assert second["kind"] == "image" and second["media_id"] != first["media_id"]
        assert _available(srv, account) == before - 2 * COST

        # A text message gets no image candidates; a text regenerate refuses an image.
        greeting = got["messages"][0]["id"]
        r = c.post(f"/v1/chats/{cid}/messages/{greeting}/images/regenerate")
        assert error_code(r, 409) == "conflict"
        r = c.post(f"/v1/chats/{cid}/messages/{msg['id']}/regenerate", json={})
        assert error_code(r, 409) == "conflict"
        assert _available(srv, account) == before - 2 * COST

        # The next reply's context leaves the image out, and the reply still works.
        reply = ok(c.post(f"/v1/chats/{cid}/messages", json={"content": "hi", "max_tokens": 4}))
        job = ok(c.get(f"/v1/jobs/{reply['candidates'][0]['job_id']}"))
        prompts = [m["content"] for m in job["params"]["messages"]]
        assert not any(first["text"] in p for p in prompts)


def test_without_an_avatar_text_to_image_and_other_accounts_get_404(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    with srv.client(key) as c:
        chat = _chat(srv, c, avatar=False)
        msg = ok(c.post(f"/v1/chats/{chat['id']}/images"))
        cand = msg["candidates"][0]
        assert ok(c.get(f"/v1/jobs/{cand['job_id']}"))["pipeline"] == "text_to_image"
    other_account, other = srv.account(credits=10)
    with srv.client(other) as c:
        assert error_code(c.post(f"/v1/chats/{chat['id']}/images"), 404) == "not_found"
        r = c.post(f"/v1/chats/{chat['id']}/messages/{msg['id']}/images/regenerate")
        assert error_code(r, 404) == "not_found"
        assert _available(srv, other_account) == 10


def test_insufficient_credits_is_402_and_stores_nothing(srv: LiveServer) -> None:
    account, key = srv.account(credits=COST - 1)  # the prompt alone would be affordable
    with srv.client(key) as c:
        chat = _chat(srv, c, avatar=False)
        r = c.post(f"/v1/chats/{chat['id']}/images", json={"prompt_hint": "x"})
        assert error_code(r, 402) == "insufficient_credits"
    assert _available(srv, account) == COST - 1
    with srv.services.db.read() as s:
        jobs = s.scalar(select(func.count()).where(Job.account_id == account))
        messages = s.scalar(select(func.count()).where(ChatMessageRow.chat_id == chat["id"]))
    assert jobs == 0 and messages == 1  # the greeting only


def test_an_image_model_that_cannot_draw_is_refused_before_any_job(srv: LiveServer) -> None:
    account, key = srv.account(credits=10)
    with srv.client(key) as c:
        chat = _chat(srv, c, avatar=False)
        r = c.post(f"/v1/chats/{chat['id']}/images", json={"model": "tiny-llama"})
        assert error_code(r, 400) == "invalid_parameter"
        assert len(ok(c.get(f"/v1/chats/{chat['id']}"))["messages"]) == 1
    assert _available(srv, account) == 10
    with srv.services.db.read() as s:
        assert s.scalar(select(func.count()).where(Job.account_id == account)) == 0


def test_a_failed_image_job_stores_nothing_and_charges_only_the_prompt(srv: LiveServer) -> None:
    account, key = srv.account(credits=10)
    with srv.client(key) as c:
        avatar = srv.upload(c, png_bytes(np.full((64, 64, 3), 33, dtype=np.uint8)))
        ch = character(c, avatar=avatar["id"])
        chat = ok(c.post("/v1/chats", json={"character_id": ch["id"]}), 201)
        row = srv.services.media.get(account_id=account, media_id=avatar["id"])
        srv.services.media.store.path(row.storage_key).write_bytes(b"no longer an image")
        r = c.post(f"/v1/chats/{chat['id']}/images")
        assert error_code(r, 415) == "unsupported_media_type"  # the image job's own error
        assert len(ok(c.get(f"/v1/chats/{chat['id']}"))["messages"]) == 1
    assert _available(srv, account) == 10 - 1  # the prompt was written, the image was not
