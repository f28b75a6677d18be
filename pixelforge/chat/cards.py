"""Character cards (V1, V2 and V3) read from JSON, PNG or CHARX and written back.

A card is kept as the JSON it came as: `CardData` wraps the `data` object and offers typed
reads of the fields the specs define, while every field it came with (unknown ones, tool
`extensions`, lorebook entry fields) survives an export untouched. The top level's own
unknown fields ride along in `Card.extra_top`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError

from pixelforge.chat import card_png, charx
from pixelforge.chat.card_data import V1_FIELDS, CardData, Lorebook, LoreEntry
from pixelforge.errors import ErrorCode, PixelForgeError, too_large

MAX_CARD_FILE_BYTES = 10 * 1024 * 1024
MAX_CARD_JSON_BYTES = 2 * 1024 * 1024
MAX_AVATAR_PIXELS = 64 * 1024 * 1024
PLACEHOLDER_SIZE = (400, 600)

V1_SPEC, V2_SPEC, V3_SPEC = "chara_card_v1", "chara_card_v2", "chara_card_v3"
_SPECS = {"v2": (V2_SPEC, "2.0"), "v3": (V3_SPEC, "3.0")}
# Filled in on export when missing: V2 requires these; V3 adds group_only_greetings.
_V2_DEFAULTS: dict[str, Any] = {
    "creator_notes": "",
    "system_prompt": "",
    "post_history_instructions": "",
    "alternate_greetings": [],
    "tags": [],
    "creator": "",
    "character_version": "",
    "extensions": {},
}
_IMAGE_TYPES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}

Spec = Literal["v2", "v3"]

__all__ = [
    "Card",
    "CardData",
    "LoreEntry",
    "Lorebook",
    "ParsedCard",
    "export_charx",
    "export_json",
    "export_png",
]
__all__ += ["V1_SPEC", "V2_SPEC", "V3_SPEC", "card_from_json", "card_to_json", "parse_card"]


def _bad(message: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.invalid_card, message)


@dataclass(frozen=True)
class Card:
    """A whole card: its data, the spec it came as, and the rest of its top level."""

    data: CardData
    spec: str = V3_SPEC  # as it came: chara_card_v1 (upgraded), chara_card_v2, chara_card_v3
    spec_version: str = "3.0"
    extra_top: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedCard:
    card: Card
    format: Literal["json", "png", "charx"]
    avatar: bytes | None = None  # the image to show for the character (PNG: without card text)
    avatar_content_type: str | None = None
    assets: dict[str, bytes] = field(default_factory=dict)  # CHARX files / PNG asset chunks

    @property
    def data(self) -> CardData:
        return self.card.data


# -- reading ---------------------------------------------------------------------------------


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _load_json(raw: bytes | str, what: str) -> Any:
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > MAX_CARD_JSON_BYTES:
        raise too_large(what, MAX_CARD_JSON_BYTES)
    try:
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        return json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise _bad(f"{what} is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise _bad(f"{what} is not valid JSON ({exc})") from None


def card_from_json(value: Any) -> Card:
    """A Card from a decoded JSON value: V2/V3 (`spec` + `data`) or a flat V1 card."""
    if not isinstance(value, dict):
        raise _bad("a character card must be a JSON object")
    if isinstance(value.get("data"), dict):
        spec = value.get("spec")
        version = value.get("spec_version")
        if spec is not None and not isinstance(spec, str):
            raise _bad("the card's spec must be a string")
        if version is not None and not isinstance(version, str | int | float):
            raise _bad("the card's spec_version must be a string")
        extra = {k: v for k, v in value.items() if k not in ("spec", "spec_version", "data")}
        spec = spec or V2_SPEC
        if version is None:
            version = "3.0" if spec == V3_SPEC else "2.0"
        return Card(_named(value["data"]), spec, str(version), extra)
    if "spec" in value or "data" in value:
        raise _bad("this card has a spec or data field but no data object")
    # V1: the six fields at the top level; the rest of the top level rides along.
    data = {**_V2_DEFAULTS, **{k: value[k] for k in V1_FIELDS if k in value}}
    extra = {k: v for k, v in value.items() if k not in V1_FIELDS}
    return Card(data=_named(data), spec=V1_SPEC, spec_version="1.0", extra_top=extra)


def _named(data: dict[str, Any]) -> CardData:
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _bad("this JSON is not a character card: it has no name")
    return CardData(data)


def _decode_chunk_text(keyword: str, text: str) -> Any:
    stripped = text.strip()
    if stripped.startswith("{"):  # a few old tools wrote the JSON itself, not base64
        return _load_json(stripped, f"the {keyword} chunk")
    return _load_json(_unbase64(stripped, f"the {keyword} chunk"), f"the {keyword} chunk's card")


def _unbase64(text: str, what: str) -> bytes:
    """Strict base64, forgiving only line breaks and missing padding (some writers do both)."""
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"{what} of this PNG is not valid base64") from None


def _parse_png(data: bytes) -> ParsedCard:
    found = card_png.read_card_text(
        data, max_text_bytes=MAX_CARD_JSON_BYTES * 4 // 3 + 4, max_asset_bytes=len(data)
    )
    # V3 says: when both are present, the ccv3 chunk wins.
    keyword = next((k for k in card_png.CARD_KEYWORDS if k in found.texts), None)
    if keyword is None:
        raise _bad("this PNG carries no character card (no chara or ccv3 text chunk)")
    card = card_from_json(_decode_chunk_text(keyword, found.texts[keyword]))
    assets: dict[str, bytes] = {}
    for path, text in found.assets.items():
        assets[path] = _unbase64(text, f"the embedded asset {path!r}")
    return ParsedCard(card, "png", found.image, "image/png", assets)


def _main_icon_path(data: CardData, files: Mapping[str, bytes]) -> str | None:
    """The zip path of the main icon: `icon` named `main`, else the first icon, else none."""
    icons = [a for a in data.assets if isinstance(a, dict) and a.get("type") == "icon"]
    icons.sort(key=lambda a: a.get("name") != "main")
    for asset in icons:
        uri = asset.get("uri")
        if isinstance(uri, str):
            for prefix in ("embeded://", "embedded://"):
                path = uri.removeprefix(prefix)
                if uri.startswith(prefix) and path in files:
                    return path
    return None


def _parse_charx(data: bytes) -> ParsedCard:
    contents = charx.read_charx(data, max_card_json_bytes=MAX_CARD_JSON_BYTES)
    card = card_from_json(_load_json(contents.card_json, "card.json"))
    icon = _main_icon_path(card.data, contents.files)
    avatar = contents.files[icon] if icon else None
    return ParsedCard(card, "charx", avatar, _image_type(avatar), contents.files)


def _image_type(data: bytes | None) -> str | None:
    if data is None:
        return None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((t for magic, t in _IMAGE_TYPES.items() if data.startswith(magic)), None)


def parse_card(
    data: bytes, filename: str | None = None, content_type: str | None = None
) -> ParsedCard:
    """Read a card file: PNG (chara/ccv3 text), CHARX (zip with card.json) or JSON.

    The bytes decide the format; `filename` and `content_type` only sharpen the message when
    a file is none of them.
    """
    if len(data) > MAX_CARD_FILE_BYTES:
        raise too_large("the card file", MAX_CARD_FILE_BYTES)
    if card_png.is_png(data):
        return _parse_png(data)
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"{", b"[")):
        return ParsedCard(card_from_json(_load_json(data, "the card file")), "json")
    if charx.looks_like_zip(data):
        return _parse_charx(data)
    said = ", ".join(x for x in (filename, content_type) if x)
    raise _bad(
        "this file is not a character card: expected a PNG with card text, a CHARX (zip) "
        "or a JSON card" + (f" (got {said})" if said else "")
    )


# -- writing ---------------------------------------------------------------------------------


def _spec(spec: str) -> tuple[str, str]:
    if spec not in _SPECS:
        raise PixelForgeError(ErrorCode.invalid_parameter, f"unknown card spec {spec!r}")
    return _SPECS[spec]


def card_to_json(card: Card, spec: Spec = "v3") -> dict[str, Any]:
    """The card as a JSON object of the given spec; unknown fields kept as they came."""
    name, version = _spec(spec)
    if card.spec == name:
        version = card.spec_version
    data = {**copy.deepcopy(_V2_DEFAULTS), **card.data.to_dict()}
    if spec == "v3":
        data.setdefault("group_only_greetings", [])
    top = copy.deepcopy(card.extra_top)
    for key in V1_FIELDS:  # legacy copies at the top level never contradict `data`
        if key in top:
            top[key] = data.get(key, top[key])
    return {"spec": name, "spec_version": version, "data": data, **top}


def export_json(card: Card, spec: Spec = "v3") -> bytes:
    return json.dumps(card_to_json(card, spec), ensure_ascii=False, indent=2).encode("utf-8")


def _b64_json(card: Card, spec: Spec) -> str:
    text = json.dumps(card_to_json(card, spec), ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _as_png(image: bytes | None) -> bytes:
    """The avatar as PNG bytes: a PNG as it is, another image converted, none a placeholder."""
    out = BytesIO()
    if image is None:
        Image.new("RGB", PLACEHOLDER_SIZE, (96, 104, 120)).save(out, "PNG")
        return out.getvalue()
    if card_png.is_png(image):
        return image
    try:
        with Image.open(BytesIO(image)) as img:
            if img.width * img.height > MAX_AVATAR_PIXELS:
                raise _bad(f"the avatar has more than {MAX_AVATAR_PIXELS} pixels")
            img.save(out, "PNG")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
        message = f"cannot read the avatar ({exc})"
        raise PixelForgeError(ErrorCode.error_decode_image, message) from None
    return out.getvalue()


def export_png(card: Card, avatar_png: bytes | None = None, spec: Spec = "v3") -> bytes:
    """A PNG card: `chara` (V2) always, plus `ccv3` (V3) for a V3 export, as current tools do."""
    _spec(spec)
    texts = [("chara", _b64_json(card, "v2"))]
    if spec == "v3":
        texts.append(("ccv3", _b64_json(card, "v3")))
    return card_png.write_card_text(_as_png(avatar_png), texts)


def export_charx(
    card: Card, assets: Mapping[str, bytes] | None = None, *, avatar: bytes | None = None
) -> bytes:
    """A CHARX zip: card.json (V3) and the assets at their paths (`assets/...`).

    An `avatar` given for a card with no embedded main icon is stored as
    `assets/icon/images/main.<ext>` and named in the card's `assets` list.
    """
    files = dict(assets or {})
    data = card.data
    if avatar is not None and _main_icon_path(data, files) is None:
        kind = _image_type(avatar)
        if kind is None:
            raise PixelForgeError(ErrorCode.error_decode_image, "the avatar is not an image")
        ext = kind.removeprefix("image/").replace("jpeg", "jpg")
        path = f"assets/icon/images/main.{ext}"
        files[path] = avatar
        entry = {"type": "icon", "uri": f"embeded://{path}", "name": "main", "ext": ext}
        kept = [a for a in data.assets if not (a.get("type") == "icon" and a.get("name") == "main")]
        data = data.replace(assets=[entry, *kept])
    doc = card_to_json(Card(data, card.spec, card.spec_version, card.extra_top), "v3")
    return charx.write_charx(json.dumps(doc, ensure_ascii=False).encode("utf-8"), files)
