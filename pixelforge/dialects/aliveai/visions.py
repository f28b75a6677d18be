"""AliveAI visions: the instructions the vision model gets, its answer read as a character
card (forgiving: a description-only card when it wrote no JSON), and the stored cards."""

from __future__ import annotations

import json
from typing import Any

from pixelforge.clock import now
from pixelforge.errors import not_found
from pixelforge.ids import new_id
from pixelforge.store.db import Database
from pixelforge.store.tables import AliveaiVisionRow

# The seed's card fields (CreateChatCharacterFromImageResponse), in its order; then tags.
TEXT_FIELDS = ("name", "description", "personality", "scenario", "first_mes")
MAX_TAGS = 12

SYSTEM = (
    "You write character cards for roleplay chat. You answer with one JSON object and nothing else."
)
_KEYS = (
    '"name", "description" (appearance, clothing and setting as seen in the image), '
    '"personality", "scenario" (where and how the user meets the character), "first_mes" '
    '(the character\'s first message to the user, in character) and "tags" (a list of 3 to 8 '
    "short lowercase tags)"
)
VISION_PROMPT = (
    "Write a text-to-image prompt that would recreate this image: the subject, their "
    "appearance, clothing, pose and expression, the setting, lighting, camera angle and style. "
    "Answer with the prompt only: one paragraph of comma-separated phrases."
)
CLOTHES_PROMPT = (
    "Describe the clothes in this image for a text-to-image prompt: every garment, its colour, "
    "material, cut, fit and details, and the accessories. Answer with the description only: "
    "one paragraph of comma-separated phrases."
)


def create_prompt(name: str) -> str:
    """The instruction for Create Vision: a card for `name` from the image."""
    return (
        f"Look at the image and create a roleplay character named {name} from it. Answer "
        f"with a JSON object with the keys {_KEYS}. The name is {json.dumps(name)}."
    )


def update_prompt(card: dict[str, Any], instruction: str, *, with_image: bool) -> str:
    """The instruction for Update Vision: the card as JSON and how to change it."""
    seen = "The image shows the character. " if with_image else ""
    return (
        f"{seen}Here is a roleplay character card as JSON:\n"
        f"{json.dumps(card_view(card), ensure_ascii=False)}\n"
        f"Change it as follows: {instruction}\n"
        f"Keep everything the change does not touch. Answer with the whole updated card: a "
        f"JSON object with the keys {_KEYS}."
    )


def read_card(text: str, *, base: dict[str, Any]) -> dict[str, Any]:
    """The model's answer as a card over `base` (its fields are kept where the answer has
    none). The first JSON object in the text counts (code fences and chatter around it are
    ignored); without one, the whole text is the description."""
    found = _first_object(text)
    if found is None:
        return card_view({**base, "description": text.strip()})
    card = dict(card_view(base))
    for key in TEXT_FIELDS:
        value = _text(found.get(key))
        if value:
            card[key] = value
    if "tags" in found:
        card["tags"] = _tags(found["tags"])
    return card


def card_view(card: dict[str, Any]) -> dict[str, Any]:
    """The seed's fields (strings, "" when absent) and tags (a list of strings)."""
    view: dict[str, Any] = {key: _text(card.get(key)) for key in TEXT_FIELDS}
    view["tags"] = _tags(card.get("tags"))
    return view


def _first_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    start = text.find("{")
    while start >= 0:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value if _text(v))
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items() if _text(v))
    return str(value)


def _tags(value: Any) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        return []
    tags: list[str] = []
    for item in items:
        tag = _text(item).strip().lower()
        if tag and tag not in tags:
            tags.append(tag[:50])
    return tags[:MAX_TAGS]


# -- stored visions ----------------------------------------------------------------------------
def save_new(
    db: Database, *, account_id: str, media_id: str | None, card: dict[str, Any], job_id: str
) -> str:
    """Store a new vision; its id."""
    at = now()
    vision_id = new_id("vis")
    with db.write() as s:
        s.add(
            AliveaiVisionRow(
                id=vision_id,
                account_id=account_id,
                media_id=media_id,
                card=card,
                job_id=job_id,
                created_at=at,
                updated_at=at,
            )
        )
    return vision_id


def find(db: Database, *, account_id: str, vision_id: str) -> AliveaiVisionRow:
    """The account's vision; anyone else's (or none) is 404."""
    with db.read() as s:
        row = s.get(AliveaiVisionRow, vision_id)
        if row is None or row.account_id != account_id:
            raise not_found(f"vision {vision_id!r}")
        s.expunge(row)
        return row


def save_update(db: Database, *, vision_id: str, card: dict[str, Any], job_id: str) -> None:
    with db.write() as s:
        row = s.get(AliveaiVisionRow, vision_id)
        if row is None:
            raise not_found(f"vision {vision_id!r}")
        row.card = card
        row.job_id = job_id
        row.updated_at = now()
