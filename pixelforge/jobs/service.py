"""Accepting, reading, listing and canceling jobs (idempotent, credit-holding)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError

from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError, human_size, not_found
from pixelforge.ids import new_id
from pixelforge.jobs import lifecycle
from pixelforge.jobs.events import EventBus
from pixelforge.jobs.faults import FaultPoints
from pixelforge.jobs.queue import queue_order, queue_position
from pixelforge.jobs.status import JobStatus
from pixelforge.pipelines.contract import media_ref_fields
from pixelforge.pipelines.limits import check_input
from pixelforge.pipelines.registry import PipelineRegistry
from pixelforge.store.db import Database
from pixelforge.store.tables import Job, Media

MAX_SEED = 2**32 - 1
# A job's metadata, as compact JSON: a bound on what a client can park in the jobs table.
MAX_META_BYTES = 64 * 1024
# Nesting bound: the response serializer gives up past ~255 levels, and no honest use needs 32.
MAX_META_DEPTH = 32
MetaPath = tuple[str, ...]


def json_depth(value: object) -> int:
    """How deeply objects and arrays nest in `value` (a scalar is 0), without recursing."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Collection[object] = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def meta_json(meta: dict[str, Any], *, limit: int = MAX_META_BYTES) -> str:
    """Job metadata as canonical JSON; 400 if it is not plain JSON, nests deeper than
    MAX_META_DEPTH or is larger than `limit`."""
    if json_depth(meta) > MAX_META_DEPTH:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"metadata: nested more than {MAX_META_DEPTH} levels deep",
        )
    try:
        text = json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        raise PixelForgeError(
            ErrorCode.invalid_parameter, "metadata: must be JSON (NaN and Infinity are not)"
        ) from None
    if len(text.encode()) > limit:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"metadata: {human_size(len(text.encode()))} as JSON, over the "
            f"{human_size(limit)} limit",
        )
    return text


