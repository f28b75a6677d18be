"""OpenAI's Chat Completions and (legacy) Completions request and response models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_N = 8  # candidates the chat pipeline decodes together
MAX_TOKENS = 8192
MAX_TEXT = 200_000


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str = Field(max_length=40, examples=["text"])
    text: str | None = Field(None, max_length=MAX_TEXT)


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, refusal...: read in translate

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None
    name: str | None = Field(None, max_length=200)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool | None = None


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=64)
    description: str | None = Field(None, max_length=2000)
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


Stop = str | list[str] | None


class SamplingIn(BaseModel):
    """What both endpoints share."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str | None = Field(None, max_length=200, examples=["smollm2-135m-instruct"])
    n: int | None = Field(None, ge=1, le=MAX_N, description=f"1 to {MAX_N} candidates")
    stop: Stop = Field(None, description="a string or up to 4 strings")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    logit_bias: dict[str, float] | None = Field(None, description="not supported: 400")
    user: str | None = Field(None, max_length=1000, description="accepted, ignored")
    # PixelForge extensions
    top_k: int | None = Field(None, ge=0, le=1000, description="PixelForge: top-k cut")
    repetition_penalty: float | None = Field(None, gt=0, le=2, description="PixelForge")


class ChatCompletionIn(SamplingIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model": "smollm2-135m-instruct",
                    "messages": [{"role": "user", "content": "Say hello"}],
                    "max_tokens": 32,
                }
            ]
        }
    )

    messages: list[ChatMessageIn] = Field(min_length=1, max_length=2000)
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    max_completion_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = Field(None, description="not supported: 400 when true")
    top_logprobs: int | None = Field(None, ge=0, le=20, description="not supported: 400")
    # Accepted and ignored:
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = Field(None, max_length=40)
    safety_identifier: str | None = Field(None, max_length=1000)
    prompt_cache_key: str | None = Field(None, max_length=1000)
    reasoning_effort: str | None = Field(None, max_length=40)
    # PixelForge extensions
    continue_last: bool | None = Field(None, description="PixelForge: continue the last reply")
    trim: bool | None = Field(None, description="PixelForge: drop old messages to fit")


class CompletionIn(SamplingIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"model": "smollm2-135m-instruct", "prompt": "Once upon", "max_tokens": 8}]
        }
    )

    prompt: str | list[str]
    max_tokens: int | None = Field(None, ge=1, le=MAX_TOKENS, description="16 if absent")
    suffix: str | None = Field(None, max_length=MAX_TEXT, description="not supported: 400")
    echo: bool | None = Field(None, description="not supported: 400 when true")
    best_of: int | None = Field(None, ge=0, le=20, description="more than 1: 400")
    logprobs: int | None = Field(None, ge=0, le=5, description="not supported: 400")


# -- responses -------------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class ChatCompletionOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "chatcmpl-job_x",
                    "object": "chat.completion",
                    "created": 1735689600,
                    "model": "smollm2-135m-instruct",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "Hello!"},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
                }
            ]
        }
    )
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class TextChoice(BaseModel):
    index: int
    text: str
    finish_reason: str
    logprobs: None = None


class CompletionOut(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage
    system_fingerprint: str | None = None


SSE_DOC = (
    "With `stream: true`: `text/event-stream`, one `data: {chunk}` line per piece "
    "(`chat.completion.chunk` / `text_completion`), then `data: [DONE]`."
)
