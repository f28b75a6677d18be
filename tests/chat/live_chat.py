"""Helpers for the chat API tests: a models folder holding only tiny-llama (the default
chat model there), a server on it, and small request helpers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from pixelforge.models.base import CHAT, IMAGE_TO_IMAGE, TEXT_TO_IMAGE
from pixelforge.models.catalog import Catalog
from pixelforge.models.tiny_llm import TINY_LLAMA, write_tiny_llama

if TYPE_CHECKING:
    from tests.conftest import TinyModels

CARD: dict[str, Any] = {
    "name": "Seraphina",
    "description": "{{char}} is a guardian of the forest glade.",
    "personality": "kind, protective",
    "scenario": "{{user}} wakes up in {{char}}'s cottage.",
    "first_mes": "Hello {{user}}, I am {{char}}.",
    "alternate_greetings": ["Welcome back, {{user}}.", "<USER>? You are awake!"],
    "mes_example": "<START>\n{{user}}: hi\n{{char}}: hello",
    "system_prompt": "You are {{char}}.",
    "post_history_instructions": "Stay in character.",
    "creator_notes": "a test card",
    "tags": ["fantasy", "guardian"],
    "creator": "tests",
    "character_version": "1.0",
    "character_book": {
        "name": "glade",
        "entries": [{"keys": ["glade"], "content": "The glade is enchanted.", "enabled": True}],
    },
    "extensions": {"talkativeness": "0.5", "depth_prompt": {"depth": 4, "prompt": "x"}},
    "nickname": "Sera",
    "group_only_greetings": ["Hello everyone."],
    "assets": [{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
    "source": ["https://example.com/seraphina"],
    "creation_date": 1700000000,
    "modification_date": 1700000001,
    "creator_notes_multilingual": {"fr": "une carte de test"},
    "x_unknown_field": {"kept": [1, 2, 3]},
}


def llm_models_dir(root: Path) -> Path:
    """A models folder with tiny-llama, which is the default chat model there."""
    write_tiny_llama(root / TINY_LLAMA.id)
    catalog = Catalog(root)
    catalog.add_profile(TINY_LLAMA)
    catalog.set_default(CHAT, TINY_LLAMA.id)
    return root


def image_models_dir(tiny: TinyModels, root: Path) -> Path:
    """The tiny models, tiny-llama the default chat model and tiny-sd the image one."""
    catalog = Catalog(root)
    for profile in tiny.profiles:
        catalog.add_profile(dataclasses.replace(profile, source=str(tiny.dir / profile.id)))
    catalog.set_default(CHAT, "tiny-llama")
    catalog.set_default(TEXT_TO_IMAGE, "tiny-sd")
    catalog.set_default(IMAGE_TO_IMAGE, "tiny-sd")
    return root


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def error_code(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    code: str = r.json()["error"]["code"]
    return code


def character(c: httpx.Client, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = ok(c.post("/v1/characters", json={**CARD, **fields}), 201)
    return body


def ndjson(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.strip()]


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each server-sent event."""
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((fields["event"], json.loads(fields["data"])))
    return out
