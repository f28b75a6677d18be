"""Context assembly for character chat: a card, a persona and a history into chat messages.

`assemble` returns `[{"role", "content", "pin"}]` for a `chat` job with trim=True (the worker
drops the oldest unpinned non-system messages, never the last, to fit the model's window):

1. One pinned system message: the system prompt (the card's `system_prompt`, whose
   `{{original}}` stands for DEFAULT_SYSTEM_PROMPT; DEFAULT_SYSTEM_PROMPT when empty), then
   `extra_system`, then lorebook entries placed before_char, the description,
   "{{char}}'s personality: ...", "Scenario: ...", entries placed after_char, and
   "About {{user}}: <persona description>". Empty parts are left out. One message keeps
   templates that accept a single leading system message working.
2. Example dialogue (`mes_example`): every `<START>` block becomes user/assistant turns, NOT
   pinned, so trimming drops them before any real history; then a pinned system message
   NEW_CHAT_MARKER ("[Start a new chat]") when there were examples.
3. The history as given (literal text, no macros), unpinned, with `@@depth N` lorebook entries
   inserted N messages from its end (pinned, role from `@@role`, system by default).
4. `post_history_instructions` (its `{{original}}` is empty: there is no global one), a pinned
   system message after the history. Templates that refuse a system message there must merge
   it into the last user turn; the chat templates of the bundled models accept it.

Macros (`apply_macros`) apply to card-derived text, the persona description and `extra_system`;
never to history. The greeting (`first_mes` / `alternate_greetings`) is not added here: a chat
stores its chosen greeting (macros applied) as its first assistant message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from pixelforge.chat.lorebook import ActivatedEntry, estimate_tokens, parse_book, select_entries
from pixelforge.errors import ErrorCode, PixelForgeError

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "NEW_CHAT_MARKER",
    "ContextInput",
    "apply_macros",
    "assemble",
    "estimate_tokens",
]

DEFAULT_SYSTEM_PROMPT = (
    "Write {{char}}'s next reply in a fictional chat between {{char}} and {{user}}."
)
NEW_CHAT_MARKER = "[Start a new chat]"
DEFAULT_CHAR = "Character"
DEFAULT_USER = "User"

Message = dict[str, Any]  # {"role": "system" | "user" | "assistant", "content": str, "pin": bool}


@dataclass(frozen=True)
class ContextInput:
    """Everything one turn's prompt is built from."""

    card: dict[str, Any]  # the Character Card V3 `data` object (V2 fields + V3 additions)
    persona_name: str = DEFAULT_USER
    persona_description: str = ""
    history: Sequence[
        dict[str, str]
    ] = ()  # [{"role": "user"|"assistant", "content"}], oldest first
    extra_system: str | None = None  # the operator's / chat's own instructions
    token_budget: int | None = None  # overrides the lorebook's token_budget


# {{char}} {{user}} (any case, inner spaces allowed), the legacy <USER> <BOT> <CHAR>, and the
# V3 comment forms {{// ...}}, {{hidden_key: ...}}, {{comment: ...}} (replaced by nothing).
_MACRO = re.compile(
    r"\{\{\s*(char|user)\s*\}\}|<(user|bot|char)>|\{\{\s*(?://|hidden_key\s*:|comment\s*:).*?\}\}",
    re.IGNORECASE | re.DOTALL,
)
_ORIGINAL = re.compile(r"\{\{\s*original\s*\}\}", re.IGNORECASE)


def apply_macros(text: str, *, char: str, user: str) -> str:
    """Replace the name macros in one pass (a name containing `{{user}}` stays literal)."""

    def replace(match: re.Match[str]) -> str:
        name = (match.group(1) or match.group(2) or "").lower()
        if not name:
            return ""
        return user if name == "user" else char

    return _MACRO.sub(replace, text)


def assemble(ctx: ContextInput) -> list[Message]:
    """The messages for one chat turn; see the module docstring for the layout."""
    data = _card_data(ctx.card)
    char = _text(data, "nickname") or _text(data, "name") or DEFAULT_CHAR
    user = ctx.persona_name.strip() or DEFAULT_USER
    render = partial(apply_macros, char=char, user=user)
    history = _history(ctx.history)
    lore = select_entries(
        parse_book(data.get("character_book")),
        [m["content"] for m in history],
        render=render,
        token_budget=ctx.token_budget,
    )
    messages = [_message("system", _definitions(data, ctx, lore, render, char=char), pin=True)]
    examples = _example_turns(
        _text(data, "mes_example"), char=char, user=user, names=(_text(data, "name"), char)
    )
    if examples:
        messages += [*examples, _message("system", NEW_CHAT_MARKER, pin=True)]
    messages += _with_depth_entries(history, [e for e in lore if e.position == "depth"])
    post = render(_ORIGINAL.sub("", _text(data, "post_history_instructions"))).strip()
    if post:
        messages.append(_message("system", post, pin=True))
    return messages


