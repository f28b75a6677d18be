"""OpenAI's chat and completion requests -> `chat` job params; job results and token events ->
`chat.completion` / `text_completion` bodies and their streamed chunks."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from pixelforge.dialects.openai.chat_schemas import (
    MAX_TEXT,
    AssistantMessage,
    ChatChoice,
    ChatCompletionIn,
    ChatCompletionOut,
    ChatMessageIn,
    CompletionIn,
    CompletionOut,
    SamplingIn,
    TextChoice,
    Usage,
)
from pixelforge.dialects.openai.errors import OpenAIError, bad
from pixelforge.errors import ErrorCode, PixelForgeError

COMPLETION_MAX_TOKENS = 16  # the legacy endpoint's default, as OpenAI's
_ROLES = {"developer": "system", "system": "system", "user": "user", "assistant": "assistant"}
_UNSUPPORTED_RE = re.compile(r"does not support (\w+)")


# -- requests --------------------------------------------------------------------------------


def _sampling(body: SamplingIn, model: str) -> dict[str, Any]:
    if body.logit_bias:
        raise bad("logit_bias", "not supported by this server; omit it")
    if body.stream_options is not None and not body.stream:
        raise bad("stream_options", "only allowed with stream: true")
    params: dict[str, Any] = {"model": model, "n": body.n or 1}
    if body.stop is not None:
        stops = [body.stop] if isinstance(body.stop, str) else body.stop
        if len(stops) > 4:
            raise bad("stop", "give at most 4 stop sequences")
        if any(not s for s in stops):
            raise bad("stop", "stop sequences must not be empty")
        params["stop"] = stops
    if body.top_p == 0:  # only the most likely token: greedy
        params["temperature"] = 0.0
    elif body.top_p is not None:
        params["top_p"] = body.top_p
    if body.temperature is not None and "temperature" not in params:
        params["temperature"] = body.temperature
    if body.seed is not None:
        params["seed"] = body.seed % 2**63  # OpenAI takes negative seeds too
    for name in ("frequency_penalty", "presence_penalty", "top_k", "repetition_penalty"):
        value = getattr(body, name)
        if value is not None:
            params[name] = value
    return params


def chat_params(body: ChatCompletionIn, model: str) -> dict[str, Any]:
    """The `chat` job's params for a Chat Completions request."""
    if body.logprobs or body.top_logprobs:
        raise bad("logprobs", "log probabilities are not supported by this server; omit it")
    params = _sampling(body, model)
    params["messages"] = [_message(i, m) for i, m in enumerate(body.messages)]
    params["max_tokens"] = body.max_completion_tokens or body.max_tokens or 256
    if body.response_format is not None and body.response_format.type != "text":
        params["response_format"] = body.response_format.model_dump(
            by_alias=True, exclude_none=True
        )
    if body.tools:
        params["tools"] = body.tools
        if body.tool_choice is not None:
            params["tool_choice"] = body.tool_choice
    if body.continue_last:
        params["continue_last"] = True
    if body.trim:
        params["trim"] = True
    return params


def _message(i: int, m: ChatMessageIn) -> dict[str, str]:
    param = f"messages[{i}]"
    role = _ROLES.get(m.role)
    if role is None:
        raise bad(f"{param}.role", f"{m.role!r} messages are not supported by this server")
    if m.content is None or isinstance(m.content, str):
        text = m.content or ""
    else:
        texts = []
        for part in m.content:
            if part.type != "text" or part.text is None:
                raise bad(f"{param}.content", f"{part.type!r} parts are not supported; send text")
            texts.append(part.text)
        text = "".join(texts)
    if len(text) > MAX_TEXT:
        raise bad(f"{param}.content", f"at most {MAX_TEXT} characters")
    if m.model_extra and m.model_extra.get("tool_calls"):
        raise bad(f"{param}.tool_calls", "tool calls in messages are not supported here")
    return {"role": role, "content": text}


