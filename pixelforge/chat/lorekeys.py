"""Lorebook keys as compiled patterns: plain (substring or whole word) and regex, safely."""

from __future__ import annotations

import re

MAX_PATTERN_CHARS = 200


def safe_pattern(pattern: str) -> bool:
    """Refuse regexes that can backtrack for ages: Python's `re` has no timeout.

    A heuristic, not a proof: at most MAX_PATTERN_CHARS characters, no backreferences, no
    quantified group (`(a+)+`, `(a|aa)*`), and at most one unbounded quantifier (`*`, `+`,
    `{n,}`, `{n,m}`); `.*.*x` alone takes seconds on a few thousand characters.
    """
    if len(pattern) > MAX_PATTERN_CHARS or "(?P=" in pattern:
        return False
    unbounded, i = 0, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if pattern[i + 1 : i + 2].isdigit() and pattern[i + 1] != "0":
                return False  # a backreference
            i += 2
            continue
        if ch == "[":  # skip a character class; a leading ] or ^] is a literal
            i += 2 if pattern[i + 1 : i + 2] == "^" else 1
            i += 1 if pattern[i + 1 : i + 2] == "]" else 0
            while i + 1 < len(pattern) and pattern[i + 1] != "]":
                i += 2 if pattern[i + 1] == "\\" else 1
            i += 2
            continue
        follows = pattern[i + 1 : i + 2]
        if ch == ")" and follows in ("*", "+", "{"):
            return False
        if ch in "*+" or (ch == "{" and re.match(r"\{\d*,\d*\}", pattern[i:])):
            unbounded += 1
        i += 1
    return unbounded <= 1


_JS_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "g": 0, "u": 0, "y": 0}


def regex_key(key: str, case_sensitive: bool) -> re.Pattern[str] | None:
    """`/pattern/flags` or a bare pattern, compiled; None when invalid or refused."""
    flags = 0 if case_sensitive else re.IGNORECASE
    literal = re.fullmatch(r"/(.+)/([a-z]*)", key, re.DOTALL)
    if literal:
        key, flags = literal.group(1), 0
        for letter in literal.group(2):
            if letter not in _JS_FLAGS:
                return None
            flags |= _JS_FLAGS[letter]
    if not safe_pattern(key):
        return None
    try:
        return re.compile(key, flags)
    except (re.error, OverflowError, RecursionError):
        return None


def plain_key(key: str, case_sensitive: bool, whole_words: bool) -> re.Pattern[str]:
    """A literal key: a substring, or a whole word (no word character on either side)."""
    pattern = re.escape(key)
    if whole_words:
        pattern = rf"(?<!\w){pattern}(?!\w)"
    return re.compile(pattern, 0 if case_sensitive else re.IGNORECASE)
