"""Token ids -> text deltas for one candidate, cut at the first stop sequence."""

from __future__ import annotations

from typing import Any


class CandidateText:
    """Decodes a growing list of token ids and hands out only text that is final: a piece
    that might begin a stop sequence, or half of a multi-byte character, is held back until
    the next tokens settle it."""

    def __init__(self, tokenizer: Any, stops: tuple[str, ...]) -> None:
        self._tokenizer = tokenizer
        self._stops = stops
        self._ids: list[int] = []
        self._text = ""
        self.emitted = ""

    def add(self, token: int) -> tuple[str, bool]:
        """The new final text after `token`, and whether a stop sequence was reached (the
        text then ends just before it, the stop sequence itself left out)."""
        self._ids.append(token)
        self._text = self._tokenizer.decode(self._ids, skip_special_tokens=True)
        if self._text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for the rest
            return "", False
        cut = min((p for p in (self._text.find(s) for s in self._stops) if p >= 0), default=-1)
        if cut >= 0:
            return self._emit(self._text[:cut]), True
        return self._emit(self._text[: len(self._text) - self._held()]), False

    def flush(self) -> str:
        """Whatever was held back, at the end of generation."""
        return self._emit(self._text)

    def _held(self) -> int:
        """Length of the longest end of the text that is a proper prefix of a stop."""
        best = 0
        for stop in self._stops:
            for k in range(min(len(stop) - 1, len(self._text)), best, -1):
                if self._text.endswith(stop[:k]):
                    best = k
                    break
        return best

    def _emit(self, final: str) -> str:
        # Byte-level tokenizers decode prefix-stably; anything else is emitted once settled.
        if len(final) <= len(self.emitted) or not final.startswith(self.emitted):
            return ""
        piece = final[len(self.emitted) :]
        self.emitted = final
        return piece
