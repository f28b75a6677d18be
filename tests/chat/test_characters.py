"""Characters over HTTP: every card field kept as sent, PATCH, avatars, cursors, soft
delete, other accounts' characters, bad input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pixelforge.chat.store import CharacterService
from tests.chat.live_chat import CARD, character, error_code, ok
from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes

DEEP: object = 1
for _ in range(40):
    DEEP = [DEEP]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("characters"), workers=0)) as s:
        yield s


def _avatar(srv: LiveServer, c: object) -> str:
    import numpy as np

    media = srv.upload(c, png_bytes(np.full((16, 16, 3), 200, dtype=np.uint8)))  # type: ignore[arg-type]
    return str(media["id"])


def test_a_character_keeps_every_card_field_as_sent(srv: LiveServer) -> None:
    _, key = srv.account()
    with srv.client(key) as c:
        created = character(c)
        assert created["id"].startswith("chr_") and created["name"] == "Seraphina"
        assert created["data"] == CARD  # unknown fields and extensions included, unchanged
        assert created["avatar"] is None
        again = ok(c.get(f"/v1/characters/{created['id']}"))
        assert again == created
    # What the card import calls: the same store, the data dict as parsed from a file.
    account, _ = srv.account()
    chars = CharacterService(srv.services.db)
    row = chars.create_from_card(account, {"name": "Card", "weird": {"a": None}}, None)
    assert chars.get(account, row.id).data == {"name": "Card", "weird": {"a": None}}


def test_patch_changes_only_the_fields_sent_and_the_avatar(srv: LiveServer) -> None:
    _, key = srv.account()
    _, other_key = srv.account()
    with srv.client(key) as c, srv.client(other_key) as other:
        ch = character(c)
        avatar = _avatar(srv, c)
        foreign = _avatar(srv, other)
        r = c.patch(
            f"/v1/characters/{ch['id']}",
            json={"description": "new", "name": "Sera", "x_new": 1, "avatar": avatar},
        )
        body = ok(r)
        assert body["name"] == "Sera" and body["avatar"] == avatar
        assert body["data"] == {**CARD, "description": "new", "name": "Sera", "x_new": 1}
        assert body["updated_at"] >= ch["updated_at"]
        # The avatar outlives the upload retention.
        media = ok(c.get(f"/v1/media/{avatar}"))
        assert media["expires_at"] > media["created_at"] + 365 * 86400
        r = c.patch(f"/v1/characters/{ch['id']}", json={"avatar": foreign})
        assert error_code(r, 404) == "not_found"
        assert ok(c.patch(f"/v1/characters/{ch['id']}", json={"avatar": None}))["avatar"] is None
        assert ok(c.patch(f"/v1/characters/{ch['id']}", json={}))["name"] == "Sera"
        r = c.post("/v1/characters", json={**CARD, "avatar": foreign})
        assert error_code(r, 404) == "not_found"


def test_list_pages_with_a_cursor_and_hides_deleted_ones(srv: LiveServer) -> None:
    _, key = srv.account()
    with srv.client(key) as c:
        ids = [character(c, name=f"c{i}")["id"] for i in range(3)]
        first = ok(c.get("/v1/characters", params={"limit": 2}))
        assert [x["id"] for x in first["data"]] == ids[::-1][:2]
        rest = ok(c.get("/v1/characters", params={"limit": 2, "cursor": first["next_cursor"]}))
        assert [x["id"] for x in rest["data"]] == [ids[0]] and rest["next_cursor"] is None
        assert c.delete(f"/v1/characters/{ids[1]}").status_code == 204
        assert [x["id"] for x in ok(c.get("/v1/characters"))["data"]] == [ids[2], ids[0]]
        assert error_code(c.get(f"/v1/characters/{ids[1]}"), 404) == "not_found"
        assert error_code(c.delete(f"/v1/characters/{ids[1]}"), 404) == "not_found"
        assert error_code(c.patch(f"/v1/characters/{ids[1]}", json={"name": "x"}), 404)
        # A chat cannot be opened with a deleted character: a clear 409.
        r = c.post("/v1/chats", json={"character_id": ids[1]})
        assert error_code(r, 409) == "conflict" and "deleted" in r.json()["error"]["message"]
        assert error_code(c.get("/v1/characters", params={"cursor": "nope"}), 400)


def test_another_accounts_character_is_not_found(srv: LiveServer) -> None:
    _, key = srv.account()
    _, other_key = srv.account()
    with srv.client(key) as c, srv.client(other_key) as other:
        ch = character(c)
        assert error_code(other.get(f"/v1/characters/{ch['id']}"), 404) == "not_found"
        assert error_code(other.patch(f"/v1/characters/{ch['id']}", json={"name": "x"}), 404)
        assert error_code(other.delete(f"/v1/characters/{ch['id']}"), 404) == "not_found"
        assert ok(other.get("/v1/characters"))["data"] == []
        r = other.post("/v1/chats", json={"character_id": ch["id"]})
        assert error_code(r, 404) == "not_found"
        assert ok(c.get(f"/v1/characters/{ch['id']}"))["id"] == ch["id"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 201},
        {"name": "ok", "alternate_greetings": "not a list"},
        {"name": "ok", "tags": [1, 2]},
        {"name": "ok", "character_book": "no"},
        {"name": "ok", "deep": DEEP},
        {"name": "ok", "avatar": "med_missing"},
    ],
)
def test_bad_cards_are_refused_with_a_clear_400_or_404(
    srv: LiveServer, body: dict[str, object]
) -> None:
    _, key = srv.account()
    with srv.client(key) as c:
        r = c.post("/v1/characters", json=body)
        assert r.status_code in (400, 404), r.text
        assert r.json()["error"]["message"]
        assert ok(c.get("/v1/characters"))["data"] == []
