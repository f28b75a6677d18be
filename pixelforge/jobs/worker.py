"""The one place a pipeline executes: claim, run with a RunContext, record the outcome."""

from __future__ import annotations

import base64
import io
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from PIL import Image
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select, update

from pixelforge.accounts import ledger
from pixelforge.catalog.types import CatalogView
from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.events import Event, EventBus
from pixelforge.jobs.queue import (
    CANCELED,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    Claim,
    PositionNotifier,
    abandon_unpolled,
    claim_batch_mates,
    claim_next,
    extend_leases,
    recover_expired,
)
from pixelforge.media.service import MediaService
from pixelforge.models.base import ModelProvider
from pixelforge.pipelines.contract import BatchingPipeline, JobCanceled, Pipeline
from pixelforge.pipelines.registry import PipelineRegistry
from pixelforge.safety.images import encode_image, open_image
from pixelforge.store.db import Database
from pixelforge.store.tables import Job, Media

log = logging.getLogger("pixelforge.worker")


class ExplicitCheck(Protocol):
    """The NSFW gate (safety.nsfw.NsfwDetector): is this image explicit, and why."""

    def is_explicit(self, img: Image.Image) -> tuple[bool, list[str]]: ...


class _Interrupted(Exception):
    pass


class JobRunContext:
    """The RunContext a pipeline gets: its inputs, its outputs, progress; nothing else."""

    DB_WRITE_INTERVAL_S = 0.5

    def __init__(self, *, runner: Runner, job: Job, token: str, threads: int) -> None:
        self._runner = runner
        self._job_id = job.id
        self._account_id = job.account_id
        self._token = token
        self.seed = job.seed
        self._block_explicit = job.block_explicit
        self.device = runner.models.device
        self.threads = threads
        self.models = runner.models
        self.catalog = runner.catalog
        self.outputs: list[Media] = []
        # The row already says "running"; the first progress write can wait its interval.
        self._last_db = time.monotonic()
        self._canceled = False

    # -- progress and cancel -------------------------------------------------------------
    def progress(self, step: int, total: int, preview: Image.Image | None = None) -> None:
        total = max(total, 1)
        step = min(max(step, 0), total)
        frac = step / total
        bus = self._runner.bus
        bus.publish(
            Event(
                job_id=self._job_id,
                account_id=self._account_id,
                type="progress",
                progress=frac,
                step=step,
                total=total,
            )
        )
        if preview is not None:
            buf = io.BytesIO()
            preview.convert("RGB").save(buf, format="JPEG", quality=70)
            uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
            bus.publish(
                Event(
                    job_id=self._job_id,
                    account_id=self._account_id,
                    type="preview",
                    progress=frac,
                    step=step,
                    total=total,
                    preview=uri,
                )
            )
        t = time.monotonic()
        if step == total or t - self._last_db >= self.DB_WRITE_INTERVAL_S:
            self._last_db = t
            with self._runner.db.write() as s:
                row = s.execute(
                    update(Job)
                    .where(Job.id == self._job_id, Job.attempt_token == self._token)
                    .values(progress=frac, step=step, total=total)
                    .returning(Job.cancel_requested)
                ).first()
            if row is None or row[0]:
                self._canceled = True
        self._raise_if_stopped()

    def cancelled(self) -> bool:
        if not self._canceled and self._job_id in self._runner.cancel_requests:
            self._canceled = True
        if not self._canceled:
            with self._runner.db.read() as s:
                row = s.execute(
                    select(Job.cancel_requested, Job.attempt_token).where(Job.id == self._job_id)
                ).first()
            self._canceled = row is None or bool(row[0]) or row[1] != self._token
        return self._canceled

    def _raise_if_stopped(self) -> None:
        # A cancel from this process is seen at once; one from another process within the
        # DB read interval above.
        if self._canceled or self._job_id in self._runner.cancel_requests:
            raise JobCanceled()
        if self._runner.stopping.is_set():
            raise _Interrupted()

    # -- media -----------------------------------------------------------------------------
    def load_image(self, ref: str) -> Image.Image:
        media = self._runner.media
        row = media.get(account_id=self._account_id, media_id=ref)
        img = open_image(media.read_bytes(row))
        self._check_explicit(img, "an input image")
        return img

    def save_image(self, img: Image.Image, *, format: str = "png", quality: int = 95) -> str:
        self._check_explicit(img, "the result")
        data, content_type = encode_image(img, fmt=format, quality=quality)
        return self._save(data, content_type, img.width, img.height)

    def _check_explicit(self, img: Image.Image, what: str) -> None:
        """The NSFW gate, on inputs and outputs, when the job asked for block_explicit."""
        if not self._block_explicit:
            return
        explicit, labels = self._runner.nsfw.is_explicit(img)
        if explicit:
            raise PixelForgeError(
                ErrorCode.error_nsfw_content_detected,
                f"{what} was blocked: explicit content detected ({', '.join(labels)}); "
                "nothing was charged",
            )

    def save_video(self, path: Path, *, content_type: str = "video/mp4") -> str:
        return self._save(path.read_bytes(), content_type, None, None)

    def _save(self, data: bytes, content_type: str, w: int | None, h: int | None) -> str:
        media = self._runner.media
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(
            content_type, content_type.rsplit("/", 1)[-1]
        )
        key = media.store.put(data, ext=ext)
        row = media.new_row(
            account_id=self._account_id,
            storage_key=key,
            content_type=content_type,
            data=data,
            width=w,
            height=h,
            kind="result",
            job_id=self._job_id,
        )
        # The row is written with the job's success, in the same transaction as the charge.
        self.outputs.append(row)
        return row.id


