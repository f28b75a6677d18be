"""Response schemas shared by several routers, and the job/media serialisers."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, Field

from pixelforge.jobs.service import MAX_META_DEPTH, json_depth
from pixelforge.jobs.status import JobStatus
from pixelforge.services import Services
from pixelforge.store.tables import Job, Media

log = logging.getLogger("pixelforge.api")

POLLING_INTERVAL_MS = 1000

JobId = Annotated[str, Path(max_length=64, examples=["job_a8Zr0cK1d2Q9xw3mP0vUoQ"])]
MediaId = Annotated[str, Path(max_length=64, examples=["med_3q2xJ0cQ9h1b7m0PZrUo8A"])]
KeyId = Annotated[str, Path(max_length=64, examples=["key_Vb3k0Qm2pL8xT1zR9wYc4A"])]
AccountRef = Annotated[
    str, Path(max_length=320, description="account id or email", examples=["ada@example.com"])
]


class MediaOut(BaseModel):
    id: str = Field(examples=["med_3q2xJ0cQ9h1b7m0PZrUo8A"])
    object: str = "media"
    kind: str = Field(description="upload or result", examples=["upload"])
    content_type: str = Field(examples=["image/png"])
    bytes: int
    width: int | None
    height: int | None
    sha256: str
    job_id: str | None
    created_at: float
    expires_at: float
    url: str = Field(description="signed download URL; no auth header needed")
    url_expires_at: int


class JobError(BaseModel):
    code: str
    message: str


class JobOut(BaseModel):
    id: str = Field(examples=["job_a8Zr0cK1d2Q9xw3mP0vUoQ"])
    object: str = "job"
    pipeline: str = Field(examples=["upscale"])
    status: str = Field(examples=["queued"], description="queued|running|succeeded|failed|canceled")
    priority: int
    progress: float = Field(ge=0, le=1)
    step: int
    total: int
    queue_position: int | None = Field(description="1 = next to run; null unless queued")
    polling_interval_ms: int = POLLING_INTERVAL_MS
    attempts: int
    block_explicit: bool
    seed: int
    cost: int
    params: dict[str, Any]
    metadata: dict[str, Any] | None = Field(
        None,
        description="what the job was submitted with as `metadata` (dialects keep theirs here)",
        examples=[{"order": "A-1042", "tags": ["catalog", "spring"]}],
    )
    result: dict[str, Any] | None
    outputs: list[MediaOut]
    error: JobError | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    timings: dict[str, float]
    links: dict[str, str]


class JobList(BaseModel):
    object: str = "list"
    data: list[JobOut]
    next_cursor: str | None


def media_out(services: Services, row: Media, base: str) -> MediaOut:
    query, exp = services.media.signed_query(row)
    return MediaOut(
        id=row.id,
        kind=row.kind,
        content_type=row.content_type,
        bytes=row.bytes,
        width=row.width,
        height=row.height,
        sha256=row.sha256,
        job_id=row.job_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        url=f"{base}/v1/media/{row.id}/content?{query}",
        url_expires_at=exp,
    )


def _stored_meta(job: Job) -> dict[str, Any] | None:
    """The job's metadata, or None for a row stored before the depth limit existed: one
    such row must not turn every listing of the account into a 500."""
    if job.meta is not None and json_depth(job.meta) > MAX_META_DEPTH:
        log.warning("job %s: metadata nested too deep to return; left out", job.id)
        return None
    return job.meta


def job_out(
    services: Services, job: Job, base: str, *, positions: dict[str, int] | None = None
) -> JobOut:
    """The API view of a job. Pass `positions` (from JobService.positions) for many jobs."""
    timings: dict[str, float] = {}
    if job.started_at is not None:
        timings["queued_s"] = round(job.started_at - job.created_at, 4)
        if job.finished_at is not None:
            timings["run_s"] = round(job.finished_at - job.started_at, 4)
    outputs = services.jobs.outputs(job.id) if job.status == JobStatus.SUCCEEDED else []
    ws_base = base.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    return JobOut(
        id=job.id,
        pipeline=job.pipeline,
        status=job.status,
        priority=job.priority,
        progress=job.progress,
        step=job.step,
        total=job.total,
        queue_position=services.jobs.position(job) if positions is None else positions.get(job.id),
        attempts=job.attempts,
        block_explicit=job.block_explicit,
        seed=job.seed,
        cost=job.cost,
        params=job.params,
        metadata=_stored_meta(job),
        result=job.result,
        outputs=[media_out(services, m, base) for m in outputs],
        error=JobError(code=job.error_code, message=job.error_message or "")
        if job.error_code
        else None,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        timings=timings,
        links={
            "self": f"{base}/v1/jobs/{job.id}",
            "events": f"{ws_base}/v1/jobs/{job.id}/events",
            "cancel": f"{base}/v1/jobs/{job.id}",
        },
    )
