"""AliveAI's Create Chat Image and Regenerate Image against a real server: tiny-llama writes
the prompt, tiny-sd draws on the character's image; the seed's response shape, the media
readable, credits, other accounts, a text message refused."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.chat.live_chat import image_models_dir
from tests.conftest import TinyModels, make_settings
from tests.dialects.test_aliveai_chat import SERAPHINA, not_found
from tests.live import LiveServer, png_bytes

COST = 2  # the prompt job + one image (docs/dialects/aliveai.md, Chat)


@pytest.fixture(scope="module")
def srv(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = image_models_dir(tiny, tmp_path_factory.mktemp("alive-chatimg-models"))
    data = tmp_path_factory.mktemp("alive-chatimg")
    with LiveServer(make_settings(data, models_path=models, worker_threads=1)) as server:
        yield server


def _client(srv: LiveServer, credits: int) -> tuple[str, httpx.Client]:
    account, key = srv.account(credits=credits)
    http = httpx.Client(
        base_url=f"{srv.url}/aliveai", headers={"Authorization": f"Key {key}"}, timeout=60
    )
    return account, http


def _ok(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    return r.json()


def _chat_with_image(http: httpx.Client) -> dict[str, Any]:
    pixels = np.full((64, 64, 3), 90, dtype=np.uint8)
    up = http.post("/upload", files={"image": ("a.png", png_bytes(pixels), "image/png")})
    media_id = _ok(up)["mediaId"]
    ch = _ok(http.post("/chat-characters", json={**SERAPHINA, "mediaId": media_id}))
    body = {"chatCharacterId": ch["chatCharacterId"], "firstMessage": ""}
    chat: dict[str, Any] = _ok(http.post("/chats", json=body))
    return chat


def _available(srv: LiveServer, account: str) -> int:
    return srv.services.accounts.balance(account).available


def test_create_and_regenerate_chat_image_in_the_seeds_shape(srv: LiveServer) -> None:
    account, http = _client(srv, 20)
    with http:
        chat = _chat_with_image(http)
        cid = chat["chatId"]
        msg = _ok(http.post(f"/chats/{cid}/image", params={"serverId": "ignored"}))
        assert set(msg) >= {"messageId", "selectedCandidateId", "candidates", "messageType"}
        assert msg["messageType"] == "CHARACTER"
        (cand,) = msg["candidates"]
        assert cand["candidateId"] == msg["selectedCandidateId"] == f"{msg['messageId']}:0"
        assert cand["status"] == "COMPLETE" and cand["message"].strip()
        assert cand["media"]["id"] == cand["mediaId"] and cand["media"]["mediaType"] == "IMAGE"
        assert httpx.get(cand["media"]["mediaUrl"]).status_code == 200
        assert _available(srv, account) == 20 - COST

        again = _ok(http.post(f"/chats/{cid}/messages/{msg['messageId']}/regenerate-image"))
        assert [c["selected"] for c in again["candidates"]] == [False, True]
        assert again["selectedCandidateId"] == f"{msg['messageId']}:1"
        assert again["candidates"][1]["mediaId"] != cand["mediaId"]
        assert _available(srv, account) == 20 - 2 * COST

        # Get Chat shows the image message with its media.
        got = _ok(http.get(f"/chats/{cid}"))
        assert (
            got["messages"][-1]["candidates"][1]["media"]["id"] == again["candidates"][1]["mediaId"]
        )
        # The greeting is text: no image candidates for it (409 in the seed's error shape).
        greeting = got["messages"][0]["messageId"]
        r = http.post(f"/chats/{cid}/messages/{greeting}/regenerate-image")
        assert r.status_code == 409 and r.json()["code"] == "conflict", r.text

    other_account, other = _client(srv, 20)
    with other:
        not_found(other.post(f"/chats/{cid}/image"), f"chat {cid!r}")
        r = other.post(f"/chats/{cid}/messages/{msg['messageId']}/regenerate-image")
        not_found(r, f"chat {cid!r}")
    assert _available(srv, other_account) == 20


def test_create_chat_image_without_the_credits_is_402_and_stores_nothing(
    srv: LiveServer,
) -> None:
    account, http = _client(srv, COST - 1)  # the prompt alone would be affordable
    with http:
        chat = _chat_with_image(http)
        r = http.post(f"/chats/{chat['chatId']}/image")
        assert r.status_code == 402 and r.json()["code"] == "insufficient_credits", r.text
        assert len(_ok(http.get(f"/chats/{chat['chatId']}"))["messages"]) == 1
    assert _available(srv, account) == COST - 1
