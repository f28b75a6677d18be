"""Personas over HTTP: one default per account, the rules on deleting, other accounts."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.chat.live_chat import character, error_code, ok
from tests.conftest import make_settings
from tests.live import LiveServer


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("personas"), workers=0)) as s:
        yield s


def _persona(c: httpx.Client, name: str, **kw: object) -> dict[str, object]:
    body: dict[str, object] = ok(c.post("/v1/personas", json={"name": name, **kw}), 201)
    return body


def _defaults(c: httpx.Client) -> list[object]:
    return [p["id"] for p in ok(c.get("/v1/personas"))["data"] if p["is_default"]]


def test_the_first_persona_is_the_default_and_there_is_only_ever_one(srv: LiveServer) -> None:
    _, key = srv.account()
    with srv.client(key) as c:
        ada = _persona(c, "Ada", description="a programmer", is_default=False)
        assert ada["is_default"] is True and ada["description"] == "a programmer"
        bob = _persona(c, "Bob")
        assert bob["is_default"] is False and _defaults(c) == [ada["id"]]
        cy = _persona(c, "Cy", is_default=True)
        assert _defaults(c) == [cy["id"]]
        r = c.patch(f"/v1/personas/{bob['id']}", json={"is_default": True, "name": "Bobby"})
        assert ok(r)["is_default"] is True and ok(r)["name"] == "Bobby"
        assert _defaults(c) == [bob["id"]]
        # Unsetting the default would leave none: refused, nothing changed.
        r = c.patch(f"/v1/personas/{bob['id']}", json={"is_default": False})
        assert error_code(r, 409) == "conflict"
        assert _defaults(c) == [bob["id"]]
        page = ok(c.get("/v1/personas", params={"limit": 2}))
        assert [p["name"] for p in page["data"]] == ["Cy", "Bobby"]
        more = ok(c.get("/v1/personas", params={"cursor": page["next_cursor"]}))
        assert [p["name"] for p in more["data"]] == ["Ada"]


def test_deleting_the_last_persona_or_one_in_use_is_refused(srv: LiveServer) -> None:
    _, key = srv.account()
    with srv.client(key) as c:
        ada = _persona(c, "Ada")
        r = c.delete(f"/v1/personas/{ada['id']}")
        assert error_code(r, 409) == "conflict" and "last" in r.json()["error"]["message"]
        bob = _persona(c, "Bob")
        chat = ok(
            c.post("/v1/chats", json={"character_id": character(c)["id"], "persona_id": bob["id"]}),
            201,
        )
        assert chat["persona_id"] == bob["id"] and chat["persona_name"] == "Bob"
        r = c.delete(f"/v1/personas/{bob['id']}")
        assert error_code(r, 409) == "conflict" and "chat" in r.json()["error"]["message"]
        # Deleting the default hands the role to the oldest remaining persona.
        cy = _persona(c, "Cy")
        assert c.delete(f"/v1/personas/{ada['id']}").status_code == 204
        assert _defaults(c) == [bob["id"]]
        assert c.delete(f"/v1/chats/{chat['id']}").status_code == 204
        assert c.delete(f"/v1/personas/{bob['id']}").status_code == 204
        assert _defaults(c) == [cy["id"]]


def test_a_chat_plays_the_default_persona_or_the_built_in_user(srv: LiveServer) -> None:
    _, key = srv.account()
    with srv.client(key) as c:
        ch = character(c)
        chat = ok(c.post("/v1/chats", json={"character_id": ch["id"]}), 201)
        assert chat["persona_id"] is None and chat["persona_name"] == "User"
        assert chat["messages"][0]["content"] == "Hello User, I am Sera."
        ada = _persona(c, "Ada")
        chat = ok(c.post("/v1/chats", json={"character_id": ch["id"]}), 201)
        assert chat["persona_id"] == ada["id"]
        assert chat["messages"][0]["content"] == "Hello Ada, I am Sera."


def test_another_accounts_persona_is_not_found(srv: LiveServer) -> None:
    _, key = srv.account()
    _, other_key = srv.account()
    with srv.client(key) as c, srv.client(other_key) as other:
        ada = _persona(c, "Ada")
        assert error_code(other.get(f"/v1/personas/{ada['id']}"), 404) == "not_found"
        assert error_code(other.patch(f"/v1/personas/{ada['id']}", json={"name": "x"}), 404)
        assert error_code(other.delete(f"/v1/personas/{ada['id']}"), 404) == "not_found"
        ch = character(other)
        r = other.post("/v1/chats", json={"character_id": ch["id"], "persona_id": ada["id"]})
        assert error_code(r, 404) == "not_found"
        assert error_code(c.post("/v1/personas", json={"name": ""}), 400) == "invalid_parameter"
        assert error_code(c.post("/v1/personas", json={"name": "x", "avatar": "med_x"}), 404)
