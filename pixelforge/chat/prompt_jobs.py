"""Run a prompt helper (`chat/prompts.py`) as one `chat` job and wait for its answer.

The job goes through the core like any other (credits held at submit and captured on success,
the account's rate limits at the door): the caller waits for it, and a wait that runs out or a
client that leaves cancels it, so nothing is charged for an answer nobody gets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request

from pixelforge.chat.prompts import Reading, Template
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.status import JobStatus
from pixelforge.jobs.streams import JobStream, follow_job
from pixelforge.models.base import CHAT
from pixelforge.services import Services
from pixelforge.store.tables import Account, Job

Disconnected = Callable[[], Awaitable[None]]


def client_left(request: Request) -> Disconnected:
    """Returns once the client of this request has gone (its body is already read)."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return gone


@dataclass(frozen=True)
class Answer:
    """A helper's answer: what was read from the model's text, the job, its token usage."""

    reading: Reading
    job_id: str
    model: str
    usage: dict[str, int]


async def run_template(
    services: Services,
    account: Account,
    template: Template,
    *,
    model: str | None,
    wait_s: float,
    max_tokens: int | None = None,
    meta: dict[str, Any] | None = None,
    disconnected: Disconnected | None = None,
) -> Answer:
    """Submit the template as one `chat` job and wait up to `wait_s` for it to end.

    `max_tokens` caps the answer below the template's own length. A model that does not
    exist or is not installed fails here, before credits are held. When the wait runs out
    (504) or `disconnected` returns (the client left), the job is canceled."""
    profile = await run_in_threadpool(lambda: services.models.profile(model, task=CHAT))
    window = int(profile.extra.get("context_length") or 0) or None
    params = template.params(profile.id, window=window, max_tokens=max_tokens)
    async with follow_job(services.jobs, services.bus, account.id) as stream:
        submitted = await run_in_threadpool(
            lambda: services.jobs.submit(
                account_id=account.id,
                pipeline="chat",
                params=params,
                block_explicit=account.block_explicit,
                meta=meta,
            )
        )
        job_id = submitted.job.id
        outcome = await _follow(stream, job_id, wait_s, disconnected)
        if outcome != "ended":  # leaving the block now cancels the job
            raise _timed_out(job_id, wait_s) if outcome == "timeout" else _left(job_id)
    job = await run_in_threadpool(lambda: services.jobs.get(account_id=account.id, job_id=job_id))
    if job.status != JobStatus.SUCCEEDED:
        raise job_failure(job)
    result = job.result or {}
    first = (result.get("choices") or [{}])[0]
    cut = first.get("finish_reason") == "length"
    return Answer(
        reading=template.read(str(first.get("text") or ""), cut=cut),
        job_id=job.id,
        model=str(result.get("model") or profile.id),
        usage=dict(result.get("usage") or {}),
    )


async def _follow(
    stream: JobStream, job_id: str, wait_s: float, disconnected: Disconnected | None
) -> str:
    """How the wait for the job's final event ended: "ended", "timeout" or "left"."""
    left = False

    async def watch(scope: anyio.CancelScope) -> None:
        nonlocal left
        assert disconnected is not None
        await disconnected()
        left = True
        scope.cancel()

    with anyio.move_on_after(wait_s):
        async with anyio.create_task_group() as tasks:
            if disconnected is not None:
                tasks.start_soon(watch, tasks.cancel_scope)
            async for _ in stream.events(job_id):
                pass
            tasks.cancel_scope.cancel()
    if stream.ended:
        return "ended"
    return "left" if left else "timeout"


def _timed_out(job_id: str, wait_s: float) -> PixelForgeError:
    return PixelForgeError(
        ErrorCode.timeout,
        f"the model did not answer within {wait_s:g} s; job {job_id} was canceled and "
        "nothing was charged",
        status=504,
    )


def _left(job_id: str) -> PixelForgeError:
    return PixelForgeError(
        ErrorCode.canceled, f"the client left; job {job_id} was canceled", status=499
    )


def job_failure(job: Job) -> PixelForgeError:
    """A failed or canceled helper job's own error (its stored code and message)."""
    try:
        code = ErrorCode(job.error_code or ErrorCode.internal_error)
    except ValueError:  # a code this version does not know
        code = ErrorCode.internal_error
    message = job.error_message or f"the helper's job {job.status}"
    return PixelForgeError(code, message, status=409 if code == ErrorCode.canceled else None)


def describe_media(services: Services, account_id: str, media_id: str) -> str | None:
    """What a media item shows, as far as the server knows: the prompt of the job that
    made it (None for an upload). Anyone else's media, or an expired one, is 404."""
    row = services.media.get(account_id=account_id, media_id=media_id)
    if row.job_id is None:
        return None
    with suppress(PixelForgeError):
        job = services.jobs.get(account_id=account_id, job_id=row.job_id)
        prompt = (job.params or {}).get("prompt")
        return (prompt.strip() or None) if isinstance(prompt, str) else None
    return None
