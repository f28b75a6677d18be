"""Lorebook (a card's `character_book`): which entries a chat turn pulls into the prompt.

Pure functions over the Character Card V2/V3 lorebook object. The rules, in short:

- An entry is active when it is `enabled` (false: never) and either `constant`, forced by the
  V3 `@@activate` decorator, or one of its `keys` occurs in the last `scan_depth` history
  messages (the book's `scan_depth`, default 4; a `@@scan_depth N` decorator overrides it per
  entry). `@@dont_activate` keeps an entry out unless `@@activate` is also present.
- Keys match as case-insensitive substrings unless the entry sets `case_sensitive: true`, or as
  whole words when the entry's `extensions.match_whole_words` is true. `selective` entries
  also need one of their `secondary_keys` (a list, or one comma-separated string); a selective
  entry without secondary keys behaves as a plain one.
- `use_regex` entries treat each key as a regular expression, `/pattern/flags` (flags i, m, s;
  g, u, y are accepted and ignored) or a bare pattern (case per `case_sensitive`). As V3 says,
  such entries ignore `constant` and `secondary_keys`, and an entry with an invalid key never
  matches. Patterns that could backtrack for ages are refused as invalid (see
  `lorekeys.safe_pattern`), and regex keys only see the last `MAX_REGEX_TEXT` characters of
  the scanned text.
- With `recursive_scanning`, the content of active entries is scanned too, at most
  `MAX_RECURSION` rounds.
- Over `token_budget` (the caller's override if not None, else the book's; <= 0: no limit), entries
  are kept by rank, highest first, while they fit: rank is `priority`, or `insertion_order`
  where an entry has no priority. Lower-ranked entries are the ones dropped.
- The result is ordered by `insertion_order` (lower first), then by position in the book.
- Placement: `position` "before_char" / "after_char" (default after), V3 `@@position
  before_desc|after_desc`, or `@@depth N` (inside the history, N messages from the end) with
  `@@role system|user|assistant`. Other V3 decorators are ignored (their `@@@` fallbacks are
  tried in order, as the spec asks).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pixelforge.chat.lorekeys import plain_key, regex_key
from pixelforge.errors import ErrorCode, PixelForgeError

DEFAULT_SCAN_DEPTH = 4
MAX_RECURSION = 3
MAX_REGEX_TEXT = 4000

Placement = Literal["before_char", "after_char", "depth"]
Role = Literal["system", "user", "assistant"]
_ROLES: tuple[Role, ...] = ("system", "user", "assistant")


def estimate_tokens(text: str) -> int:
    """A tokenizer-free token estimate, for lorebook budgets only.

    Runs of ASCII letters count one token per 6 characters (rounded up), runs of digits one per
    3, each other visible ASCII character (punctuation) one, each wide (CJK) character one and
    other non-ASCII characters one per 3. Whitespace is free. A rough figure: on English prose
    it lands near what BPE tokenizers such as Llama's count, a little above on short words.
    """
    total = 0.0
    for run in re.findall(r"[A-Za-z]+|[0-9]+|[^\x00-\x7f]+|[^\sA-Za-z0-9]", text):
        if run[0].isascii():
            total += math.ceil(len(run) / (6 if run[0].isalpha() else 3)) if run[0].isalnum() else 1
            continue
        wide = sum(1 for ch in run if unicodedata.east_asian_width(ch) in ("W", "F"))
        total += wide + math.ceil((len(run) - wide) / 3)
    return int(total)


@dataclass(frozen=True)
class ActivatedEntry:
    """One entry chosen for this turn, with its text ready for the prompt."""

    index: int  # its place in `character_book.entries`
    content: str  # rendered (macros applied), decorators removed
    position: Placement
    depth: int  # for position "depth": messages from the end of the history; else 0
    role: Role  # for position "depth"; "system" otherwise
    insertion_order: float
    tokens: int  # estimate_tokens(content)


@dataclass(frozen=True)
class _Entry:
    index: int
    keys: tuple[str, ...]
    secondary_keys: tuple[str, ...]
    content: str
    enabled: bool
    constant: bool
    selective: bool
    case_sensitive: bool
    use_regex: bool
    whole_words: bool
    insertion_order: float
    priority: float | None
    position: Placement
    depth: int
    role: Role
    scan_depth: int | None
    forced: bool | None  # @@activate: True; @@dont_activate alone: False


@dataclass(frozen=True)
class LoreBook:
    """A parsed `character_book`."""

    entries: tuple[_Entry, ...]
    scan_depth: int
    token_budget: int | None
    recursive: bool


# --- Parsing -------------------------------------------------------------------------------


def _bad(where: str, what: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.invalid_parameter, f"card {where} must be {what}")


def _bool(obj: Mapping[str, Any], key: str, where: str, default: bool = False) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(f"{where}.{key}", "true or false")
    return value


def _number(obj: Mapping[str, Any], key: str, where: str) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise _bad(f"{where}.{key}", "a number")
    return float(value)


def _strings(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if isinstance(value, str) and key == "secondary_keys":  # V3: "separated by a comma"
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(f"{where}.{key}", "a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def parse_book(raw: object) -> LoreBook | None:
    """The card's `character_book` (None when absent); wrong field types are a 400."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _bad("character_book", "an object")
    where = "character_book"
    scan_depth = _number(raw, "scan_depth", where)
    budget = _number(raw, "token_budget", where)
    entries = raw.get("entries")
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise _bad(f"{where}.entries", "a list")
    return LoreBook(
        entries=tuple(_parse_entry(e, i) for i, e in enumerate(entries)),
        scan_depth=DEFAULT_SCAN_DEPTH if scan_depth is None else max(0, int(scan_depth)),
        token_budget=int(budget) if budget is not None and budget > 0 else None,
        recursive=_bool(raw, "recursive_scanning", where),
    )


