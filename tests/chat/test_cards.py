"""Character cards (pixelforge/chat/cards.py): real cards from other tools, round trips, bad input.

The cards under data/ were written by SillyTavern and Choral (see data/README.md). PNGs and
zips for the edge cases are built here by hand with struct, zlib and zipfile, so the reader
is never only checked against PixelForge's own writer.
"""

from __future__ import annotations

import base64
import copy
import json
import struct
import zipfile
import zlib
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pixelforge.chat.cards import (
    V1_SPEC,
    V2_SPEC,
    V3_SPEC,
    Card,
    CardData,
    card_from_json,
    export_charx,
    export_json,
    export_png,
    parse_card,
)
from pixelforge.errors import ErrorCode, PixelForgeError

DATA = Path(__file__).parent / "data"
SIG = b"\x89PNG\r\n\x1a\n"


# -- hand-built PNGs and zips ----------------------------------------------------------------


def _chunk(ctype: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(ctype + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", crc)


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        out.append((png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _text_chunks(png: bytes) -> dict[str, str]:
    return {
        body.split(b"\0")[0].decode(): body.split(b"\0", 1)[1].decode("latin-1")
        for ctype, body in _chunks(png)
        if ctype == b"tEXt"
    }


def _plain_png(size: tuple[int, int] = (4, 6)) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, (200, 30, 40)).save(out, "PNG")
    return out.getvalue()


def _png_with(*extra: bytes, base: bytes | None = None) -> bytes:
    """`base` (a plain PNG by default) with the given raw chunks inserted before IEND."""
    png = base or _plain_png()
    return png[:-12] + b"".join(extra) + png[-12:]


def _b64(value: Any) -> bytes:
    return base64.b64encode(json.dumps(value).encode("utf-8"))


def _text(keyword: str, value: Any) -> bytes:
    return _chunk(b"tEXt", keyword.encode() + b"\0" + _b64(value))


def _zip(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = BytesIO()
    with zipfile.ZipFile(out, "w", compression=method) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return out.getvalue()


def _real(name: str) -> bytes:
    return (DATA / name).read_bytes()


def _ccv3_json(png: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(base64.b64decode(_text_chunks(png)["ccv3"]))
    return value


def _error(data: bytes, **kwargs: Any) -> PixelForgeError:
    with pytest.raises(PixelForgeError) as info:
        parse_card(data, **kwargs)
    return info.value


def _same_json(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# -- real cards ------------------------------------------------------------------------------


def test_a_v3_png_written_by_choral() -> None:
    raw = _real("default_chan_v3.png")
    parsed = parse_card(raw, "Default-chan.png", "image/png")

    assert parsed.format == "png"
    card = parsed.card
    assert (card.spec, card.spec_version) == (V3_SPEC, "3.0")
    assert card.data.name == "Default-chan"
    assert card.data.creator == "Choral"
    assert card.data.character_version == "1.0"
    assert "Cozy" in card.data.tags
    assert len(card.data.alternate_greetings) >= 1
    assert card.data.first_mes.startswith("*Default-chan appears")
    # The avatar is the same picture without the card text.
    assert parsed.avatar is not None and parsed.avatar_content_type == "image/png"
    assert b"ccv3" not in parsed.avatar and len(parsed.avatar) < len(raw) - 8000
    with Image.open(BytesIO(raw)) as a, Image.open(BytesIO(parsed.avatar)) as b:
        assert a.size == b.size and a.tobytes() == b.tobytes()


def test_a_v2_png_written_by_sillytavern() -> None:
    parsed = parse_card(_real("coding_sensei_v2.png"))

    card = parsed.card
    assert (card.spec, card.spec_version) == (V2_SPEC, "2.0")
    assert card.data.name == "Coding Sensei"
    assert card.data.creator == "RossAscends"
    assert card.data.character_version == "v1.010102"
    assert card.data.extensions["talkativeness"] == "0.5"
    # SillyTavern repeats the V1 fields and some of its own at the top level: kept aside.
    assert card.extra_top["name"] == "Coding Sensei"
    assert {"talkativeness", "fav", "create_date", "creatorcomment"} <= set(card.extra_top)
    assert parsed.avatar is not None and b"chara" not in parsed.avatar


def test_a_v2_json_with_a_lorebook() -> None:
    parsed = parse_card(_real("seraphina_v2.json"), "Seraphina.json", "application/json")

    assert parsed.format == "json" and parsed.avatar is None
    data = parsed.card.data
    assert data.name == "Seraphina"
    assert data.creator == "OtisAlejandro"
    assert data.extensions["world"] == "Eldoria"
    book = data.character_book
    assert book is not None and book["name"] == "Eldoria"
    assert len(book["entries"]) == 4
    assert "eldoria" in book["entries"][0]["keys"]
    assert all(isinstance(e["content"], str) and e["content"] for e in book["entries"])


def test_the_lorebook_reads_as_typed_entries() -> None:
    data = parse_card(_real("seraphina_v2.json")).card.data
    raw = data.character_book
    book = data.lorebook
    assert raw is not None and book is not None
    assert book.name == "Eldoria" and len(book.entries) == 4
    first, raw_first = book.entries[0], raw["entries"][0]
    assert first.keys == tuple(raw_first["keys"]) and "eldoria" in first.keys
    assert first.content == raw_first["content"]
    assert first.enabled is raw_first["enabled"]
    assert first.insertion_order == raw_first["insertion_order"]
    assert first.position == raw_first["position"]
    assert parse_card(_broken(("data", "character_book"), None)).card.data.lorebook is None


def test_a_v1_card_is_upgraded() -> None:
    seraphina = json.loads(_real("seraphina_v2.json"))
    fields = ("name", "description", "personality", "scenario", "first_mes", "mes_example")
    v1 = {k: seraphina[k] for k in fields} | {"avatar": "none", "chat": "1673323621108"}

    parsed = parse_card(json.dumps(v1).encode())

    card = parsed.card
    assert card.spec == V1_SPEC
    assert card.data.name == "Seraphina"
    assert card.data.description == seraphina["description"]
    assert card.data.alternate_greetings == [] and card.data.extensions == {}
    assert card.extra_top == {"avatar": "none", "chat": "1673323621108"}
    exported = json.loads(export_json(card, "v2"))
    assert exported["spec"] == V2_SPEC and exported["data"]["name"] == "Seraphina"
    assert exported["avatar"] == "none" and "name" not in exported  # no copy invented


# -- PNG chunk flavours ----------------------------------------------------------------------


def _v2_and_v3() -> tuple[dict[str, Any], dict[str, Any]]:
    v2 = json.loads(_real("seraphina_v2.json"))
    v3 = _ccv3_json(_real("default_chan_v3.png"))
    return v2, v3


@pytest.mark.parametrize("v3_first", [True, False])
def test_the_ccv3_chunk_wins_over_chara(v3_first: bool) -> None:
    v2, v3 = _v2_and_v3()
    chunks = [_text("ccv3", v3), _text("chara", v2)]
    png = _png_with(*(chunks if v3_first else chunks[::-1]))

    parsed = parse_card(png)

    assert parsed.card.spec == V3_SPEC and parsed.card.data.name == "Default-chan"
    assert parsed.avatar == _plain_png()  # both card chunks gone, nothing else touched


def test_a_png_with_only_chara_reads_v2() -> None:
    v2, _ = _v2_and_v3()
    parsed = parse_card(_png_with(_chunk(b"tEXt", b"Comment\0hello"), _text("chara", v2)))
    assert parsed.card.data.name == "Seraphina"
    assert b"Comment\0hello" in (parsed.avatar or b"")  # other text chunks are kept


def test_compressed_text_chunks_carry_cards_too() -> None:
    v2, v3 = _v2_and_v3()
    ztxt = _chunk(b"zTXt", b"chara\0\0" + zlib.compress(_b64(v2)))
    itxt = _chunk(b"iTXt", b"ccv3\0\x01\x00en\0\0" + zlib.compress(_b64(v3)))

    assert parse_card(_png_with(ztxt)).card.data.name == "Seraphina"
    assert parse_card(_png_with(itxt, ztxt)).card.data.name == "Default-chan"
    plain_itxt = _chunk(b"iTXt", b"ccv3\0\x00\x00\0\0" + _b64(v3))
    assert parse_card(_png_with(plain_itxt)).card.data.name == "Default-chan"


def test_wrapped_unpadded_base64_is_read() -> None:
    _, v3 = _v2_and_v3()
    # A filler length that makes the base64 need padding, which is then left off.
    padded = next(t for n in range(3) if (t := _b64({**v3, "x": "y" * n})).endswith(b"="))
    text = padded.rstrip(b"=")
    wrapped = b"\r\n".join(text[i : i + 76] for i in range(0, len(text), 76))
    png = _png_with(_chunk(b"tEXt", b"ccv3\0" + wrapped))
    assert parse_card(png).card.data.name == "Default-chan"


def test_v3_asset_chunks_come_back_as_assets() -> None:
    _, v3 = _v2_and_v3()
    asset = _chunk(b"tEXt", b"chara-ext-asset_:0\0" + base64.b64encode(b"RIFF-sound"))
    parsed = parse_card(_png_with(_text("ccv3", v3), asset))
    assert parsed.assets == {"0": b"RIFF-sound"}
    assert b"chara-ext-asset" not in (parsed.avatar or b"")


# -- CHARX -----------------------------------------------------------------------------------


def _charx_from_default_chan() -> tuple[bytes, bytes]:
    """A CHARX built with zipfile alone from the Choral card: (zip, icon PNG)."""
    raw = _real("default_chan_v3.png")
    card = _ccv3_json(raw)
    icon = parse_card(raw).avatar
    assert icon is not None
    path = "assets/icon/images/main.png"
    card["data"]["assets"] = [
        {"type": "icon", "uri": f"embeded://{path}", "name": "main", "ext": "png"}
    ]
    files = {"card.json": json.dumps(card).encode(), path: icon, "x_meta/1.json": b"{}"}
    return _zip(files), icon


def test_a_charx_gives_its_card_avatar_and_assets() -> None:
    archive, icon = _charx_from_default_chan()

    parsed = parse_card(archive, "Default-chan.charx")

    assert parsed.format == "charx"
    assert parsed.card.data.name == "Default-chan"
    assert parsed.avatar == icon and parsed.avatar_content_type == "image/png"
    assert set(parsed.assets) == {"assets/icon/images/main.png", "x_meta/1.json"}


def test_a_charx_behind_a_jpeg_preview_is_read() -> None:
    archive, _ = _charx_from_default_chan()
    jpeg = BytesIO()
    Image.new("RGB", (8, 8)).save(jpeg, "JPEG")
    assert parse_card(jpeg.getvalue() + archive).card.data.name == "Default-chan"


def test_export_charx_embeds_the_avatar_as_main_icon() -> None:
    parsed = parse_card(_real("seraphina_v2.json"))
    avatar = _plain_png((10, 15))

    again = parse_card(export_charx(parsed.card, {"assets/other/notes.txt": b"hi"}, avatar=avatar))

    assert again.avatar == avatar
    assert again.assets["assets/other/notes.txt"] == b"hi"
    assert again.card.spec == V3_SPEC
    assert again.card.data.assets[0]["uri"] == "embeded://assets/icon/images/main.png"


# -- exports and round trips -----------------------------------------------------------------


def _with_unknowns(card: Card) -> Card:
    """The card plus unknown fields at every level a tool might put them."""
    data = card.data.to_dict()
    data["x_tool"] = {"nested": [1, 2.5, None, True, "é ✓"], "deep": {"a": {"b": []}}}
    data["extensions"] = {**data.get("extensions", {}), "depth_prompt": {"depth": 4}}
    book = data.get("character_book") or {"entries": [{"keys": ["k"], "content": "c"}]}
    book["x_book"] = 7
    book["entries"][0]["x_entry"] = {"weight": 0.125, "tags": ["a"]}
    book["entries"][0]["extensions"] = {"display_index": 3, "probability": 100}
    data["character_book"] = book
    top = {**card.extra_top, "x_top": {"kept": [1, {"two": 2}]}}
    return Card(CardData(data), card.spec, card.spec_version, top)


def _exports(card: Card) -> list[tuple[str, bytes]]:
    return [
        ("json-v2", export_json(card, "v2")),
        ("json-v3", export_json(card, "v3")),
        ("png-v2", export_png(card, None, "v2")),
        ("png-v3", export_png(card, _plain_png(), "v3")),
        ("charx", export_charx(card, {})),
    ]


@pytest.mark.parametrize(
    "name", ["default_chan_v3.png", "coding_sensei_v2.png", "seraphina_v2.json"]
)
def test_a_round_trip_keeps_every_field(name: str) -> None:
    card = _with_unknowns(parse_card(_real(name)).card)
    original = card.data.to_dict()

    for label, exported in _exports(card):
        again = parse_card(exported).card
        data = again.data.to_dict()
        for key, value in original.items():
            assert _same_json(data[key], value), (label, key)
        # Only spec-required defaults may have been added.
        added = set(data) - set(original)
        allowed = {"group_only_greetings"} | {
            "creator_notes", "system_prompt", "post_history_instructions",
            "alternate_greetings", "tags", "creator", "character_version", "extensions",
        }  # fmt: skip
        assert added <= allowed, (label, added)
        assert _same_json(again.extra_top, card.extra_top), label
        assert again.spec == (V2_SPEC if label.endswith("v2") else V3_SPEC)


def test_a_missing_spec_version_follows_the_spec() -> None:
    v3 = _ccv3_json(_real("default_chan_v3.png"))
    del v3["spec_version"]
    assert card_from_json(v3).spec_version == "3.0"
    v2 = _seraphina()
    del v2["spec"], v2["spec_version"]
    assert (card_from_json(v2).spec, card_from_json(v2).spec_version) == (V2_SPEC, "2.0")


def test_an_unknown_export_spec_is_refused() -> None:
    card = parse_card(_real("seraphina_v2.json")).card
    for export in (export_json, export_png):
        with pytest.raises(PixelForgeError) as info:
            export(card, spec="v4")  # type: ignore[call-arg, arg-type]
        assert info.value.code == ErrorCode.invalid_parameter


def test_the_spec_version_a_card_came_with_is_kept() -> None:
    v3 = _ccv3_json(_real("default_chan_v3.png")) | {"spec_version": "3.1"}
    card = card_from_json(v3)
    assert json.loads(export_json(card, "v3"))["spec_version"] == "3.1"
    assert json.loads(export_json(card, "v2"))["spec_version"] == "2.0"


def test_png_exports_write_chara_and_for_v3_ccv3() -> None:
    card = parse_card(_real("default_chan_v3.png")).card

    v2 = _text_chunks(export_png(card, _plain_png(), "v2"))
    v3 = _text_chunks(export_png(card, _plain_png(), "v3"))

    assert set(v2) == {"chara"}
    assert set(v3) == {"chara", "ccv3"}
    assert json.loads(base64.b64decode(v3["chara"]))["spec"] == V2_SPEC
    assert json.loads(base64.b64decode(v3["ccv3"]))["spec"] == V3_SPEC


def test_a_png_export_reuses_the_avatar_and_replaces_old_card_text() -> None:
    parsed = parse_card(_real("coding_sensei_v2.png"))
    renamed = Card(parsed.card.data.replace(name="Sensei"), V2_SPEC, "2.0", parsed.card.extra_top)

    png = export_png(renamed, _real("coding_sensei_v2.png"), "v2")

    assert [c for c, _ in _chunks(png)].count(b"tEXt") == 1
    again = parse_card(png)
    assert again.card.data.name == "Sensei"
    assert again.card.extra_top["name"] == "Sensei"  # the legacy top-level copy follows data
    assert again.avatar == parsed.avatar


def test_without_an_avatar_the_png_is_a_plain_400x600_image() -> None:
    card = parse_card(_real("seraphina_v2.json")).card
    with Image.open(BytesIO(export_png(card, None))) as img:
        assert img.size == (400, 600)


def test_a_jpeg_avatar_becomes_png() -> None:
    card = parse_card(_real("seraphina_v2.json")).card
    jpeg = BytesIO()
    Image.new("RGB", (12, 9), (0, 90, 0)).save(jpeg, "JPEG")
    png = export_png(card, jpeg.getvalue())
    assert png.startswith(SIG)
    with Image.open(BytesIO(png)) as img:
        assert img.size == (12, 9)


# -- bad input -------------------------------------------------------------------------------


def _seraphina() -> dict[str, Any]:
    value: dict[str, Any] = json.loads(_real("seraphina_v2.json"))
    return value


def _broken(path: tuple[str | int, ...], value: Any) -> bytes:
    card = _seraphina()
    target: Any = card
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(card).encode()


@pytest.mark.parametrize(
    ("label", "data", "message"),
    [
        ("malformed JSON", b'{"spec": "chara_card_v2", "data": {"name": ', "not valid JSON"),
        ("not a card", b'{"title": "a recipe", "steps": []}', "no name"),
        ("empty name", json.dumps({"name": "  "}).encode(), "no name"),
        ("a list", b'[{"name": "x"}]', "must be a JSON object"),
        ("NaN", b'{"name": "x", "depth": NaN}', "not valid JSON"),
        ("deep nesting", b'{"name": "x", "e": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "JSON"),
        ("not UTF-8", b'{"name": "\xff\xfe"}', "UTF-8"),
        ("spec, no data", b'{"spec": "chara_card_v2", "name": "x"}', "no data"),
        ("empty file", b"", "not a character card"),
        ("random bytes", bytes(range(256)) * 4, "not a character card"),
        (
            "alternate_greetings a string",
            _broken(("data", "alternate_greetings"), "hi"),
            "alternate_greetings must be a list of strings",
        ),
        ("tags with numbers", _broken(("data", "tags"), ["a", 1]), "tags must be a list"),
        ("name a number", _broken(("data", "name"), 5), "no name"),
        ("extensions a list", _broken(("data", "extensions"), []), "extensions must be an object"),
        (
            "lorebook keys a string",
            _broken(("data", "character_book", "entries", 0, "keys"), "eldoria"),
            "character_book.entries[0].keys must be a list of strings",
        ),
        (
            "lorebook entry a string",
            _broken(("data", "character_book", "entries", 1), "oops"),
            "character_book.entries[1] must be an object",
        ),
        (
            "enabled a string",
            _broken(("data", "character_book", "entries", 0, "enabled"), "yes"),
            "enabled must be true or false",
        ),
        ("creation_date a string", _broken(("data", "creation_date"), "today"), "a number"),
    ],
)
def test_bad_json_is_refused_with_invalid_card(label: str, data: bytes, message: str) -> None:
    err = _error(data)
    assert err.code == ErrorCode.invalid_card, label
    assert err.status == 400
    assert message in err.message, (label, err.message)


def test_nulls_for_optional_fields_are_accepted() -> None:
    data = _broken(("data", "character_book"), None)
    card = parse_card(data).card
    assert card.data.character_book is None
    assert json.loads(export_json(card))["data"]["character_book"] is None


def test_oversize_files_are_refused() -> None:
    too_big = b" " * (10 * 1024 * 1024 + 1)
    assert _error(too_big).code == ErrorCode.exceed_max_filesize
    big_json = json.dumps({"name": "x", "description": "y" * (2 * 1024 * 1024)}).encode()
    err = _error(big_json)
    assert err.code == ErrorCode.exceed_max_filesize and err.status == 413


def test_a_png_without_a_card_is_refused() -> None:
    err = _error(_png_with(_chunk(b"tEXt", b"Software\0GIMP")), filename="photo.png")
    assert err.code == ErrorCode.invalid_card
    assert err.message == "this PNG carries no character card (no chara or ccv3 text chunk)"


_CUT = zlib.compress(b"abc" * 50)[:-6]


@pytest.mark.parametrize(
    ("label", "png", "message"),
    [
        ("bad base64", _png_with(_chunk(b"tEXt", b"chara\0not*base64!")), "not valid base64"),
        ("not JSON", _png_with(_chunk(b"tEXt", b"ccv3\0" + base64.b64encode(b"\x00"))), "JSON"),
        ("truncated", _plain_png()[:-20], "truncated"),
        ("bad zTXt stream", _png_with(_chunk(b"zTXt", b"chara\0\0not zlib")), "corrupt"),
        ("cut zTXt stream", _png_with(_chunk(b"zTXt", b"chara\0\0" + _CUT)), "truncated"),
    ],
)  # fmt: skip
def test_broken_pngs_are_refused(label: str, png: bytes, message: str) -> None:
    err = _error(png)
    assert err.code == ErrorCode.invalid_card, label
    assert message in err.message, (label, err.message)


def test_a_bad_crc_is_refused() -> None:
    png = bytearray(_real("default_chan_v3.png"))
    start = png.index(b"ccv3") + 100  # inside the card text, which Pillow would not check
    png[start] ^= 0x01
    err = _error(bytes(png))
    assert err.code == ErrorCode.invalid_card and "CRC of its tEXt chunk" in err.message


def test_a_decompression_bomb_in_ztxt_is_refused() -> None:
    bomb = zlib.compress(b"A" * (40 * 1024 * 1024), 9)  # ~40 KB that inflates to 40 MB
    for chunk in (
        _chunk(b"zTXt", b"chara\0\0" + bomb),
        _chunk(b"iTXt", b"ccv3\0\x01\x00\0\0" + bomb),
    ):
        err = _error(_png_with(chunk))
        assert err.code == ErrorCode.invalid_card and "inflates past" in err.message


def test_a_charx_zip_bomb_is_refused() -> None:
    card = json.dumps({"spec": "chara_card_v3", "data": {"name": "x"}}).encode()
    archive = _zip({"card.json": card, "assets/other/big.bin": b"\0" * (20 * 1024 * 1024)})
    err = _error(archive)
    assert err.code == ErrorCode.invalid_card and "zip bomb" in err.message


def test_a_charx_with_too_many_files_is_refused() -> None:
    files = {f"assets/other/{i}.txt": b"x" for i in range(1001)}
    files["card.json"] = b'{"name": "x"}'
    err = _error(_zip(files, zipfile.ZIP_STORED))
    assert err.code == ErrorCode.invalid_card and "at most 1000" in err.message


def test_a_charx_whose_headers_understate_a_size_is_refused() -> None:
    big = b"\0" * (4 * 1024 * 1024)
    archive = bytearray(_zip({"card.json": b'{"name": "x"}', "assets/other/a.bin": big}))
    # Declare 10 bytes for a.bin in its local header and in the central directory.
    local = archive.index(b"PK\x03\x04", 1)
    central = archive.index(b"PK\x01\x02", archive.index(b"PK\x01\x02") + 4)
    struct.pack_into("<I", archive, local + 22, 10)
    struct.pack_into("<I", archive, central + 24, 10)
    err = _error(bytes(archive))
    assert err.code == ErrorCode.invalid_card


def test_a_charx_without_card_json_is_refused() -> None:
    err = _error(_zip({"assets/icon/images/main.png": _plain_png()}), filename="x.charx")
    assert err.code == ErrorCode.invalid_card and "no card.json" in err.message


def test_a_corrupt_charx_is_refused() -> None:
    card = json.dumps({"data": {"name": "x", "description": "d" * 5000}}).encode()
    archive = bytearray(_zip({"card.json": card}))
    archive[60] ^= 0xFF  # inside the deflated card.json
    err = _error(bytes(archive))
    assert err.code == ErrorCode.invalid_card


def test_replace_checks_like_a_parse() -> None:
    data = parse_card(_real("seraphina_v2.json")).card.data
    assert data.replace(nickname="Sera").nickname == "Sera"
    assert data.name == "Seraphina"  # the original is untouched
    with pytest.raises(PixelForgeError) as info:
        data.replace(group_only_greetings="hello")
    assert info.value.code == ErrorCode.invalid_card


def test_reads_are_copies() -> None:
    data = parse_card(_real("seraphina_v2.json")).card.data
    before = copy.deepcopy(data.to_dict())
    data.tags.append("x")
    book = data.character_book
    assert book is not None
    book["entries"].clear()
    data.extensions["world"] = "elsewhere"
    assert data.to_dict() == before
