"""The door from a dialect to the core: submit, wait, read results, ingest media; run a
prompt helper (`chat/prompts.py`) as one chat job (`run_template`).

Everything here is a thin call into the core services (run off the event loop), so a dialect
module holds only translation: its request shapes in, its response shapes out.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from pixelforge.chat.prompt_jobs import Answer, client_left, describe_media, run_template
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.service import Submitted
from pixelforge.jobs.status import JobStatus
from pixelforge.jobs.streams import JobStream, follow_job
from pixelforge.jobs.waiting import wait_for_end
from pixelforge.media.service import decode_base64
from pixelforge.services import Services
from pixelforge.store.tables import Account, Job, Media
from pixelforge.web.urls import base_url

__all__ = [
    "Answer",
    "JobStream",
    "base_url",
    "client_left",
    "describe_media",
    "follow",
    "ingest_image",
    "job_error",
    "media_url",
    "outputs",
    "run_template",
    "submit",
    "wait",
]


async def submit(
    services: Services,
    account: Account,
    pipeline: str,
    params: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    block_explicit: bool | None = None,
    priority: int = 0,
    poll_timeout_s: float | None = None,
    meta: dict[str, Any] | None = None,
) -> Submitted:
    """Accept a core job for the account (validates params, holds credits, idempotent).

    `meta`: the dialect's own fields (its request as sent), stored with the job atomically."""
    return await run_in_threadpool(
        lambda: services.jobs.submit(
            account_id=account.id,
            pipeline=pipeline,
            params=params,
            priority=priority,
            idempotency_key=idempotency_key,
            block_explicit=account.block_explicit if block_explicit is None else block_explicit,
            poll_timeout_s=poll_timeout_s,
            meta=meta,
        )
    )


def follow(services: Services, account: Account) -> AbstractAsyncContextManager[JobStream]:
    """Follow a job the block is about to submit (subscribed before it exists): its events
    through `stream.events(job_id)`; leaving the block before the job ends cancels it."""
    return follow_job(services.jobs, services.bus, account.id)


async def wait(services: Services, job: Job, wait_s: float) -> Job:
    """The job once it has ended, or as it is after `wait_s` seconds."""
    return await wait_for_end(services.jobs, services.bus, job, wait_s)


async def get_job(services: Services, account: Account, job_id: str) -> Job:
    """The account's job (404 not_found for anyone else's)."""
    return await run_in_threadpool(lambda: services.jobs.get(account_id=account.id, job_id=job_id))


def job_error(job: Job, *, fallback: str = "the job failed") -> PixelForgeError:
    """A failed or canceled job's own error (its stored code and message), to raise."""
    try:
        code = ErrorCode(job.error_code or ErrorCode.internal_error)
    except ValueError:  # a code this version does not know
        code = ErrorCode.internal_error
    return PixelForgeError(code, job.error_message or fallback)


async def outputs(services: Services, job: Job) -> list[Media]:
    """The result media of a succeeded job, in order (empty otherwise)."""
    if job.status != JobStatus.SUCCEEDED:
        return []
    return await run_in_threadpool(services.jobs.outputs, job.id)


def media_url(services: Services, conn: HTTPConnection, row: Media) -> str:
    """A signed, expiring download URL for a media item (no auth header needed)."""
    query, _ = services.media.signed_query(row)
    return f"{base_url(services, conn)}/v1/media/{row.id}/content?{query}"


async def ingest_image(
    services: Services,
    account: Account,
    *,
    data: bytes | None = None,
    b64: str | None = None,
    url: str | None = None,
    field: str = "image",
    reuse_identical: bool = False,
) -> Media:
    """Store an input image given as bytes, base64 (bare or data URI) or a URL (SSRF-safe).

    `reuse_identical`: an identical live upload of the account's is returned instead of a new
    item (so a retried request names the same media and maps to the same idempotent job)."""
    given = [v for v in (data, b64, url) if v]
    if len(given) != 1:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"{field}: give exactly one of a file, base64 data or a URL",
        )
    if url:
        return await run_in_threadpool(
            lambda: services.media.ingest_url(
                account_id=account.id, url=url, reuse_identical=reuse_identical
            )
        )
    raw = data if data else decode_base64(b64 or "", max_bytes=services.media.limits.max_bytes)
    return await run_in_threadpool(
        lambda: services.media.ingest_upload(
            account_id=account.id, data=raw, reuse_identical=reuse_identical
        )
    )