def _parse_entry(raw: object, index: int) -> _Entry:
    where = f"character_book.entries[{index}]"
    if not isinstance(raw, Mapping):
        raise _bad(where, "an object")
    content = raw.get("content")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise _bad(f"{where}.content", "a string")
    extensions = raw.get("extensions")
    if extensions is None:
        extensions = {}
    if not isinstance(extensions, Mapping):
        raise _bad(f"{where}.extensions", "an object")
    position = raw.get("position")
    if position is not None and not isinstance(position, str):
        raise _bad(f"{where}.position", "'before_char' or 'after_char'")
    text, found = _decorators(content)
    order = _number(raw, "insertion_order", where)
    # @@position wins over @@depth, which wins over the V2 field
    placement: Placement = "before_char" if position == "before_char" else "after_char"
    if "placement" in found:
        placement = found["placement"]
    elif "depth" in found:
        placement = "depth"
    return _Entry(
        index=index,
        keys=_strings(raw, "keys", where),
        secondary_keys=_strings(raw, "secondary_keys", where),
        content=text,
        enabled=_bool(raw, "enabled", where, default=True),
        constant=_bool(raw, "constant", where),
        selective=_bool(raw, "selective", where),
        case_sensitive=_bool(raw, "case_sensitive", where),
        use_regex=_bool(raw, "use_regex", where),
        whole_words=extensions.get("match_whole_words") is True,
        insertion_order=0.0 if order is None else order,
        priority=_number(raw, "priority", where),
        position=placement,
        depth=found.get("depth", 0) if placement == "depth" else 0,
        role=found.get("role", "system"),
        scan_depth=found.get("scan_depth"),
        forced=found.get("forced"),
    )


_DECORATOR = re.compile(r"(@@@?)([A-Za-z_]\w*)(?:[ \t]+(.*))?")


def _decorators(content: str) -> tuple[str, dict[str, Any]]:
    """Split leading V3 decorator lines off `content`; return the text and what they set."""
    lines = content.split("\n")
    chains: list[list[tuple[str, str]]] = []
    start = 0
    while start < len(lines):
        line = lines[start].strip()
        match = _DECORATOR.fullmatch(line)
        if line and not match:
            break
        if match:
            item = (match.group(2).lower(), (match.group(3) or "").strip())
            if match.group(1) == "@@@" and chains:
                chains[-1].append(item)  # a fallback for the decorator above
            else:
                chains.append([item])
        start += 1
    found: dict[str, Any] = {}
    for chain in chains:
        for name, value in chain:
            if _apply_decorator(name, value, found):
                break
    return "\n".join(lines[start:]).strip(), found


