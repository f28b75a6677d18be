"""Constrained decoding for the transformers backend: `response_format` json_object and
json_schema, as a logits processor that masks every token the grammar does not allow.

The grammar engine is llguidance: the JSON schema is compiled lazily (well under a
millisecond), each step's mask costs about a millisecond on a 49k vocabulary, and a schema it
cannot honour is refused with its own message (a 400 before any token is decoded). The
tokenizer's view for llguidance is built once per loaded model (~0.5 s) and kept on it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

from pixelforge.errors import ErrorCode, PixelForgeError

# Compact JSON: single separators, no free whitespace. A small or random-weight model left
# free whitespace tends to spend its whole budget on newlines.
_JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
_ANY_OBJECT: dict[str, Any] = {"type": "object"}
_lock = threading.Lock()


def schema_of(response_format: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a response_format asks for; None for plain text."""
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return _ANY_OBJECT
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if schema is None:
            return _ANY_OBJECT  # OpenAI allows a json_schema without a schema: any object
        if not isinstance(schema, dict):
            raise _bad("response_format.json_schema.schema must be a JSON object")
        return schema
    raise _bad(f"response_format.type {kind!r} is not one of text, json_object, json_schema")


def grammar_for(schema: dict[str, Any], ll_tokenizer: Any) -> str:
    """The llguidance grammar for `schema`, checked; a clear invalid_parameter if it cannot be
    compiled (an unknown type, a dangling $ref, an unsupported keyword)."""
    import llguidance

    try:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            json.dumps(schema),
            overrides=_JSON_OPTIONS,  # type: ignore[arg-type]
        )
    except ValueError as e:
        raise _bad(f"response_format: the JSON schema cannot be used: {e}") from None
    error = llguidance.LLMatcher.validate_grammar(grammar, ll_tokenizer)
    if error and not error.startswith("WARNING"):
        raise _bad(f"response_format: the JSON schema cannot be used: {error}")
    return grammar


def ll_tokenizer_of(owner: Any, tokenizer: Any, eos_ids: Iterable[int]) -> Any:
    """llguidance's tokenizer for `tokenizer`, built on first use and kept on `owner`."""
    cached = getattr(owner, "_ll_tokenizer", None)
    if cached is not None:
        return cached
    with _lock:
        cached = getattr(owner, "_ll_tokenizer", None)
        if cached is None:
            import llguidance.hf

            eos = sorted(eos_ids)
            vocab = getattr(getattr(owner, "model", None), "config", None)
            n_vocab = getattr(vocab, "vocab_size", None)
            try:
                cached = llguidance.hf.from_tokenizer(
                    tokenizer, n_vocab=n_vocab, eos_token=eos or None
                )
            except ValueError as e:  # a slow (Python) tokenizer
                raise _bad(f"response_format is not available for this model: {e}") from None
            owner._ll_tokenizer = cached
    return cached


class JsonConstraint:
    """A logits processor: row i of the batch may only continue candidate i's JSON. Each call
    first feeds the matcher the tokens sampled since the previous call, then masks."""

    def __init__(
        self, ll_tokenizer: Any, grammar: str, *, n: int, prompt_len: int, eos: Iterable[int]
    ) -> None:
        import llguidance

        self.matchers = [llguidance.LLMatcher(ll_tokenizer, grammar) for _ in range(n)]
        self.prompt_len = prompt_len
        self.eos = sorted(eos)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import numpy as np
        import torch

        vocab = scores.shape[1]
        generated = input_ids.shape[1] - self.prompt_len
        allowed = np.zeros((len(self.matchers), vocab), dtype=bool)
        for i, matcher in enumerate(self.matchers):
            if generated > 0 and not matcher.is_stopped() and not matcher.is_error():
                matcher.consume_token(int(input_ids[i, -1]))
            if matcher.is_stopped() or matcher.is_error():
                allowed[i, self.eos] = True  # the JSON is complete: only an end of turn
                continue
            words = np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8)
            bits = np.unpackbits(words, bitorder="little")[:vocab]
            allowed[i, : len(bits)] = bits.astype(bool)
        mask = torch.from_numpy(allowed).to(scores.device)
        return scores.masked_fill(~mask, float("-inf"))


def json_constraint(
    owner: Any, response_format: dict[str, Any], *, eos_ids: Iterable[int], n: int, prompt_len: int
) -> JsonConstraint | None:
    """The processor for `response_format` on `owner` (a ChatModel), or None for text."""
    schema = schema_of(response_format)
    if schema is None:
        return None
    ll_tokenizer = ll_tokenizer_of(owner, owner.tokenizer, eos_ids)
    grammar = grammar_for(schema, ll_tokenizer)
    return JsonConstraint(ll_tokenizer, grammar, n=n, prompt_len=prompt_len, eos=eos_ids)


def _bad(message: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.invalid_parameter, message)
