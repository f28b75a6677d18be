"""A card's `data` object: typed reads of the fields the specs define, every field kept.

`CardData` wraps the JSON object as it came. The known fields are type-checked on the way
in; only known fields are checked, and only their type: unknown fields and everything under
`extensions` are the business of the tools that wrote them. `null` passes for any field
(many exporters write it for "unset"); a field of the wrong type is refused with its path.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from pixelforge.errors import ErrorCode, PixelForgeError

V1_FIELDS = ("name", "description", "personality", "scenario", "first_mes", "mes_example")

Check = Callable[[Any], bool]


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_strs(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_obj(v: Any) -> bool:
    return isinstance(v, dict)


def _is_str_map(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(x, str) for x in v.values())


def _is_id(v: Any) -> bool:
    return _is_num(v) or isinstance(v, str)


_NAMES: dict[Check, str] = {
    _is_str: "a string",
    _is_strs: "a list of strings",
    _is_num: "a number",
    _is_bool: "true or false",
    _is_obj: "an object",
    _is_str_map: "an object of strings",
    _is_id: "a number or a string",
}

DATA_FIELDS: dict[str, Check] = {
    **dict.fromkeys(V1_FIELDS, _is_str),
    "creator_notes": _is_str,
    "system_prompt": _is_str,
    "post_history_instructions": _is_str,
    "alternate_greetings": _is_strs,
    "tags": _is_strs,
    "creator": _is_str,
    "character_version": _is_str,
    "extensions": _is_obj,
    "character_book": _is_obj,
    # V3
    "nickname": _is_str,
    "group_only_greetings": _is_strs,
    "assets": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
    "creator_notes_multilingual": _is_str_map,
    "source": _is_strs,
    "creation_date": _is_num,
    "modification_date": _is_num,
}
BOOK_FIELDS: dict[str, Check] = {
    "name": _is_str,
    "description": _is_str,
    "scan_depth": _is_num,
    "token_budget": _is_num,
    "recursive_scanning": _is_bool,
    "extensions": _is_obj,
    "entries": lambda v: isinstance(v, list),
}
ENTRY_FIELDS: dict[str, Check] = {
    "keys": _is_strs,
    "content": _is_str,
    "extensions": _is_obj,
    "enabled": _is_bool,
    "insertion_order": _is_num,
    "case_sensitive": _is_bool,
    "use_regex": _is_bool,
    "constant": _is_bool,
    "name": _is_str,
    "priority": _is_num,
    "id": _is_id,
    "comment": _is_str,
    "selective": _is_bool,
    "secondary_keys": _is_strs,
    "position": _is_str,
}
_ASSET_FIELDS: dict[str, Check] = {"type": _is_str, "uri": _is_str, "name": _is_str, "ext": _is_str}


def _check_fields(obj: Mapping[str, Any], fields: Mapping[str, Check], where: str) -> None:
    for key, check in fields.items():
        value = obj.get(key)
        if value is not None and not check(value):
            what = _NAMES.get(check, "a list of objects")
            raise PixelForgeError(ErrorCode.invalid_card, f"the card's {where}{key} must be {what}")


def check_data(data: Mapping[str, Any]) -> None:
    """Raise invalid_card naming the first known field of `data` whose type is wrong."""
    _check_fields(data, DATA_FIELDS, "")
    for i, asset in enumerate(data.get("assets") or []):
        _check_fields(asset, _ASSET_FIELDS, f"assets[{i}].")
    book = data.get("character_book")
    if book is None:
        return
    _check_fields(book, BOOK_FIELDS, "character_book.")
    for i, entry in enumerate(book.get("entries") or []):
        if not isinstance(entry, dict):
            raise PixelForgeError(
                ErrorCode.invalid_card, f"the card's character_book.entries[{i}] must be an object"
            )
        _check_fields(entry, ENTRY_FIELDS, f"character_book.entries[{i}].")


@dataclass(frozen=True)
class LoreEntry:
    """One lorebook entry, typed, for context assembly (the card keeps the raw entry)."""

    keys: tuple[str, ...]
    content: str
    enabled: bool = True
    insertion_order: int | float = 0
    case_sensitive: bool = False
    use_regex: bool = False
    constant: bool = False
    selective: bool = False
    secondary_keys: tuple[str, ...] = ()
    position: str = ""  # "before_char" | "after_char" | "" (the specs' values)
    priority: int | float | None = None
    name: str = ""
    comment: str = ""
    id: int | float | str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> LoreEntry:
        def get(key: str, default: Any) -> Any:
            value = raw.get(key)
            return default if value is None else value

        return cls(
            keys=tuple(get("keys", ())),
            content=get("content", ""),
            enabled=get("enabled", True),
            insertion_order=get("insertion_order", 0),
            case_sensitive=get("case_sensitive", False),
            use_regex=get("use_regex", False),
            constant=get("constant", False),
            selective=get("selective", False),
            secondary_keys=tuple(get("secondary_keys", ())),
            position=get("position", ""),
            priority=raw.get("priority"),
            name=get("name", ""),
            comment=get("comment", ""),
            id=raw.get("id"),
            extensions=copy.deepcopy(get("extensions", {})),
        )


@dataclass(frozen=True)
class Lorebook:
    """A card's `character_book`, typed (read-only view; the card keeps the raw object)."""

    entries: tuple[LoreEntry, ...]
    name: str = ""
    description: str = ""
    scan_depth: int | float | None = None
    token_budget: int | float | None = None
    recursive_scanning: bool = False
    extensions: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> Lorebook:
        return cls(
            entries=tuple(LoreEntry.from_raw(e) for e in raw.get("entries") or ()),
            name=raw.get("name") or "",
            description=raw.get("description") or "",
            scan_depth=raw.get("scan_depth"),
            token_budget=raw.get("token_budget"),
            recursive_scanning=bool(raw.get("recursive_scanning")),
            extensions=copy.deepcopy(raw.get("extensions") or {}),
        )