def validation_message(err: ValidationError, *, prefix: str = "") -> str:
    """`field.sub: problem` for the first error, so a person knows what to fix."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
    return f"{loc or 'body'}: {first['msg']}"


@dataclass(frozen=True)
class Submitted:
    job: Job
    created: bool  # False when an idempotent retry returned the existing job


class JobService:
    def __init__(
        self,
        *,
        db: Database,
        registry: PipelineRegistry,
        bus: EventBus,
        max_attempts: int,
        wake: Callable[[], None] = lambda: None,
        on_cancel: Callable[[str], None] = lambda _job_id: None,
        notify_positions: Callable[[], None] = lambda: None,
        faults: FaultPoints | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.bus = bus
        self.max_attempts = max_attempts
        self.wake = wake
        self.on_cancel = on_cancel
        self.notify_positions = notify_positions
        self.faults = faults or FaultPoints()

    def validate_params(self, pipeline_name: str, raw: dict[str, Any]) -> BaseModel:
        pipeline = self.registry.get(pipeline_name)
        try:
            return pipeline.Params.model_validate(raw)
        except ValidationError as e:
            raise PixelForgeError(
                ErrorCode.invalid_parameter, validation_message(e, prefix="params")
            ) from None

    def submit(
        self,
        *,
        account_id: str,
        pipeline: str,
        params: dict[str, Any],
        priority: int = 0,
        idempotency_key: str | None = None,
        block_explicit: bool = False,
        poll_timeout_s: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Submitted:
        """Accept a job. `meta` is kept with it as given (part of the idempotent request)."""
        model = self.validate_params(pipeline, params)
        clean = model.model_dump(mode="json")
        meta = meta or None
        request: dict[str, Any] = {"p": pipeline, "a": clean, "r": priority, "x": block_explicit}
        if meta is not None:  # absent otherwise, so jobs from before `meta` keep their hash
            meta_json(meta)
            request["m"] = meta
        request_hash = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        cost = self.registry.get(pipeline).cost(model)
        seed = int(clean.get("seed") or 0) or random.SystemRandom().randint(1, MAX_SEED)
        refs = media_ref_fields(model)

        def existing(s: Any) -> Submitted | None:
            if idempotency_key is None:
                return None
            job = s.scalar(
                select(Job).where(
                    Job.account_id == account_id, Job.idempotency_key == idempotency_key
                )
            )
            if job is None:
                return None
            if job.request_hash != request_hash:
                raise PixelForgeError(
                    ErrorCode.idempotency_mismatch,
                    f"idempotency key {idempotency_key!r} was already used for a different "
                    "request; use a new key for a new request",
                )
            return Submitted(job=job, created=False)

        try:
            with self.db.write() as s:
                if (prior := existing(s)) is not None:
                    return prior
                for field, ref in refs:
                    m = s.get(Media, ref)
                    if m is None or m.account_id != account_id or m.expires_at <= now():
                        raise not_found(f"media {ref!r}")
                    check_input(
                        self.registry.get(pipeline),
                        f"params.{field}",
                        width=m.width,
                        height=m.height,
                        content_type=m.content_type,
                    )
                job = Job(
                    id=new_id("job"),
                    account_id=account_id,
                    pipeline=pipeline,
                    params=clean,
                    priority=priority,
                    idempotency_key=idempotency_key,
                    request_hash=request_hash,
                    cost=cost,
                    seed=seed,
                    progress=0.0,
                    step=0,
                    total=0,
                    attempts=0,
                    max_attempts=self.max_attempts,
                    cancel_requested=False,
                    block_explicit=block_explicit,
                    poll_timeout_s=poll_timeout_s,
                    meta=meta,
                    created_at=now(),
                )
                accepted = lifecycle.accept(s, job)
        except IntegrityError:
            # A concurrent twin with the same idempotency key committed first (PostgreSQL).
            with self.db.read() as s:
                if (prior := existing(s)) is not None:
                    return prior
            raise
        self.faults.reached("accepted")
        self.wake()
        if accepted.event is not None and self.bus.has_subscribers(account_id):
            self.bus.publish(replace(accepted.event, queue_position=self.position(job)))
        self.notify_positions()
        return Submitted(job=job, created=True)

    def get(self, *, account_id: str, job_id: str) -> Job:
        with self.db.read() as s:
            job = s.get(Job, job_id)
        if job is None or job.account_id != account_id:
            raise not_found(f"job {job_id!r}")
        return job

    def position(self, job: Job) -> int | None:
        if job.status != JobStatus.QUEUED:
            return None
        with self.db.read() as s:
            return queue_position(s, job.id)

    def positions(self) -> dict[str, int]:
        """Queue position (1 = next) of every queued job."""
        with self.db.read() as s:
            return {job_id: i for i, (job_id, _) in enumerate(queue_order(s), start=1)}

    def outputs(self, job_id: str) -> list[Media]:
        with self.db.read() as s:
            q = select(Media).where(Media.job_id == job_id, Media.kind == "result")
            return list(s.scalars(q.order_by(Media.created_at, Media.id)))

    def search(
        self,
        *,
        account_id: str,
        statuses: Collection[str],
        meta: Mapping[MetaPath, Collection[str] | None] | None = None,
        meta_unset: Collection[MetaPath] = (),
        created_after: float | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[Job], int]:
        """The account's jobs in these statuses, newest first (a page of them), and the total.

        `meta`: a path into the job's metadata -> the string values allowed there (None: any
        value, but set). `meta_unset`: paths that must not be set."""
        q = select(Job).where(Job.account_id == account_id, Job.status.in_(list(statuses)))
        for path, values in (meta or {}).items():
            value = Job.meta[path].as_string()
            q = q.where(value.is_not(None) if values is None else value.in_(list(values)))
        for path in meta_unset:
            q = q.where(Job.meta[path].as_string().is_(None))
        if created_after is not None:
            q = q.where(Job.created_at > created_after)
        with self.db.read() as s:
            total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
            q = q.order_by(Job.created_at.desc(), Job.id.desc()).offset(offset)
            rows = list(s.scalars(q if limit is None else q.limit(limit)))
        return rows, int(total)

    def update_meta(self, *, account_id: str, job_id: str, changes: dict[str, Any]) -> Job:
        """Merge `changes` into the job's metadata, key by key (None removes a key)."""
        with self.db.write() as s:
            job = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
            if job is None or job.account_id != account_id:
                raise not_found(f"job {job_id!r}")
            merged = {**(job.meta or {}), **changes}
            merged = {k: v for k, v in merged.items() if v is not None}
            meta_json(merged)
            job.meta = merged or None
        return job

    def list(
        self, *, account_id: str, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[Job], str | None]:
        q = select(Job).where(Job.account_id == account_id)
        if status:
            q = q.where(Job.status == status)
        if cursor:
            created, jid = _decode_cursor(cursor)
            q = q.where(
                or_(Job.created_at < created, and_(Job.created_at == created, Job.id < jid))
            )
        q = q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
        with self.db.read() as s:
            rows = list(s.scalars(q))
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1]) if more and rows else None
        return rows, next_cursor

    def cancel(self, *, account_id: str, job_id: str) -> Job:
        """Queued: canceled now, hold voided. Running: flagged, stops at its next step."""
        with self.db.write() as s:
            job = s.get(Job, job_id)
            if job is None or job.account_id != account_id:
                raise not_found(f"job {job_id!r}")
            outcome = lifecycle.cancel(s, job)
        self._announce(outcome)
        return job

    def _announce(self, outcome: lifecycle.Outcome) -> None:
        """After a recorded cancel: stop a running job's worker at its next step, or tell
        subscribers that a queued one has ended."""
        if not outcome.applied:
            return
        if outcome.status == JobStatus.RUNNING:
            self.on_cancel(outcome.job_id)
        if outcome.event is not None:
            self.bus.publish(outcome.event)
            self.notify_positions()

    def touch_poll(self, *, account_id: str, job_id: str) -> Job:
        """A client's status poll of its job: keeps a poll-timed job alive.

        A job submitted with `poll_timeout_s` must be polled at least that often; one polled
        too late is abandoned here and now (the housekeeping sweep does the same for jobs
        nobody polls), so the rule holds to the poll, not to the sweep's tick.
        """
        outcome = None
        with self.db.write() as s:
            job = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
            if job is None or job.account_id != account_id:
                raise not_found(f"job {job_id!r}")
            active = (JobStatus.QUEUED, JobStatus.RUNNING)
            if job.poll_timeout_s is not None and job.status in active:
                t = now()
                if lifecycle.poll_overdue(job, t):
                    outcome = lifecycle.abandon(s, job, t)
                else:
                    job.last_polled_at = t
        if outcome is not None:
            self._announce(outcome)
        return job


def _encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at, job.id]).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, jid = json.loads(raw)
        return float(created), str(jid)
    except (ValueError, TypeError):
        raise PixelForgeError(
            ErrorCode.invalid_parameter, "cursor: not a cursor returned by this API"
        ) from None
