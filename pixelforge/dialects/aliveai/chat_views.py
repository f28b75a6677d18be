"""AliveAI's chat shapes from the native chat records, and its request fields as card fields.

A character is a native character whose card holds the seed's fields: `bio` -> description,
`shortBio` -> creator_notes, `firstMessage` -> first_mes, `mediaId` -> the avatar,
`promptId` -> extensions.aliveai.promptId. A candidate id is `<messageId>:<index>` (the native
candidates are numbered within their message). See docs/dialects/aliveai.md, "Chat".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import HTTPConnection

from pixelforge.chat.service import BUILTIN_USER, ChatView
from pixelforge.dialects.aliveai.schemas_chat import CharacterRequest
from pixelforge.dialects.aliveai.store import iso, media_view
from pixelforge.errors import PixelForgeError, not_found
from pixelforge.services import Services
from pixelforge.store.tables import CharacterRow, ChatRow, PersonaRow

EXTENSION = "aliveai"  # the card's extensions key for what only this dialect reads
MESSAGE_TYPES = {"user": "USER", "assistant": "CHARACTER"}
MediaOf = Callable[[str], dict[str, Any] | None]


# -- requests -> native ------------------------------------------------------------------------
def card_fields(body: CharacterRequest, extensions: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card fields a Submit/Update Character sets; `extensions`: the card's current ones
    (kept: only `extensions.aliveai.promptId` changes, and only when mediaId is given)."""
    ext = dict(extensions or {})
    if body.mediaId is not None or extensions is None:
        ours = dict(ext.get(EXTENSION) or {})
        ours["promptId"] = body.promptId if body.mediaId else None
        ext[EXTENSION] = ours
    return {
        "name": body.name,
        "description": body.bio,
        "creator_notes": body.shortBio,
        "first_mes": body.firstMessage,
        "extensions": ext,
    }


def candidate_id(message_id: str, index: int) -> str:
    return f"{message_id}:{index}"


def candidate_index(message_id: str, candidate: str) -> int:
    """The index a candidate id names within `message_id` (404 for anything else)."""
    mid, sep, idx = candidate.rpartition(":")
    if not sep or mid != message_id or not idx.isdigit() or len(idx) > 6:
        raise not_found(f"candidate {candidate!r} of message {message_id!r}")
    return int(idx)


# -- native -> views -------------------------------------------------------------------------
def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def character_image(
    services: Services, conn: HTTPConnection, row: CharacterRow
) -> dict[str, Any] | None:
    if row.avatar_media_id is None:
        return None
    try:
        media = services.media.get(account_id=row.account_id, media_id=row.avatar_media_id)
    except PixelForgeError:  # deleted since
        return None
    ours = (row.data.get("extensions") or {}).get(EXTENSION) or {}
    return {**media_view(services, conn, media), "promptId": ours.get("promptId")}


def character(services: Services, conn: HTTPConnection, row: CharacterRow) -> dict[str, Any]:
    """Get Character's object (also the items of Get Characters For User)."""
    first = _text(row.data, "first_mes")
    return {
        "chatCharacterId": row.id,
        "characterName": row.name,
        "characterBio": _text(row.data, "description"),
        "shortBio": _text(row.data, "creator_notes"),
        "firstMessage": {"message": first} if first else None,
        "characterImage": character_image(services, conn, row),
        "created": iso(row.created_at),
        "updated": iso(row.updated_at),
    }


def persona(row: PersonaRow | None) -> dict[str, Any]:
    """A persona; None is the built-in one of a chat made while the account had none."""
    if row is None:
        return {"id": None, "name": BUILTIN_USER, "bio": "", "defaultPersona": False}
    return {
        "id": row.id,
        "name": row.name,
        "bio": row.description,
        "defaultPersona": row.is_default,
    }


def media_of(
    services: Services, conn: HTTPConnection, account_id: str
) -> Callable[[str], dict[str, Any] | None]:
    """The view of an in-chat image's media (None once it is gone)."""

    def view(media_id: str) -> dict[str, Any] | None:
        try:
            row = services.media.get(account_id=account_id, media_id=media_id)
        except PixelForgeError:
            return None
        return media_view(services, conn, row)

    return view


def _candidate(mid: str, selected: int, c: dict[str, Any], media: MediaOf | None) -> dict[str, Any]:
    out = {
        "candidateId": candidate_id(mid, c["index"]),
        "message": c["text"],
        "selected": c["index"] == selected,
        "status": c["status"].upper(),
        "finishReason": c["finish_reason"],
    }
    if c.get("media_id"):  # an in-chat image: its text is the image prompt
        out["mediaId"] = c["media_id"]
        out["media"] = media(c["media_id"]) if media is not None else None
    return out


def message(m: dict[str, Any], media: MediaOf | None = None) -> dict[str, Any]:
    """A message (native `Message.to_dict()`): every candidate, the selected one marked; an
    image message's candidates carry `mediaId` and `media` (resolved by `media`)."""
    mid, selected = m["id"], m["selected"]
    return {
        "messageId": mid,
        "messageType": MESSAGE_TYPES[m["role"]],
        "selectedCandidateId": candidate_id(mid, selected),
        "candidates": [_candidate(mid, selected, c, media) for c in m["candidates"]],
        "created": iso(m["created_at"]),
    }


def chat(view: ChatView, media: MediaOf | None = None) -> dict[str, Any]:
    """Get Chat (and Create Chat's answer): the chat with all its messages."""
    return {
        "chatId": view.row.id,
        "chatCharacterId": view.row.character_id,
        "personaId": view.row.persona_id,
        "messages": [message(m.to_dict(), media) for m in view.messages],
        "created": iso(view.row.created_at),
        "updated": iso(view.row.updated_at),
    }


def chat_item(
    services: Services, conn: HTTPConnection, row: ChatRow, char: CharacterRow | None
) -> dict[str, Any]:
    """An item of Get Chats: the chat without its messages, with its character's name and
    image."""
    image = character_image(services, conn, char) if char is not None else None
    return {
        "chatId": row.id,
        "chatCharacterId": row.character_id,
        "personaId": row.persona_id,
        "characterName": char.name if char is not None else None,
        "characterImage": image,
        "created": iso(row.created_at),
        "updated": iso(row.updated_at),
    }