class Runner:
    """Runs claimed jobs. Shared by the in-process pool and `pixelforge worker`."""

    def __init__(
        self,
        *,
        db: Database,
        registry: PipelineRegistry,
        media: MediaService,
        bus: EventBus,
        models: ModelProvider,
        catalog: CatalogView,
        nsfw: ExplicitCheck,
        threads: int = 0,
        max_batch: int = 1,
        lease_s: float = 30.0,
    ) -> None:
        self.db = db
        self.max_batch = max_batch
        self.positions = PositionNotifier(db, bus)
        self.lease_s = lease_s
        self._running: dict[str, str] = {}  # job id -> attempt token, for the heartbeat
        self._lock = threading.Lock()
        self.registry = registry
        self.media = media
        self.bus = bus
        self.models = models
        self.catalog = catalog
        self.nsfw = nsfw
        self.threads = threads or os.cpu_count() or 1
        self.stopping = threading.Event()
        # Job ids canceled through this process's API while running here (set.add and `in`
        # are atomic under the GIL, so no lock is needed).
        self.cancel_requests: set[str] = set()

    def request_cancel(self, job_id: str) -> None:
        self.cancel_requests.add(job_id)

    def running_tokens(self) -> dict[str, str]:
        with self._lock:
            return dict(self._running)

    def _track(self, claims: list[Claim], running: bool) -> None:
        with self._lock:
            for c in claims:
                if running:
                    self._running[c.job_id] = c.token
                else:
                    self._running.pop(c.job_id, None)
                    self.cancel_requests.discard(c.job_id)

    def run_job(self, claim: Claim) -> str:
        """Execute one claimed job (and any same-shape batch mates) to a final state."""
        self._track([claim], True)
        try:
            return self._run_job(claim)
        finally:
            self._track([claim], False)

    def _run_job(self, claim: Claim) -> str:
        with self.db.read() as s:
            job = s.get(Job, claim.job_id)
        if job is None or job.attempt_token != claim.token:
            return "lost"
        ctx = JobRunContext(runner=self, job=job, token=claim.token, threads=self.threads)
        self.bus.publish(Event(job_id=job.id, account_id=job.account_id, type="started"))
        try:
            pipeline = self.registry.get(job.pipeline)
            params = pipeline.Params.model_validate(job.params)
            mates = self._claim_mates(pipeline, params)
            if mates:
                return self._run_batch(pipeline, [(claim, ctx, params), *mates])
            extra = pipeline.run(params, ctx)
        except JobCanceled:
            return self._finish(ctx, claim, CANCELED, ErrorCode.canceled, "canceled by the client")
        except _Interrupted:
            self._discard(ctx)
            self._requeue(claim)
            return QUEUED
        except PixelForgeError as e:
            return self._finish(ctx, claim, FAILED, e.code, e.message)
        except Exception as e:  # a pipeline bug must fail the job, not the worker
            log.exception("job %s (%s) crashed", job.id, job.pipeline)
            return self._finish(
                ctx, claim, FAILED, ErrorCode.error_inference, f"{type(e).__name__}: {e}"
            )
        return self._finish(ctx, claim, SUCCEEDED, None, None, extra=extra)

    def _claim_mates(
        self, pipeline: Pipeline, params: BaseModel
    ) -> list[tuple[Claim, JobRunContext, BaseModel]]:
        """Queued jobs of the same shape to run in the same call (see BatchingPipeline)."""
        if self.max_batch <= 1 or not isinstance(pipeline, BatchingPipeline):
            return []
        key_of = pipeline.batch_key
        if (key := key_of(params)) is None:
            return []

        def same_shape(raw: dict[str, Any]) -> bool:
            try:
                return bool(key_of(pipeline.Params.model_validate(raw)) == key)
            except ValidationError:
                return False

        claims = claim_batch_mates(
            self.db,
            pipeline=pipeline.name,
            matches=same_shape,
            limit=self.max_batch - 1,
            lease_s=self.lease_s,
        )
        self._track(claims, True)
        mates = []
        for c in claims:
            with self.db.read() as s:
                job = s.get(Job, c.job_id)
            assert job is not None
            self.bus.publish(Event(job_id=job.id, account_id=job.account_id, type="started"))
            ctx = JobRunContext(runner=self, job=job, token=c.token, threads=self.threads)
            mates.append((c, ctx, pipeline.Params.model_validate(job.params)))
        return mates

    def _run_batch(
        self, pipeline: Pipeline, members: list[tuple[Claim, JobRunContext, BaseModel]]
    ) -> str:
        """One call for all members; each is then recorded (and charged) on its own."""
        assert isinstance(pipeline, BatchingPipeline)  # mates are only claimed for these
        try:
            outcomes = pipeline.run_batch([p for _, _, p in members], [c for _, c, _ in members])
        except _Interrupted:
            for claim, ctx, _ in members:
                self._discard(ctx)
                self._requeue(claim)
            return QUEUED
        except (JobCanceled, PixelForgeError, Exception) as e:
            if not isinstance(e, JobCanceled | PixelForgeError):
                log.exception("batch of %s crashed", pipeline.name)
            outcomes = [e] * len(members)
        finally:
            self._track([c for c, _, _ in members[1:]], False)
        states = [
            self._record(claim, ctx, out)
            for (claim, ctx, _), out in zip(members, outcomes, strict=True)
        ]
        return states[0]

    def _record(self, claim: Claim, ctx: JobRunContext, outcome: object) -> str:
        if ctx.cancelled() or isinstance(outcome, JobCanceled):
            return self._finish(ctx, claim, CANCELED, ErrorCode.canceled, "canceled by the client")
        if isinstance(outcome, PixelForgeError):
            return self._finish(ctx, claim, FAILED, outcome.code, outcome.message)
        if isinstance(outcome, Exception):
            msg = f"{type(outcome).__name__}: {outcome}"
            return self._finish(ctx, claim, FAILED, ErrorCode.error_inference, msg)
        assert isinstance(outcome, dict)
        return self._finish(ctx, claim, SUCCEEDED, None, None, extra=outcome)

    def _finish(
        self,
        ctx: JobRunContext,
        claim: Claim,
        status: str,
        code: ErrorCode | None,
        message: str | None,
        *,
        extra: dict[str, Any] | None = None,
    ) -> str:
        q = update(Job).where(Job.id == claim.job_id, Job.attempt_token == claim.token)
        q = q.where(Job.status == RUNNING)
        if status == SUCCEEDED:
            # A cancel (or abandonment) that came in while the last step ran wins: the
            # result is discarded and nothing is charged.
            q = q.where(Job.cancel_requested.is_(False))
        new_code: Any = code.value if code else None
        if status == CANCELED:
            # An abandoned job keeps the code and message its abandonment set.
            new_code = func.coalesce(Job.error_code, new_code)
            message_value: Any = func.coalesce(Job.error_message, message)
        else:
            message_value = message
        with self.db.write() as s:
            row = s.execute(
                q.values(
                    status=status,
                    progress=1.0 if status == SUCCEEDED else Job.progress,
                    error_code=new_code,
                    error_message=message_value,
                    result=extra if status == SUCCEEDED else None,
                    finished_at=now(),
                    attempt_token=None,
                    lease_expires_at=None,
                ).returning(Job.error_code, Job.error_message)
            ).first()
            owned = row is not None
            if owned and status == SUCCEEDED:
                s.add_all(ctx.outputs)
                ledger.capture(s, job_id=claim.job_id)
            elif owned:
                ledger.void(s, job_id=claim.job_id)
        if not owned and status == SUCCEEDED and ctx.cancelled():
            self._discard(ctx)
            return self._finish(ctx, claim, CANCELED, ErrorCode.canceled, "canceled by the client")
        if not owned or status != SUCCEEDED:
            self._discard(ctx)
        if not owned:
            log.warning("job %s: lease lost before completion; result discarded", claim.job_id)
            return "lost"
        self.bus.publish(
            Event(
                job_id=claim.job_id,
                account_id=claim.account_id,
                type=status,
                progress=1.0 if status == SUCCEEDED else 0.0,
                error_code=row[0] if row is not None else None,
                message=row[1] if row is not None else None,
            )
        )
        return status

    def _discard(self, ctx: JobRunContext) -> None:
        for row in ctx.outputs:
            self.media.store.delete(row.storage_key)
        ctx.outputs.clear()

    def _requeue(self, claim: Claim) -> None:
        # A clean shutdown is not a crash: give the attempt back.
        with self.db.write() as s:
            s.execute(
                update(Job)
                .where(Job.id == claim.job_id, Job.attempt_token == claim.token)
                .values(
                    status=QUEUED,
                    attempt_token=None,
                    lease_expires_at=None,
                    attempts=Job.attempts - 1,
                    progress=0.0,
                    step=0,
                    total=0,
                )
            )


