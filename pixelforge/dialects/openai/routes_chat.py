"""OpenAI's text routes: POST /v1/chat/completions and /v1/completions, each one `chat` job.

Not streamed, the request waits for the job (at most `max_wait_s`) and answers its result.
Streamed, the job's token events leave as server-sent events as they are decoded; the response
starts once the first token (or the job's end) is there, so a job that fails before writing
anything (context too long, an option the model lacks) still answers with its own status. A
client that goes away cancels the job, and a canceled job is not charged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from pixelforge.dialects import common
from pixelforge.dialects.openai.chat_schemas import (
    SSE_DOC,
    ChatCompletionIn,
    ChatCompletionOut,
    CompletionIn,
    CompletionOut,
    SamplingIn,
)
from pixelforge.dialects.openai.chat_translate import (
    Chunks,
    chat_params,
    chat_response,
    completion_params,
    completion_response,
    job_failure,
)
from pixelforge.dialects.openai.errors import OpenAIError
from pixelforge.dialects.openai.schemas import RESPONSES
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.status import EventType, JobStatus
from pixelforge.models.base import CHAT
from pixelforge.services import Services
from pixelforge.store.tables import Account
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

CHAT_PREFIX = "/v1/chat"
COMPLETIONS_PREFIX = "/v1/completions"
PIPELINE = "chat"
router = APIRouter(tags=["openai"])
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_STREAMED = {"content": {"text/event-stream": {"schema": {"type": "string"}}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {**RESPONSES, 200: _STREAMED}


@router.post(
    f"{CHAT_PREFIX}/completions",
    response_model=ChatCompletionOut,
    response_model_exclude_none=True,
    responses=_RESPONSES,
    summary="OpenAI: a chat model's reply to messages (one `chat` job)",
    description=SSE_DOC,
)
@answers(503, 504)
async def chat_completions(
    body: ChatCompletionIn, account: CurrentAccount, services: ServicesDep
) -> Any:
    model = await run_in_threadpool(chat_model, services, body.model)
    params = chat_params(body, model)
    if body.stream:
        return await _stream(services, account, params, body, chat=True)
    result, job_id, created = await _run(services, account, params)
    return chat_response(job_id, created, result)


@router.post(
    COMPLETIONS_PREFIX,
    response_model=CompletionOut,
    response_model_exclude_none=True,
    responses=_RESPONSES,
    summary="OpenAI (legacy): a raw prompt's continuation (one `chat` job)",
    description=SSE_DOC,
)
@answers(503, 504)
async def completions(body: CompletionIn, account: CurrentAccount, services: ServicesDep) -> Any:
    model = await run_in_threadpool(chat_model, services, body.model)
    params = completion_params(body, model)
    if body.stream:
        return await _stream(services, account, params, body, chat=False)
    result, job_id, created = await _run(services, account, params)
    return completion_response(job_id, created, result)


def chat_model(services: Services, name: str | None) -> str:
    """The chat profile's id: the default one if none is named; 404 model_not_found for a
    name this server does not know, 400 for a model that does not chat."""
    if name is not None and services.models.catalog.get(name) is None:
        raise OpenAIError(
            ErrorCode.not_found,
            f"The model '{name}' does not exist on this server; see GET /v1/models",
            param="model",
            openai_code="model_not_found",
        )
    try:
        return services.models.profile(name, task=CHAT).id
    except PixelForgeError as e:
        if e.code == ErrorCode.invalid_parameter:
            raise OpenAIError(e.code, e.message, param="model") from None
        raise


async def _run(
    services: Services, account: Account, params: dict[str, Any]
) -> tuple[dict[str, Any], str, int]:
    """Submit, wait for the job's end; its result, id and creation time."""
    async with common.follow(services, account) as stream:
        submitted = await common.submit(services, account, PIPELINE, params)
        job_id = submitted.job.id
        with anyio.move_on_after(services.settings.max_wait_s):
            async for ev in stream.events(job_id):
                if ev.terminal:
                    break
        if not stream.ended:  # leaving the block cancels the job: nothing is charged
            raise _timeout(services, job_id, "the reply")
    job = await common.get_job(services, account, job_id)
    if job.status != JobStatus.SUCCEEDED:
        raise job_failure(job.error_code, job.error_message or f"the job ended {job.status}")
    return dict(job.result or {}), job_id, int(job.created_at)


def _timeout(services: Services, job_id: str, what: str) -> PixelForgeError:
    wait = f"{services.settings.max_wait_s:g} s"
    return PixelForgeError(
        ErrorCode.timeout,
        f"{what} was not ready within {wait}; job {job_id} was canceled and nothing was "
        "charged. Lower max_tokens, stream the reply, or retry when the server is less busy",
        status=504,
    )


async def _stream(
    services: Services, account: Account, params: dict[str, Any], body: SamplingIn, *, chat: bool
) -> StreamingResponse:
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    follow = common.follow(services, account)
    stream = await follow.__aenter__()
    try:
        submitted = await common.submit(services, account, PIPELINE, params)
        job_id = submitted.job.id
        events = stream.events(job_id)
        first = None
        with anyio.move_on_after(services.settings.max_wait_s):
            first = await anext(events)
            while not (first.type == EventType.TOKEN or first.terminal):
                first = await anext(events)
        if first is None:  # leaving the follow block cancels the job: nothing is charged
            raise _timeout(services, job_id, "the first token")
        if first.terminal and first.type != EventType.SUCCEEDED:
            raise job_failure(first.error_code, first.message)
    except BaseException:
        await follow.__aexit__(None, None, None)
        raise
    chunks = Chunks(chat=chat, job_id=job_id, model=params["model"])
    sse = _sse(services, account, follow, events, first, chunks, params["n"], include_usage)
    return StreamingResponse(sse, media_type="text/event-stream", headers=_SSE_HEADERS)


async def _sse(
    services: Services,
    account: Account,
    follow: AbstractAsyncContextManager[Any],
    events: AsyncIterator[Any],
    ev: Any,
    chunks: Chunks,
    n: int,
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """The chunks of one streamed reply. Leaving early (the client went away) leaves the
    follow block, which cancels the job."""
    finished: set[int] = set()
    try:
        head = chunks.opening(n)  # sent with the first piece: one write, not two
        while not ev.terminal:
            if ev.type == EventType.TOKEN and ev.index is not None:
                out = head
                if ev.delta:
                    out += chunks.text(ev.index, ev.delta)
                if ev.finish_reason and ev.finish_reason != "tool_calls":
                    finished.add(ev.index)
                    out += chunks.finish(ev.index, ev.finish_reason)
                if out:
                    yield out
                    head = b""
            ev = await anext(events)
        if head:
            yield head
        if ev.type != EventType.SUCCEEDED:
            yield Chunks.error(job_failure(ev.error_code, ev.message))
            return
        job = await common.get_job(services, account, ev.job_id)
        result = dict(job.result or {})
        for choice in result.get("choices", []):
            if choice["index"] not in finished:  # tool calls ride on the final chunk
                yield chunks.finish(
                    choice["index"], choice["finish_reason"], choice.get("tool_calls")
                )
        if include_usage:
            yield chunks.usage(result)
        yield Chunks.DONE
    finally:
        await follow.__aexit__(None, None, None)