def _apply_decorator(name: str, value: str, found: dict[str, Any]) -> bool:
    """Record one decorator if we support it (the first of a name wins); False: try fallbacks."""
    if name in ("depth", "scan_depth"):
        if not re.fullmatch(r"-?\d{1,6}", value):
            return False
        found.setdefault(name, max(0, int(value)))
        return True
    if name == "role":
        if value.lower() not in _ROLES:
            return False
        found.setdefault("role", value.lower())
        return True
    if name == "position":
        placement = {"before_desc": "before_char", "after_desc": "after_char"}.get(value.lower())
        if placement is None:
            return False
        found.setdefault("placement", placement)
        return True
    if name == "activate":
        found["forced"] = True
        return True
    if name == "dont_activate":
        found.setdefault("forced", False)
        return True
    return False


# --- Matching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Matcher:
    entry: _Entry
    primary: tuple[re.Pattern[str], ...]
    secondary: tuple[re.Pattern[str], ...]

    def matches(self, text: str) -> bool:
        if self.entry.use_regex:
            text = text[-MAX_REGEX_TEXT:]
        if not any(p.search(text) for p in self.primary):
            return False
        return not self.secondary or any(p.search(text) for p in self.secondary)


def _matcher(entry: _Entry, render: Callable[[str], str]) -> _Matcher:
    """Compile an entry's keys; an entry with an invalid regex key gets no keys at all."""
    if entry.use_regex:
        compiled = [regex_key(k, entry.case_sensitive) for k in entry.keys]
        valid = tuple(p for p in compiled if p is not None)
        return _Matcher(entry, valid if len(valid) == len(compiled) else (), ())

    def plain(keys: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
        rendered = (render(k).strip() for k in keys)
        return tuple(plain_key(k, entry.case_sensitive, entry.whole_words) for k in rendered if k)

    return _Matcher(
        entry, plain(entry.keys), plain(entry.secondary_keys) if entry.selective else ()
    )


# --- Selection -----------------------------------------------------------------------------


def select_entries(
    book: LoreBook | None,
    history: Sequence[str],
    *,
    render: Callable[[str], str] = lambda text: text,
    token_budget: int | None = None,
) -> list[ActivatedEntry]:
    """The entries active for a chat whose messages (oldest first) are `history`.

    `render` turns card text into prompt text (the macros); it is applied to content and to
    plain keys. `token_budget`, when not None, overrides the book's (<= 0: no limit).
    """
    if book is None:
        return []
    candidates: list[tuple[_Matcher, str]] = []
    for entry in book.entries:
        content = render(entry.content).strip()
        if entry.enabled and content and entry.forced is not False:
            candidates.append((_matcher(entry, render), content))
    windows: dict[int, str] = {}

    def window(matcher: _Matcher) -> str:
        depth = matcher.entry.scan_depth
        depth = book.scan_depth if depth is None else depth
        if depth not in windows:
            windows[depth] = "\n".join(history[max(0, len(history) - depth) :]) if depth else ""
        return windows[depth]

    active = {
        id(m): (m, content)
        for m, content in candidates
        if m.entry.forced or (m.entry.constant and not m.entry.use_regex) or m.matches(window(m))
    }
    for _ in range(MAX_RECURSION if book.recursive else 0):
        scanned = "\n".join(content for _, content in active.values())
        found = {
            id(m): (m, content)
            for m, content in candidates
            if id(m) not in active and m.matches(window(m) + "\n" + scanned)
        }
        if not found:
            break
        active.update(found)
    budget = book.token_budget if token_budget is None else token_budget
    chosen = _within_budget(list(active.values()), budget)
    chosen.sort(key=lambda item: (item[0].entry.insertion_order, item[0].entry.index))
    return [_activated(m.entry, content) for m, content in chosen]


def _within_budget(
    active: list[tuple[_Matcher, str]], budget: int | None
) -> list[tuple[_Matcher, str]]:
    """Keep entries by rank (priority, else insertion_order; highest first) while they fit."""
    if budget is None or budget <= 0:
        return active

    def rank(item: tuple[_Matcher, str]) -> tuple[float, int]:
        entry = item[0].entry
        value = entry.insertion_order if entry.priority is None else entry.priority
        return (-value, entry.index)

    kept, used = [], 0
    for item in sorted(active, key=rank):
        cost = estimate_tokens(item[1])
        if used + cost <= budget:
            kept.append(item)
            used += cost
    return kept


def _activated(entry: _Entry, content: str) -> ActivatedEntry:
    return ActivatedEntry(
        index=entry.index,
        content=content,
        position=entry.position,
        depth=entry.depth,
        role=entry.role if entry.position == "depth" else "system",
        insertion_order=entry.insertion_order,
        tokens=estimate_tokens(content),
    )