class _Text:
    """A string field of CardData ("" when absent or null)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Text: ...
    @overload
    def __get__(self, obj: CardData, owner: type) -> str: ...
    def __get__(self, obj: CardData | None, owner: type) -> _Text | str:
        if obj is None:
            return self
        value = obj._raw.get(self.key)
        return value if isinstance(value, str) else ""


class _Texts:
    """A list-of-strings field of CardData ([] when absent or null); a copy each read."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Texts: ...
    @overload
    def __get__(self, obj: CardData, owner: type) -> list[str]: ...
    def __get__(self, obj: CardData | None, owner: type) -> _Texts | list[str]:
        if obj is None:
            return self
        value = obj._raw.get(self.key)
        return list(value) if isinstance(value, list) else []


class CardData:
    """The card's `data` object: typed reads of the known fields, every field kept as it came."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        check_data(raw)
        self._raw: dict[str, Any] = copy.deepcopy(dict(raw))

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the object, unknown fields and extensions included."""
        return copy.deepcopy(self._raw)

    def replace(self, **changes: Any) -> CardData:
        """A new CardData with some fields set (checked like a parsed card)."""
        return CardData({**self._raw, **changes})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CardData) and self._raw == other._raw

    def __repr__(self) -> str:
        return f"CardData(name={self.name!r}, fields={len(self._raw)})"

    __hash__ = None  # type: ignore[assignment]  # mutable contents: not hashable

    name = _Text()
    description = _Text()
    personality = _Text()
    scenario = _Text()
    first_mes = _Text()
    mes_example = _Text()
    creator_notes = _Text()
    system_prompt = _Text()
    post_history_instructions = _Text()
    creator = _Text()
    character_version = _Text()
    nickname = _Text()
    alternate_greetings = _Texts()
    group_only_greetings = _Texts()
    tags = _Texts()
    source = _Texts()

    @property
    def extensions(self) -> dict[str, Any]:
        value = self._raw.get("extensions")
        return copy.deepcopy(value) if isinstance(value, dict) else {}

    @property
    def character_book(self) -> dict[str, Any] | None:
        """The lorebook as it came (entries with every field), or None."""
        value = self._raw.get("character_book")
        return copy.deepcopy(value) if isinstance(value, dict) else None

    @property
    def lorebook(self) -> Lorebook | None:
        """The lorebook as typed entries, or None."""
        value = self._raw.get("character_book")
        return Lorebook.from_raw(value) if isinstance(value, dict) else None

    @property
    def assets(self) -> list[dict[str, Any]]:
        value = self._raw.get("assets")
        return copy.deepcopy(value) if isinstance(value, list) else []

    @property
    def creator_notes_multilingual(self) -> dict[str, str]:
        value = self._raw.get("creator_notes_multilingual")
        return dict(value) if isinstance(value, dict) else {}

    @property
    def creation_date(self) -> int | float | None:
        value = self._raw.get("creation_date")
        return value if isinstance(value, int | float) else None

    @property
    def modification_date(self) -> int | float | None:
        value = self._raw.get("modification_date")
        return value if isinstance(value, int | float) else None
