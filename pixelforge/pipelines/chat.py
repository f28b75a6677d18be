"""Text generation with a language model: chat messages or a raw prompt, n candidates,
tokens streamed onto the event bus as they are decoded."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import CHAT
from pixelforge.models.llm import ChatEngine
from pixelforge.pipelines.contract import JobCanceled, RunContext
from pixelforge.pipelines.generation import Decoding
from pixelforge.pipelines.limits import InputLimit

MAX_CONTENT = 200_000  # characters in one message
TOKENS_PER_CREDIT = 1000  # a candidate costs 1 credit per started 1,000 tokens of max_tokens


class ChatMessage(BaseModel):
    """One chat message; `pin` keeps it when older messages are trimmed to fit."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_CONTENT)
    pin: bool = Field(default=False, description="Never trimmed (with trim=true).")


class ChatParams(BaseModel):
    """Parameters of the `chat` pipeline."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None,
        max_length=200,
        description="A chat model id (GET /v1/models); the default chat model if absent.",
        examples=["smollm2-135m-instruct"],
    )
    messages: list[ChatMessage] | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="Chat messages, rendered with the model's chat template.",
    )
    prompt: str | None = Field(
        default=None,
        max_length=MAX_CONTENT,
        description="A raw prompt (no chat template); exactly one of prompt and messages.",
    )
    continue_last: bool = Field(
        default=False,
        description="Continue the final assistant message instead of writing a new one.",
    )
    trim: bool = Field(
        default=False,
        description="Drop the oldest unpinned, non-system messages until the prompt and "
        "max_tokens fit the model's context window (otherwise: context_length_exceeded).",
    )
    n: int = Field(default=1, ge=1, le=8, description="Candidates, decoded together.")
    max_tokens: int = Field(default=256, ge=1, le=8192)
    temperature: float = Field(default=1.0, ge=0, le=2, description="0: greedy decoding.")
    top_p: float = Field(default=1.0, gt=0, le=1)
    top_k: int = Field(default=0, ge=0, le=1000, description="0: no top-k cut.")
    repetition_penalty: float = Field(default=1.0, gt=0, le=2)
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2)
    presence_penalty: float = Field(default=0.0, ge=-2, le=2)
    stop: list[str] = Field(default_factory=list, max_length=4)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    response_format: dict[str, Any] | None = Field(
        default=None,
        description='{"type": "json_object"} or {"type": "json_schema", "json_schema": {...}}',
    )
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_prompt(self) -> ChatParams:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("give exactly one of messages and prompt")
        if self.continue_last and (self.messages is None or self.messages[-1].role != "assistant"):
            raise ValueError("continue_last needs messages that end with an assistant message")
        if any(not s for s in self.stop):
            raise ValueError("stop sequences must not be empty")
        return self


class ChatPipeline:
    """A language model's reply: n candidates, tokens on the event bus."""

    name: ClassVar[str] = "chat"
    description: ClassVar[str] = (
        "Generate text with a language model from chat messages or a raw prompt: n "
        "candidates, stop sequences, seed; tokens stream as `token` events."
    )
    Params: ClassVar[type[BaseModel]] = ChatParams
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: ChatParams) -> int:
        return params.n * math.ceil(params.max_tokens / TOKENS_PER_CREDIT)

    def run(self, params: ChatParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load the model (kept resident while the block runs)
        started = time.perf_counter()
        model_id = ctx.models.profile(params.model, task=CHAT).id
        with ctx.models.load(model_id, task=CHAT) as engine:
            loaded = time.perf_counter()
            # 2. Fit the prompt into the context window
            prompt, trimmed, prompt_tokens = _fit(engine, params)
            # 3. Decode, each piece onto the bus as it comes
            run = Decoding(
                params.n,
                model_id=model_id,
                prompt_tokens=prompt_tokens,
                started=started,
                loaded=loaded,
            )
            try:
                for delta in engine.stream(prompt, n=params.n, **_sampling(params, ctx.seed)):
                    text = run.add(delta)
                    if text or delta.finish_reason:
                        ctx.emit_text(delta.index, text, delta.finish_reason)
            except JobCanceled:
                raise JobCanceled(partial=run.result(trimmed_messages=trimmed)) from None
        # 4. The texts, usage and timings are the job's result
        return run.result(trimmed_messages=trimmed)


def _sampling(params: ChatParams, seed: int) -> dict[str, Any]:
    return {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k,
        "repetition_penalty": params.repetition_penalty,
        "frequency_penalty": params.frequency_penalty,
        "presence_penalty": params.presence_penalty,
        "stop": tuple(params.stop),
        "seed": params.seed if params.seed is not None else seed,
        "continue_last": params.continue_last,
        "response_format": params.response_format,
        "tools": params.tools,
        "tool_choice": params.tool_choice,
    }


Prompt = str | list[dict[str, str]]


def _fit(engine: ChatEngine, params: ChatParams) -> tuple[Prompt, int, int]:
    """The prompt to send, how many messages were dropped to fit the window, and its
    length in tokens (each count renders the chat template: done as few times as it can)."""
    room = engine.context_length - params.max_tokens
    cont = params.continue_last
    if params.prompt is not None:
        used = engine.count_tokens(params.prompt)
        if used > room:
            raise _too_long(engine, used, params.max_tokens)
        return params.prompt, 0, used
    assert params.messages is not None  # the validator wants one of the two
    messages = params.messages
    used = engine.count_tokens(_plain(messages), continue_last=cont)
    if used <= room:
        return _plain(messages), 0, used
    # Never the last message: it is what the reply answers (or continues).
    droppable = [i for i, m in enumerate(messages[:-1]) if not m.pin and m.role != "system"]
    if not params.trim or not droppable:
        raise _too_long(engine, used, params.max_tokens)

    def without(k: int) -> list[dict[str, str]]:
        gone = set(droppable[:k])
        return _plain([m for i, m in enumerate(messages) if i not in gone])

    # The fewest oldest droppable messages whose removal makes it fit (binary search: the
    # token count falls as more go).
    lo, hi = 1, len(droppable)
    counts = {hi: engine.count_tokens(without(hi), continue_last=cont)}
    if counts[hi] > room:
        raise _too_long(engine, counts[hi], params.max_tokens, trimmed=True)
    while lo < hi:
        mid = (lo + hi) // 2
        counts[mid] = engine.count_tokens(without(mid), continue_last=cont)
        if counts[mid] <= room:
            hi = mid
        else:
            lo = mid + 1
    return without(lo), lo, counts[lo]


def _plain(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def _too_long(
    engine: ChatEngine, used: int, max_tokens: int, *, trimmed: bool = False
) -> Exception:
    what = "even with every unpinned message dropped, the prompt" if trimmed else "the prompt"
    return PixelForgeError(
        ErrorCode.context_length_exceeded,
        f"{what} is {used} tokens and max_tokens is {max_tokens}, but model "
        f"{engine.model_id!r} takes {engine.context_length} tokens in all; shorten the "
        "messages, lower max_tokens"
        + ("" if trimmed else " or set trim=true to drop the oldest messages"),
    )