class WorkerPool:
    """In-process workers: N threads pulling from the jobs table, plus housekeeping."""

    def __init__(
        self,
        *,
        runner: Runner,
        workers: int,
        lease_s: float,
        poll_interval_s: float,
        sweep_interval_s: float,
    ) -> None:
        self.runner = runner
        self.workers = workers
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        self.sweep_interval_s = sweep_interval_s
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._work_loop, name=f"pf-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._housekeeping, name="pf-housekeeping", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        self.runner.stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def _work_loop(self) -> None:
        stopping = self.runner.stopping
        while not stopping.is_set():
            try:
                claim = claim_next(self.runner.db, lease_s=self.lease_s)
            except Exception:
                log.exception("claiming a job failed; retrying")
                stopping.wait(self.poll_interval_s)
                continue
            if claim is None:
                self._wake.wait(self.poll_interval_s)
                self._wake.clear()
                continue
            try:
                self.runner.positions()
                self.runner.run_job(claim)
            except Exception:
                log.exception("job %s: recording its outcome failed", claim.job_id)

    def _housekeeping(self) -> None:
        stopping = self.runner.stopping
        last_beat = last_recover = 0.0
        last_sweep = time.monotonic()
        tick = min(1.0, self.lease_s / 4)
        while not stopping.wait(tick):
            t = time.monotonic()
            try:
                if t - last_beat >= self.lease_s / 3:
                    last_beat = t
                    tokens = self.runner.running_tokens()
                    extend_leases(self.runner.db, tokens=tokens, lease_s=self.lease_s)
                if t - last_recover >= 1.0:
                    last_recover = t
                    self._recover()
                self._abandon()
                if t - last_sweep >= self.sweep_interval_s:
                    last_sweep = t
                    self.runner.media.sweep()
            except Exception:
                log.exception("housekeeping failed; will retry")

    def _abandon(self) -> None:
        """Cancel poll-timed jobs their client stopped polling (every tick: ~1 s)."""
        for a in abandon_unpolled(self.runner.db):
            log.info("job %s: abandoned (not polled in time)", a.job_id)
            if a.status == RUNNING:
                self.runner.request_cancel(a.job_id)  # seen at once if it runs here
                continue
            self.runner.bus.publish(
                Event(
                    job_id=a.job_id,
                    account_id=a.account_id,
                    type=CANCELED,
                    error_code=ErrorCode.task_abandoned.value,
                    message=a.message,
                )
            )
            self.runner.positions()

    def _recover(self) -> None:
        for r in recover_expired(self.runner.db):
            if r.requeued:
                log.warning("job %s: worker lost, re-queued", r.job_id)
                self.runner.bus.publish(
                    Event(job_id=r.job_id, account_id=r.account_id, type="queued")
                )
                self.wake()
                continue
            canceled = r.status == CANCELED
            self.runner.bus.publish(
                Event(
                    job_id=r.job_id,
                    account_id=r.account_id,
                    type=r.status,
                    error_code=(ErrorCode.canceled if canceled else ErrorCode.worker_lost).value,
                    message="canceled by the client"
                    if canceled
                    else "the worker running this job was lost too many times",
                )
            )
