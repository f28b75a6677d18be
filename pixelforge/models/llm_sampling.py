"""Sampling for the transformers engines (chat and vision): logits processors, OpenAI's
frequency and presence penalties, the seeded choice of the next token."""

from __future__ import annotations

import importlib
from typing import Any, Protocol


class Sampling(Protocol):
    """The decoding settings read here (models.llm.Sampling has them)."""

    @property
    def temperature(self) -> float: ...
    @property
    def top_p(self) -> float: ...
    @property
    def top_k(self) -> int: ...
    @property
    def repetition_penalty(self) -> float: ...
    @property
    def frequency_penalty(self) -> float: ...
    @property
    def presence_penalty(self) -> float: ...


def random_seed() -> int:
    """A fresh 63-bit seed for a call that was given none."""
    import secrets

    return secrets.randbits(63)


class CountPenalty:
    """OpenAI's frequency and presence penalties: lower each token's logit by
    `frequency * times it was generated + presence * (it was generated at all)`, counting the
    completion only (not the prompt)."""

    def __init__(self, frequency: float, presence: float, prompt_len: int) -> None:
        self.frequency = frequency
        self.presence = presence
        self.prompt_len = prompt_len

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        generated = input_ids[:, self.prompt_len :]
        if generated.shape[1] == 0:
            return scores
        counts = torch.zeros_like(scores)
        counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


def processors(opts: Sampling, prompt_len: int) -> Any:
    """The logits processors and warpers `opts` asks for, in the order transformers applies
    them (penalties, then temperature, top-k, top-p)."""
    tf = importlib.import_module("transformers")
    procs = tf.LogitsProcessorList()
    if opts.repetition_penalty != 1.0:
        procs.append(tf.RepetitionPenaltyLogitsProcessor(opts.repetition_penalty))
    if opts.frequency_penalty or opts.presence_penalty:
        procs.append(CountPenalty(opts.frequency_penalty, opts.presence_penalty, prompt_len))
    if opts.temperature > 0:
        if opts.temperature != 1.0:
            procs.append(tf.TemperatureLogitsWarper(opts.temperature))
        if opts.top_k > 0:
            procs.append(tf.TopKLogitsWarper(opts.top_k))
        if opts.top_p < 1.0:
            procs.append(tf.TopPLogitsWarper(opts.top_p))
    return procs


def pick(logits: Any, temperature: float, generator: Any) -> Any:
    """Next token per row: argmax when greedy, else a draw from the (warped) distribution,
    on the CPU so a seed gives the same tokens on every device."""
    import torch

    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits, dim=-1).cpu()
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
