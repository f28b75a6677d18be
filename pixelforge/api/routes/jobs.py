"""Jobs: submit (idempotent, optionally blocking), read, list, cancel."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pixelforge.api.schemas import JobId, JobList, JobOut, job_out
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.service import meta_json
from pixelforge.jobs.status import JobStatus
from pixelforge.jobs.waiting import wait_for_end
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.errors import ErrorOut
from pixelforge.web.urls import base_url

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_WAIT_RE = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_STATUSES = tuple(s.value for s in JobStatus)
MAX_METADATA_BYTES = 16 * 1024


class JobIn(BaseModel):
    pipeline: str = Field(examples=["upscale"], max_length=64)
    params: dict[str, Any] = Field(
        default_factory=dict, examples=[{"image": "med_...", "scale": 2}]
    )
    priority: int = Field(0, ge=-100, le=100, description="higher runs first")
    block_explicit: bool | None = Field(
        None, description="refuse explicit results (NSFW gate); default: the account's setting"
    )
    request_id: str | None = Field(
        None, max_length=200, description="idempotency key (or the Idempotency-Key header)"
    )
    metadata: dict[str, Any] | None = Field(
        None,
        description="your own fields, kept with the job and returned with it "
        f"(JSON, at most {MAX_METADATA_BYTES // 1024} KiB)",
        examples=[{"order": "A-1042", "tags": ["catalog", "spring"]}],
    )


def parse_wait(prefer: str | None, limit: float) -> float:
    if not prefer:
        return 0.0
    m = _WAIT_RE.search(prefer)
    return min(float(m.group(1)), limit) if m else 0.0


@router.post(
    "",
    response_model=JobOut,
    status_code=202,
    summary="Submit a job",
    description="Accepts a job and holds its cost in credits. `Prefer: wait=N` (N <= 60) "
    "blocks until the job finishes (200) or N seconds pass (202).",
    responses={
        200: {"model": JobOut, "description": "finished within Prefer: wait"},
        402: {"model": ErrorOut},
        422: {"model": ErrorOut},
        429: {"model": ErrorOut},
    },
)
async def submit_job(
    body: JobIn,
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    prefer: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    key = body.request_id or idempotency_key
    if body.request_id and idempotency_key and body.request_id != idempotency_key:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            "request_id and Idempotency-Key differ; send one of them",
        )
    if body.metadata is not None:
        meta_json(body.metadata, limit=MAX_METADATA_BYTES)
    submitted = await run_in_threadpool(
        services.jobs.submit,
        account_id=account.id,
        pipeline=body.pipeline,
        params=body.params,
        priority=body.priority,
        idempotency_key=key,
        block_explicit=account.block_explicit
        if body.block_explicit is None
        else body.block_explicit,
        meta=body.metadata,
    )
    job = submitted.job
    wait = parse_wait(prefer, services.settings.max_wait_s)
    headers: dict[str, str] = {"Location": f"/v1/jobs/{job.id}"}
    if wait > 0:
        job = await wait_for_end(services.jobs, services.bus, job, wait)
        headers["Preference-Applied"] = f"wait={wait:g}"
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    out = await run_in_threadpool(job_out, services, job, base_url(services, request))
    code = 200 if JobStatus(job.status).terminal and wait > 0 else 202
    return JSONResponse(out.model_dump(mode="json"), status_code=code, headers=headers)


@router.get("", response_model=JobList, summary="List my jobs, newest first")
def list_jobs(
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
    status: Annotated[str | None, Query(description="|".join(_STATUSES))] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
) -> JobList:
    if status is not None and status not in _STATUSES:
        raise PixelForgeError(
            ErrorCode.invalid_parameter, f"status: must be one of {', '.join(_STATUSES)}"
        )
    rows, nxt = services.jobs.list(account_id=account.id, status=status, limit=limit, cursor=cursor)
    base = base_url(services, request)
    # One queue-order query for the page, not one per queued job.
    positions = services.jobs.positions() if any(j.status == JobStatus.QUEUED for j in rows) else {}
    data = [job_out(services, j, base, positions=positions) for j in rows]
    return JobList(data=data, next_cursor=nxt)


@router.get(
    "/{job_id}",
    response_model=JobOut,
    responses={404: {"model": ErrorOut}},
    summary="Read a job: status, progress, outputs with download URLs",
)
def get_job(
    job_id: JobId, request: Request, account: CurrentAccount, services: ServicesDep
) -> JobOut:
    job = services.jobs.get(account_id=account.id, job_id=job_id)
    return job_out(services, job, base_url(services, request))


@router.delete(
    "/{job_id}",
    response_model=JobOut,
    responses={404: {"model": ErrorOut}},
    summary="Cancel: a queued job at once, a running one at its next step",
)
def cancel_job(
    job_id: JobId, request: Request, account: CurrentAccount, services: ServicesDep
) -> JobOut:
    job = services.jobs.cancel(account_id=account.id, job_id=job_id)
    return job_out(services, job, base_url(services, request))