def _message(role: str, content: str, *, pin: bool) -> Message:
    return {"role": role, "content": content, "pin": pin}


def _card_data(card: Mapping[str, Any]) -> Mapping[str, Any]:
    """The `data` object; a whole V2/V3 card (`spec` + `data`) is accepted too."""
    if not isinstance(card, Mapping):
        raise PixelForgeError(ErrorCode.invalid_parameter, "card must be an object")
    data = card.get("data")
    if isinstance(card.get("spec"), str) and isinstance(data, Mapping):
        return data
    return card


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PixelForgeError(ErrorCode.invalid_parameter, f"card {key} must be a string")
    return value.strip()


def _history(history: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    out = []
    for i, item in enumerate(history):
        role = item.get("role") if isinstance(item, Mapping) else None
        content = item.get("content") if isinstance(item, Mapping) else None
        if role not in ("user", "assistant") or not isinstance(content, str):
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"history[{i}] must be {{'role': 'user' | 'assistant', 'content': <string>}}",
            )
        out.append({"role": role, "content": content})
    return out


def _definitions(
    data: Mapping[str, Any],
    ctx: ContextInput,
    lore: Sequence[ActivatedEntry],
    render: Callable[[str], str],
    *,
    char: str,
) -> str:
    """The leading system message: instructions, then the character, then the persona."""
    system = _text(data, "system_prompt")
    system = _ORIGINAL.sub(DEFAULT_SYSTEM_PROMPT, system) if system else DEFAULT_SYSTEM_PROMPT
    personality = render(_text(data, "personality")).strip()
    scenario = render(_text(data, "scenario")).strip()
    persona = render(ctx.persona_description.strip()).strip()
    user = ctx.persona_name.strip() or DEFAULT_USER
    parts = [
        render(system).strip(),
        render(ctx.extra_system or "").strip(),
        "\n".join(e.content for e in lore if e.position == "before_char"),
        render(_text(data, "description")).strip(),
        f"{char}'s personality: {personality}" if personality else "",
        f"Scenario: {scenario}" if scenario else "",
        "\n".join(e.content for e in lore if e.position == "after_char"),
        f"About {user}: {persona}" if persona else "",
    ]
    return "\n\n".join(part for part in parts if part)


def _example_turns(text: str, *, char: str, user: str, names: Sequence[str] = ()) -> list[Message]:
    """`mes_example` as unpinned user/assistant turns, block after `<START>` block.

    A line starting with `{{user}}:` / `<USER>:` / the persona's name and a colon opens a user
    turn; `{{char}}:` / `<BOT>:` / `<CHAR>:` / a character name (`names`) opens an assistant turn;
    other lines continue the current turn (text before a block's first tag is an assistant
    turn). Tags are removed, macros applied, empty turns left out.
    """
    chars = "|".join(re.escape(n) for n in (*names, char) if n)
    speaker = re.compile(
        rf"\s*(\{{\{{\s*(user|char)\s*\}}\}}|<(user|bot|char)>|(?P<u>{re.escape(user)})|{chars})"
        r"\s*:[ \t]?",
        re.IGNORECASE,
    )
    turns: list[Message] = []
    for block in re.split(r"<START>", text, flags=re.IGNORECASE):
        current: tuple[str, list[str]] | None = None
        pending: list[tuple[str, list[str]]] = []
        for line in block.split("\n"):
            match = speaker.match(line)
            if match:
                tag = (match.group(2) or match.group(3) or "").lower()
                role = "user" if tag == "user" or match.group("u") is not None else "assistant"
                current = (role, [line[match.end() :]])
                pending.append(current)
            elif current is None:
                current = ("assistant", [line])
                pending.append(current)
            else:
                current[1].append(line)
        for role, lines in pending:
            content = apply_macros("\n".join(lines), char=char, user=user).strip()
            if content:
                turns.append(_message(role, content, pin=False))
    return turns


def _with_depth_entries(
    history: Sequence[dict[str, str]], entries: Sequence[ActivatedEntry]
) -> list[Message]:
    """The history, unpinned, with each `@@depth N` entry N messages before its end."""
    slots: dict[int, list[Message]] = {}
    for entry in entries:
        at = max(0, len(history) - entry.depth)
        slots.setdefault(at, []).append(_message(entry.role, entry.content, pin=True))
    out: list[Message] = []
    for i in range(len(history) + 1):
        out += slots.get(i, [])
        if i < len(history):
            out.append(_message(history[i]["role"], history[i]["content"], pin=False))
    return out
