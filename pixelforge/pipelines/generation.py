"""What the text-generating pipelines (chat, describe_image) share: the candidates' text,
token counts and timings as they are decoded, and the result they make of them."""

from __future__ import annotations

import time
from typing import Any

from pixelforge.models.llm import Delta


class Decoding:
    """The candidates' text and timings while a model decodes them."""

    def __init__(
        self, n: int, *, model_id: str, prompt_tokens: int, started: float, loaded: float
    ) -> None:
        self.model_id = model_id
        self.prompt_tokens = prompt_tokens
        self.started = started  # when the job began (the model lookup)
        self.loaded = loaded  # when the model was ready
        self.texts = [""] * n
        self.finish: list[str | None] = [None] * n
        self.tokens = [0] * n
        self.tool_calls: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        self.first: float | None = None
        self.last: float | None = None

    def add(self, delta: Delta) -> str:
        """Record a delta; returns its text as kept. A NUL (a byte-fallback token can make
        one) is no text anyone wants, and PostgreSQL text cannot store it: it is dropped."""
        t = time.perf_counter()
        if self.first is None:
            self.first = t
        self.last = t
        text = delta.text.replace("\x00", "")
        i = delta.index
        self.texts[i] += text
        self.tokens[i] += delta.tokens
        if delta.finish_reason is not None:
            self.finish[i] = delta.finish_reason
        if delta.tool_calls:
            self.tool_calls[i].extend(delta.tool_calls)
        return text

    def result(self, **extra: Any) -> dict[str, Any]:
        """The job's result: each candidate (a cut one's finish_reason is "cancelled"),
        usage, timings, and `extra` fields."""
        end = time.perf_counter()
        completion = sum(self.tokens)
        decode_s = (self.last - self.first) if self.first is not None and self.last else 0.0
        choices: list[dict[str, Any]] = []
        for i, text in enumerate(self.texts):
            choice: dict[str, Any] = {
                "index": i,
                "text": text,
                "finish_reason": self.finish[i] or "cancelled",
                "completion_tokens": self.tokens[i],
            }
            if self.tool_calls[i]:
                choice["tool_calls"] = self.tool_calls[i]
            choices.append(choice)
        return {
            "model": self.model_id,
            "choices": choices,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": self.prompt_tokens + completion,
            },
            **extra,
            "timings": {
                "load_ms": round((self.loaded - self.started) * 1000, 1),
                "ttft_ms": round((self.first - self.loaded) * 1000, 1) if self.first else None,
                "total_ms": round((end - self.started) * 1000, 1),
                # Tokens after each candidate's first, over the time they took: the decode rate.
                "tokens_per_s": round((completion - len(self.texts)) / decode_s, 2)
                if decode_s > 0 and completion > len(self.texts)
                else None,
            },
        }
