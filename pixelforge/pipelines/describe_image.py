"""Text about an image from a vision-language model: a description, or whatever the prompt
asks of the picture; tokens streamed onto the event bus as they are decoded."""

from __future__ import annotations

import time
from contextlib import closing
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import VISION
from pixelforge.pipelines.contract import JobCanceled, MediaRef, RunContext
from pixelforge.pipelines.generation import Decoding
from pixelforge.pipelines.limits import InputLimit

MAX_PROMPT = 20_000  # characters of prompt or system text
DEFAULT_PROMPT = "Describe this image in detail."


class DescribeImageParams(BaseModel):
    """Parameters of the `describe_image` pipeline."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef | None = Field(
        default=None,
        description="Media id of the image. Without one the model answers from the prompt "
        "alone (a vision model is also a language model).",
        examples=["med_3f9a1c2b7d4e"],
    )
    prompt: str = Field(
        default=DEFAULT_PROMPT,
        min_length=1,
        max_length=MAX_PROMPT,
        description="The instruction about the image.",
    )
    system: str | None = Field(
        default=None, max_length=MAX_PROMPT, description="A system message, if any."
    )
    model: str | None = Field(
        default=None,
        max_length=200,
        description="A vision model id (GET /v1/models); the default vision model if absent.",
        examples=["smolvlm-256m-instruct"],
    )
    max_tokens: int = Field(default=256, ge=1, le=4096)
    temperature: float = Field(default=0.7, ge=0, le=2, description="0: greedy decoding.")
    top_p: float = Field(default=1.0, gt=0, le=1)
    repetition_penalty: float = Field(default=1.0, gt=0, le=2)
    stop: list[str] = Field(default_factory=list, max_length=4)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)

    @field_validator("stop")
    @classmethod
    def _stops(cls, stop: list[str]) -> list[str]:
        if any(not s for s in stop):
            raise ValueError("stop sequences must not be empty")
        return stop


class DescribeImagePipeline:
    """A vision-language model's text about one image; tokens on the event bus."""

    name: ClassVar[str] = "describe_image"
    description: ClassVar[str] = (
        "Describe an image, or answer an instruction about it, with a vision-language "
        "model (SmolVLM by default); tokens stream as `token` events. 1 credit."
    )
    Params: ClassVar[type[BaseModel]] = DescribeImageParams
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: DescribeImageParams) -> int:
        return 1

    def run(self, params: DescribeImageParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load the input and the model (kept resident while the block runs)
        started = time.perf_counter()
        images = [ctx.load_image(params.image).convert("RGB")] if params.image else []
        messages: list[dict[str, Any]] = []
        if params.system:
            messages.append({"role": "system", "content": params.system})
        messages.append({"role": "user", "content": params.prompt})
        model_id = ctx.models.profile(params.model, task=VISION).id
        with ctx.models.load(model_id, task=VISION) as vlm:
            loaded = time.perf_counter()
            # 2. The prompt (image tokens included) must leave room for the reply
            prompt_tokens = vlm.count_tokens(messages, images)
            if prompt_tokens + params.max_tokens > vlm.context_length:
                raise PixelForgeError(
                    ErrorCode.context_length_exceeded,
                    f"the prompt is {prompt_tokens} tokens (the image included) and "
                    f"max_tokens is {params.max_tokens}, but model {model_id!r} takes "
                    f"{vlm.context_length} tokens in all; shorten the prompt or lower max_tokens",
                )
            # 3. Decode, each piece onto the bus as it comes
            run = Decoding(
                1, model_id=model_id, prompt_tokens=prompt_tokens, started=started, loaded=loaded
            )
            sampling = _sampling(params, ctx.seed)
            try:
                with closing(vlm.stream(messages, images=images, **sampling)) as deltas:
                    for delta in deltas:
                        text = run.add(delta)
                        if text or delta.finish_reason:
                            ctx.emit_text(0, text, delta.finish_reason)
            except JobCanceled:
                raise JobCanceled(partial=_result(run)) from None
        # 4. The text, usage and timings are the job's result
        return _result(run)


def _sampling(params: DescribeImageParams, seed: int) -> dict[str, Any]:
    return {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "repetition_penalty": params.repetition_penalty,
        "stop": tuple(params.stop),
        "seed": params.seed if params.seed is not None else seed,
    }


def _result(run: Decoding) -> dict[str, Any]:
    """The chat pipeline's result shape (one choice), with the text also at the top."""
    result = run.result()
    choice = result["choices"][0]
    return {"text": choice["text"], "finish_reason": choice["finish_reason"], **result}
