"""Card files over HTTP: import cards other tools made (PNG V2/V3, JSON, CHARX) as
characters, export them again (JSON, PNG, CHARX), round trips, refusals with nothing stored."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from pixelforge.chat.cards import parse_card
from pixelforge.store.tables import CharacterRow, Media
from tests.chat.live_chat import CARD, character, error_code, ok
from tests.conftest import make_settings
from tests.live import LiveServer

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("cards"), workers=0)) as s:
        yield s


def _import(c: httpx.Client, data: bytes, name: str, ctype: str) -> httpx.Response:
    return c.post("/v1/characters/import", files={"file": (name, data, ctype)})


def _counts(srv: LiveServer, key: str) -> tuple[int, int]:
    """(characters, media items) of the key's account."""
    account, _ = srv.services.accounts.authenticate_key(key)
    with srv.services.db.read() as s:
        chars = s.scalar(
            select(func.count())
            .select_from(CharacterRow)
            .where(CharacterRow.account_id == account.id)
        )
        media = s.scalar(
            select(func.count()).select_from(Media).where(Media.account_id == account.id)
        )
    return int(chars or 0), int(media or 0)


@pytest.mark.parametrize(
    ("file", "ctype", "name"),
    [
        ("default_chan_v3.png", "image/png", "Default-chan"),
        ("coding_sensei_v2.png", "image/png", "Coding Sensei"),
        ("seraphina_v2.json", "application/json", "Seraphina"),
    ],
)
def test_cards_made_by_other_tools_import_with_their_avatar_and_lorebook(
    srv: LiveServer, file: str, ctype: str, name: str
) -> None:
    _, key = srv.account()
    raw = (DATA / file).read_bytes()
    with srv.client(key) as c:
        created = ok(_import(c, raw, file, ctype), 201)
        assert created["name"] == name
        expected = parse_card(raw).data.to_dict()
        assert created["data"] == expected  # every field of the file's `data`, as it came
        if ctype == "image/png":
            # The PNG itself (without its card text) is the character's avatar.
            assert created["avatar"] is not None
            media = ok(c.get(f"/v1/media/{created['avatar']}"))
            assert media["content_type"] == "image/png" and media["width"] > 0
        else:
            assert created["avatar"] is None
        if file.startswith("seraphina"):
            assert len(created["data"]["character_book"]["entries"]) == 4


def test_export_then_import_keeps_unknown_fields_extensions_and_the_top_level(
    srv: LiveServer,
) -> None:
    _, key = srv.account()
    raw = (DATA / "seraphina_v2.json").read_bytes()
    original = json.loads(raw)
    with srv.client(key) as c:
        first = ok(_import(c, raw, "s.json", "application/json"), 201)
        for fmt, spec in (("json", "v2"), ("json", "v3"), ("png", "v3"), ("png", "v2")):
            r = c.get(f"/v1/characters/{first['id']}/card", params={"format": fmt, "spec": spec})
            assert r.status_code == 200, r.text
            assert r.headers["content-disposition"].endswith(f'.{fmt}"')
            card = parse_card(r.content).card
            _same_fields(card.data.to_dict(), first["data"])
            # The card's own top-level fields (SillyTavern repeats V1 fields there) survive.
            for k, v in original.items():
                if k not in ("spec", "spec_version", "data"):
                    assert card.extra_top[k] == v
            again = ok(_import(c, r.content, f"x.{fmt}", r.headers["content-type"]), 201)
            _same_fields(again["data"], first["data"])
        charx = c.get(f"/v1/characters/{first['id']}/card", params={"format": "charx"})
        assert charx.status_code == 200 and zipfile.is_zipfile(io.BytesIO(charx.content))
        back = ok(_import(c, charx.content, "x.charx", "application/zip"), 201)["data"]
        _same_fields({k: v for k, v in back.items() if k != "assets"}, first["data"])


def test_a_character_made_through_the_api_exports_as_a_v3_png_with_both_chunks(
    srv: LiveServer,
) -> None:
    _, key = srv.account()
    with srv.client(key) as c:
        made = character(c)
        r = c.get(f"/v1/characters/{made['id']}/card")  # png, v3 by default
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert b"chara" in r.content and b"ccv3" in r.content
        parsed = parse_card(r.content)
        assert parsed.data.to_dict() == CARD
        assert error_code(c.get(f"/v1/characters/{made['id']}/card?format=charx&spec=v2"), 400)


def _same_fields(exported: dict[str, Any], stored: dict[str, Any]) -> None:
    """Every stored field comes back unchanged; the only additions are the empty defaults a
    spec requires (V3's group_only_greetings)."""
    assert {k: exported.get(k) for k in stored} == stored
    assert all(exported[k] in ([], "", None) for k in exported.keys() - stored.keys())


def _png_without_card() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(out, "PNG")
    return out.getvalue()


def _png_with_chunk(text: bytes) -> bytes:
    import struct
    import zlib

    png = _png_without_card()
    body = b"chara\x00" + text
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return png[:33] + chunk + png[33:]


@pytest.mark.parametrize(
    ("data", "ctype", "status", "code", "needle"),
    [
        (_png_without_card(), "image/png", 400, "invalid_card", "no chara or ccv3"),
        (_png_with_chunk(b"!!not base64!!"), "image/png", 400, "invalid_card", "base64"),
        (
            _png_with_chunk(base64.b64encode(b'{"spec": "chara_card_v2", "data": {}}')),
            "image/png",
            400,
            "invalid_card",
            "name",
        ),
        (b'{"name": ', "application/json", 400, "invalid_card", "JSON"),
        (b"GIF89a not a card", "image/gif", 400, "invalid_card", "not a character card"),
        (b"{" + b" " * (11 * 1024 * 1024) + b"}", "application/json", 413, None, ""),
    ],
)
def test_bad_cards_are_refused_clearly_and_store_nothing(
    srv: LiveServer, data: bytes, ctype: str, status: int, code: str | None, needle: str
) -> None:
    _, key = srv.account()
    before = _counts(srv, key)
    with srv.client(key) as c:
        r = _import(c, data, "card", ctype)
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    if code is not None:
        assert body["error"]["code"] == code
        assert needle.lower() in body["error"]["message"].lower()
    assert _counts(srv, key) == before


def test_another_accounts_character_cannot_be_exported(srv: LiveServer) -> None:
    _, a_key = srv.account()
    _, b_key = srv.account()
    with srv.client(a_key) as a, srv.client(b_key) as b:
        made = character(a)
        assert error_code(b.get(f"/v1/characters/{made['id']}/card"), 404) == "not_found"
        assert error_code(b.get("/v1/characters/chr_nope/card?format=json"), 404) == "not_found"
        r = b.post("/v1/characters/import", content=b"x", headers={"content-type": "text/plain"})
        assert error_code(r, 415) == "unsupported_media_type"
