"""Lorebook activation: every rule of the V2/V3 character_book the context relies on."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pixelforge.chat.lorebook import (
    DEFAULT_SCAN_DEPTH,
    MAX_RECURSION,
    estimate_tokens,
    parse_book,
    select_entries,
)
from pixelforge.chat.lorekeys import MAX_PATTERN_CHARS, regex_key, safe_pattern
from pixelforge.errors import ErrorCode, PixelForgeError


def entry(keys: list[str] | None = None, content: str = "", **fields: Any) -> dict[str, Any]:
    return {
        "keys": keys or [],
        "content": content,
        "extensions": {},
        "enabled": True,
        "insertion_order": 10,
        **fields,
    }


def active(
    entries: list[dict[str, Any]], history: list[str], budget: int | None = None, **book: Any
) -> list[str]:
    parsed = parse_book({"entries": entries, "extensions": {}, **book})
    return [e.content for e in select_entries(parsed, history, token_budget=budget)]


# --- Activation by keys ------------------------------------------------------------------


def test_a_key_in_the_scanned_window_activates_its_entry() -> None:
    lore = [entry(["dragon"], "Dragons sleep under the mountain.")]
    assert active(lore, ["I saw a dragon!"]) == ["Dragons sleep under the mountain."]
    assert active(lore, ["I saw a wyvern."]) == []
    assert active(lore, []) == []


def test_only_the_last_scan_depth_messages_are_scanned() -> None:
    lore = [entry(["dragon"], "D")]
    older = ["a dragon", "x", "y", "z"]
    assert active(lore, older, scan_depth=4) == ["D"]
    assert active(lore, [*older, "w"], scan_depth=4) == []
    assert active(lore, ["a dragon", "x"], scan_depth=1) == []
    assert active(lore, ["a dragon"], scan_depth=0) == []


def test_the_default_scan_depth_applies_when_the_book_has_none() -> None:
    lore = [entry(["dragon"], "D")]
    window = ["dragon"] + ["-"] * (DEFAULT_SCAN_DEPTH - 1)
    assert active(lore, window) == ["D"]
    assert active(lore, [*window, "-"]) == []


def test_a_scan_depth_decorator_overrides_the_book() -> None:
    lore = [entry(["dragon"], "@@scan_depth 1\nD")]
    assert active(lore, ["dragon", "-"], scan_depth=10) == []
    assert active(lore, ["-", "dragon"], scan_depth=10) == ["D"]


def test_keys_are_case_insensitive_unless_the_entry_says_otherwise() -> None:
    assert active([entry(["Dragon"], "D")], ["DRAGON"]) == ["D"]
    sensitive = [entry(["Dragon"], "D", case_sensitive=True)]
    assert active(sensitive, ["dragon"]) == []
    assert active(sensitive, ["Dragon"]) == ["D"]


def test_keys_match_substrings_or_whole_words_when_the_entry_asks() -> None:
    assert active([entry(["cat"], "C")], ["concatenate"]) == ["C"]
    whole = [entry(["cat"], "C", extensions={"match_whole_words": True})]
    assert active(whole, ["concatenate"]) == []
    assert active(whole, ["the cat, asleep"]) == ["C"]


def test_blank_keys_never_match_everything() -> None:
    assert active([entry(["", "  "], "C")], ["anything"]) == []


def test_selective_entries_need_a_primary_and_a_secondary_key() -> None:
    lore = [entry(["king"], "K", selective=True, secondary_keys=["crown", "throne"])]
    assert active(lore, ["the king"]) == []
    assert active(lore, ["the throne"]) == []
    assert active(lore, ["the king", "on his throne"]) == ["K"]


def test_secondary_keys_are_ignored_without_selective_and_may_be_a_comma_string() -> None:
    assert active([entry(["king"], "K", secondary_keys=["crown"])], ["the king"]) == ["K"]
    lore = [entry(["king"], "K", selective=True, secondary_keys="crown, throne")]
    assert active(lore, ["king on the throne"]) == ["K"]
    assert active([entry(["king"], "K", selective=True, secondary_keys=[])], ["king"]) == ["K"]


def test_constant_entries_are_always_active_and_disabled_ones_never() -> None:
    lore = [
        entry([], "Always", constant=True),
        entry(["dragon"], "Off", enabled=False),
        entry([], "Off too", constant=True, enabled=False),
        entry([], "@@activate\nOff as well", enabled=False),
    ]
    assert active(lore, ["a dragon"]) == ["Always"]


def test_empty_content_is_never_added() -> None:
    lore = [entry([], "", constant=True), entry([], "@@depth 2\n\n", constant=True)]
    assert active(lore, []) == []


# --- Regex keys ----------------------------------------------------------------------------


def test_regex_keys_with_flags_and_bare_patterns() -> None:
    assert active([entry(["/dra+gon/i"], "R", use_regex=True)], ["DRAAAGON"]) == ["R"]
    assert active([entry(["/dra+gon/"], "R", use_regex=True)], ["DRAAAGON"]) == []
    bare = [entry([r"\bdra+gon\b"], "R", use_regex=True)]
    assert active(bare, ["A DRAAGON"]) == ["R"]
    sensitive = [entry([r"dra+gon"], "R", use_regex=True, case_sensitive=True)]
    assert active(sensitive, ["A DRAAGON"]) == []


def test_an_invalid_regex_key_never_matches_and_never_raises() -> None:
    for bad in ["/([unclosed/", "/dragon/q", "(?P<x", "*"]:
        assert active([entry([bad], "R", use_regex=True)], ["dragon ([unclosed"]) == []
    # V3: an entry with an invalid pattern is not a match, even when another key matches.
    assert active([entry(["/([/", "/dragon/"], "R", use_regex=True)], ["dragon"]) == []


def test_catastrophic_patterns_are_refused_quickly() -> None:
    text = "a" * 5000 + "!"
    started = time.monotonic()
    for pattern in ["/(a+)+$/", "/(a|aa)*$/", "/.*.*x/", "/(\\w+\\s?)*$/", "/(a)\\1+/"]:
        assert active([entry([pattern], "R", use_regex=True)], [text]) == []
    assert (
        active(
            [entry(["/" + "a" * (MAX_PATTERN_CHARS + 1) + "/"], "R", use_regex=True)], ["a" * 300]
        )
        == []
    )
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("pattern", "safe"),
    [
        (r"dragon", True),
        (r"dra+gon", True),
        (r"a.*b", True),
        (r"\d{4}", True),
        (r"colou?r", True),
        (r"(?:red|blue) dragon", True),
        (r"[)*+]+x", True),  # quantifier characters inside a class are literals
        (r"(a+)+", False),
        (r"(?:ab)*", False),
        (r"a.*b.*c", False),
        (r"a{1,}b+", False),
        (r"(x)\1", False),
        (r"(?P<n>x)(?P=n)", False),
    ],
)
def test_safe_pattern(pattern: str, safe: bool) -> None:
    assert safe_pattern(pattern) is safe


def test_regex_key_parses_javascript_style_literals() -> None:
    pattern = regex_key("/^hello$/im", case_sensitive=True)
    assert pattern is not None and pattern.search("x\nHELLO\ny")
    assert regex_key("/hello/x", case_sensitive=False) is None


def test_regex_entries_ignore_constant_and_secondary_keys() -> None:
    assert active([entry(["/zzz/"], "R", use_regex=True, constant=True)], ["-"]) == []
    lore = [entry(["/king/"], "R", use_regex=True, selective=True, secondary_keys=["crown"])]
    assert active(lore, ["king"]) == ["R"]


# --- Order, budget, recursion ----------------------------------------------------------------


def test_entries_come_out_by_insertion_order_then_book_order() -> None:
    lore = [
        entry([], "third", constant=True, insertion_order=5),
        entry([], "first", constant=True, insertion_order=1),
        entry([], "fourth", constant=True, insertion_order=5),
        entry([], "second", constant=True, insertion_order=2),
    ]
    assert active(lore, []) == ["first", "second", "third", "fourth"]


def test_over_budget_the_lowest_priority_is_dropped_first() -> None:
    ten_tokens = "word " * 10
    assert estimate_tokens(ten_tokens) == 10
    lore = [
        entry([], "A " + ten_tokens, constant=True, priority=5, insertion_order=1),
        entry([], "B " + ten_tokens, constant=True, priority=1, insertion_order=2),
        entry([], "C " + ten_tokens, constant=True, priority=9, insertion_order=3),
    ]
    names = [c[0] for c in active(lore, [], token_budget=25)]
    assert names == ["A", "C"]
    assert [c[0] for c in active(lore, [], token_budget=12)] == ["C"]
    assert [c[0] for c in active(lore, [], token_budget=0)] == ["A", "B", "C"]
    assert [c[0] for c in active(lore, [])] == ["A", "B", "C"]


def test_the_callers_budget_overrides_the_books() -> None:
    lore = [entry([], "A " + "w " * 10, constant=True), entry([], "B " + "w " * 10, constant=True)]
    assert len(active(lore, [], token_budget=1000)) == 2
    assert len(active(lore, [], budget=15, token_budget=1000)) == 1
    assert len(active(lore, [], budget=0, token_budget=15)) == 2  # an explicit 0: no limit


def test_without_priority_the_lowest_insertion_order_is_dropped_first() -> None:
    lore = [
        entry([], "early " + "w " * 10, constant=True, insertion_order=1),
        entry([], "late " + "w " * 10, constant=True, insertion_order=2),
    ]
    assert [c.split()[0] for c in active(lore, [], token_budget=15)] == ["late"]


def test_an_entry_too_big_alone_leaves_room_for_smaller_ones() -> None:
    lore = [
        entry([], "big " + "w " * 100, constant=True, priority=9),
        entry([], "small", constant=True, priority=1),
    ]
    assert active(lore, [], token_budget=20) == ["small"]


def _chain(length: int) -> list[dict[str, Any]]:
    """Entry i is keyed on `k{i}` and mentions `k{i + 1}`."""
    return [entry([f"k{i}"], f"E{i} mentions k{i + 1}.", insertion_order=i) for i in range(length)]


def test_recursive_scanning_follows_entry_content_a_bounded_number_of_rounds() -> None:
    got = active(_chain(8), ["say k0"], recursive_scanning=True)
    assert [c.split()[0] for c in got] == [f"E{i}" for i in range(MAX_RECURSION + 1)]


def test_without_recursive_scanning_content_activates_nothing() -> None:
    assert [c.split()[0] for c in active(_chain(3), ["say k0"])] == ["E0"]
    assert active(_chain(3), ["say k0"], recursive_scanning=False) == ["E0 mentions k1."]


def test_recursion_stops_on_cycles() -> None:
    lore = [entry(["a"], "mentions b", insertion_order=1), entry(["b"], "mentions a")]
    assert active(lore, ["a"], recursive_scanning=True) == ["mentions b", "mentions a"]


# --- Placement and decorators ------------------------------------------------------------------


def test_positions_and_decorators() -> None:
    book = parse_book(
        {
            "entries": [
                entry([], "before", constant=True, position="before_char"),
                entry([], "after", constant=True, position="after_char"),
                entry([], "default", constant=True),
                entry([], "@@depth 2\n@@role assistant\n\ndeep", constant=True),
                entry([], "@@position before_desc\n@@depth 3\nplaced", constant=True),
                entry([], "@@unknown 1\n@@@depth 1\nfallback", constant=True),
                entry([], "@@role narrator\n@@@role user\n@@depth 0\nfb role", constant=True),
            ]
        }
    )
    got = {e.content: (e.position, e.depth, e.role) for e in select_entries(book, [])}
    assert got == {
        "before": ("before_char", 0, "system"),
        "after": ("after_char", 0, "system"),
        "default": ("after_char", 0, "system"),
        "deep": ("depth", 2, "assistant"),
        "placed": ("before_char", 0, "system"),
        "fallback": ("depth", 1, "system"),
        "fb role": ("depth", 0, "user"),
    }


def test_activate_and_dont_activate_decorators() -> None:
    lore = [
        entry(["dragon"], "@@dont_activate\nnever"),
        entry([], "@@activate\nalways"),
        entry([], "@@dont_activate\n@@activate\nboth"),
    ]
    assert active(lore, ["dragon"]) == ["always", "both"]


def test_render_applies_to_content_and_plain_keys() -> None:
    book = parse_book({"entries": [entry(["{{user}}"], "{{user}} is known here.")]})
    got = select_entries(book, ["Hi, I am Ann"], render=lambda s: s.replace("{{user}}", "Ann"))
    assert [e.content for e in got] == ["Ann is known here."]


# --- Input shapes ----------------------------------------------------------------------------


def test_no_book_or_an_empty_book_activates_nothing() -> None:
    assert parse_book(None) is None
    assert select_entries(None, ["x"]) == []
    assert active([], ["x"]) == []
    parsed = parse_book({"extensions": {}})
    assert parsed is not None and parsed.entries == ()


def test_unknown_fields_are_ignored() -> None:
    lore = [entry(["dragon"], "D", id="x-1", comment="c", name="n", extra={"a": [1]})]
    assert active(lore, ["dragon"], name="Book", future_field=True) == ["D"]


@pytest.mark.parametrize(
    ("book", "where"),
    [
        ([], "character_book"),
        ({"entries": {}}, "character_book.entries"),
        ({"entries": ["x"]}, "character_book.entries[0]"),
        ({"entries": [entry("dragon", "D")]}, "character_book.entries[0].keys"),  # type: ignore[arg-type]
        ({"entries": [entry(["a"], "D", enabled="yes")]}, "character_book.entries[0].enabled"),
        ({"entries": [entry(["a"], "D", insertion_order="1")]}, "insertion_order"),
        ({"entries": [entry(["a"], 5)]}, "character_book.entries[0].content"),  # type: ignore[arg-type]
        ({"entries": [], "scan_depth": True}, "character_book.scan_depth"),
    ],
)
def test_wrong_types_are_a_clear_invalid_parameter(book: Any, where: str) -> None:
    with pytest.raises(PixelForgeError) as caught:
        parse_book(book)
    assert caught.value.code == ErrorCode.invalid_parameter
    assert caught.value.status == 400
    assert where in caught.value.message


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("   \n\t") == 0
    assert estimate_tokens("hello world") == 2
    assert estimate_tokens("internationalization") == 4
    assert estimate_tokens("Hi, there!") == 4
    assert estimate_tokens("12345") == 2
    assert estimate_tokens("你好世界") == 4
    assert estimate_tokens("привет") == 2
    long = "The quick brown fox jumps over the lazy dog. " * 20
    assert 180 <= estimate_tokens(long) <= 260  # Llama-style tokenizers: about 200