def completion_params(body: CompletionIn, model: str) -> dict[str, Any]:
    """The `chat` job's params for a (legacy) Completions request: a raw prompt."""
    if body.suffix:
        raise bad("suffix", "not supported by this server; omit it")
    if body.echo:
        raise bad("echo", "echoing the prompt is not supported by this server")
    if body.best_of is not None and body.best_of > 1:
        raise bad("best_of", "only best_of=1 is supported; use n for several completions")
    if body.logprobs is not None:
        raise bad("logprobs", "log probabilities are not supported by this server; omit it")
    prompt = body.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise bad("prompt", "give one prompt (a string) per request")
        prompt = prompt[0]
    if not prompt:
        raise bad("prompt", "must not be empty")
    if len(prompt) > MAX_TEXT:
        raise bad("prompt", f"at most {MAX_TEXT} characters")
    params = _sampling(body, model)
    params["prompt"] = prompt
    params["max_tokens"] = body.max_tokens or COMPLETION_MAX_TOKENS
    return params


def job_failure(code: str | None, message: str | None) -> PixelForgeError:
    """A failed chat job's error, naming the OpenAI parameter where one is at fault."""
    try:
        err_code = ErrorCode(code or ErrorCode.internal_error)
    except ValueError:
        err_code = ErrorCode.internal_error
    text = message or "the generation failed"
    param: str | None = None
    openai_code: str | None = None
    if err_code == ErrorCode.context_length_exceeded:
        param, openai_code = "messages", "context_length_exceeded"
    elif err_code == ErrorCode.invalid_parameter:
        m = _UNSUPPORTED_RE.search(text)
        param = m.group(1) if m else ("response_format" if "response_format" in text else None)
    if param is None and openai_code is None:
        return PixelForgeError(err_code, text)
    return OpenAIError(err_code, text, param=param, openai_code=openai_code)


# -- responses -------------------------------------------------------------------------------


def _usage(result: dict[str, Any]) -> Usage:
    u = result.get("usage") or {}
    prompt, completion = int(u.get("prompt_tokens", 0)), int(u.get("completion_tokens", 0))
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def chat_response(job_id: str, created: int, result: dict[str, Any]) -> ChatCompletionOut:
    choices = []
    for c in result.get("choices", []):
        calls = c.get("tool_calls")
        message = AssistantMessage(content=None if calls else c["text"], tool_calls=calls or None)
        choices.append(
            ChatChoice(index=c["index"], message=message, finish_reason=c["finish_reason"])
        )
    return ChatCompletionOut(
        id=f"chatcmpl-{job_id}",
        created=created,
        model=result.get("model", ""),
        choices=choices,
        usage=_usage(result),
    )


def completion_response(job_id: str, created: int, result: dict[str, Any]) -> CompletionOut:
    choices = [
        TextChoice(index=c["index"], text=c["text"], finish_reason=c["finish_reason"])
        for c in result.get("choices", [])
    ]
    return CompletionOut(
        id=f"cmpl-{job_id}",
        created=created,
        model=result.get("model", ""),
        choices=choices,
        usage=_usage(result),
    )


class Chunks:
    """Server-sent-event lines of one streamed response (chat or text completion)."""

    def __init__(self, *, chat: bool, job_id: str, model: str) -> None:
        self.chat = chat
        self.head = {
            "id": f"{'chatcmpl' if chat else 'cmpl'}-{job_id}",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
        }

    def _line(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        body = {**self.head, "choices": choices, **extra}
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    def _choice(self, index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        if self.chat:
            return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        text = delta.get("content", "")
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish}

    def opening(self, n: int) -> bytes:
        """The first chunk of each candidate: the assistant role (chat only)."""
        if not self.chat:
            return b""
        role = {"role": "assistant", "content": ""}
        return b"".join(self._line([self._choice(i, role, None)]) for i in range(n))

    def text(self, index: int, text: str) -> bytes:
        return self._line([self._choice(index, {"content": text}, None)])

    def finish(self, index: int, reason: str, tool_calls: list[Any] | None = None) -> bytes:
        delta: dict[str, Any] = {"tool_calls": tool_calls} if tool_calls else {}
        return self._line([self._choice(index, delta, reason)])

    def usage(self, result: dict[str, Any]) -> bytes:
        return self._line([], usage=_usage(result).model_dump())

    @staticmethod
    def error(err: PixelForgeError) -> bytes:
        body = {"error": {"message": err.message, "type": "server_error", "code": err.code}}
        if err.status < 500:
            body["error"]["type"] = "invalid_request_error"
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    DONE = b"data: [DONE]\n\n"
