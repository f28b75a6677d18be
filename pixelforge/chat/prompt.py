"""What the model is sent for a chat: macros in card text and the context messages.

`assemble` here is a small stand-in with the interface of the context assembler
(`ContextInput` in, messages with `pin` out); the full one (lorebook, examples, budgets)
replaces it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_MACRO = re.compile(r"\{\{\s*(char|user)\s*\}\}|<(BOT|USER)>", re.IGNORECASE)
DEFAULT_SYSTEM = (
    "Write {{char}}'s next reply in a fictional chat between {{char}} and {{user}}. "
    "Stay in character."
)


def apply_macros(text: str, *, char: str, user: str) -> str:
    """{{char}} / <BOT> -> the character's name, {{user}} / <USER> -> the persona's."""

    def sub(m: re.Match[str]) -> str:
        word = (m.group(1) or m.group(2)).lower()
        return char if word in ("char", "bot") else user

    return _MACRO.sub(sub, text)


@dataclass(frozen=True)
class ContextInput:
    card: dict[str, Any]
    persona_name: str
    persona_description: str
    history: list[dict[str, str]]
    extra_system: str | None = None


def assemble(ctx: ContextInput) -> list[dict[str, Any]]:
    """A pinned system message from the card and persona, the history as it is, then the
    card's post-history instructions (pinned)."""
    card = ctx.card
    char = str(card.get("name") or "")

    def field(name: str) -> str:
        value = card.get(name)
        return value.strip() if isinstance(value, str) else ""

    parts = [
        field("system_prompt") or DEFAULT_SYSTEM,
        field("description"),
        f"{char}'s personality: {field('personality')}" if field("personality") else "",
        f"Scenario: {field('scenario')}" if field("scenario") else "",
        f"{{{{user}}}}: {ctx.persona_description.strip()}" if ctx.persona_description else "",
        ctx.extra_system or "",
    ]
    system = "\n\n".join(p for p in parts if p)
    out: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": apply_macros(system, char=char, user=ctx.persona_name),
            "pin": True,
        }
    ]
    out.extend({"role": m["role"], "content": m["content"], "pin": False} for m in ctx.history)
    if after := field("post_history_instructions"):
        text = apply_macros(after, char=char, user=ctx.persona_name)
        out.append({"role": "system", "content": text, "pin": True})
    return out
