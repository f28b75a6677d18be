"""The one place a pipeline executes: run a claimed job with a RunContext, record its end."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from pixelforge.catalog.types import CatalogView
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs import lifecycle
from pixelforge.jobs.context import ExplicitCheck, Interrupted, JobRunContext
from pixelforge.jobs.events import EventBus
from pixelforge.jobs.faults import FaultPoints
from pixelforge.jobs.lifecycle import Claim, Outcome
from pixelforge.jobs.positions import PositionNotifier
from pixelforge.jobs.queue import claim_batch_mates
from pixelforge.jobs.status import JobStatus
from pixelforge.media.service import MediaService
from pixelforge.models.base import ModelProvider
from pixelforge.pipelines.contract import BatchingPipeline, JobCanceled, Pipeline
from pixelforge.pipelines.registry import PipelineRegistry
from pixelforge.store.db import Database
from pixelforge.store.tables import Job

log = logging.getLogger("pixelforge.worker")

LOST = "lost"  # run_job's answer when the attempt no longer owned its job at the end

Member = tuple[Claim, JobRunContext, BaseModel]


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
        faults: FaultPoints | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.media = media
        self.bus = bus
        self.models = models
        self.catalog = catalog
        self.nsfw = nsfw
        self.threads = threads or os.cpu_count() or 1
        self.max_batch = max_batch
        self.lease_s = lease_s
        self.faults = faults or FaultPoints()
        self.positions = PositionNotifier(db, bus)
        self.stopping = threading.Event()
        # Job ids canceled through this process's API while running here (set.add and `in`
        # are atomic under the GIL, so no lock is needed).
        self.cancel_requests: set[str] = set()
        self._running: dict[str, str] = {}  # job id -> attempt token, for the heartbeat
        self._lock = threading.Lock()

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
        """Execute one claimed job (and any same-shape batch mates) to a final state.

        Returns the job's status afterwards, or "lost" when the attempt no longer owned it."""
        self._track([claim], True)
        try:
            return self._run_job(claim)
        finally:
            self._track([claim], False)

    def _context(self, claim: Claim) -> tuple[JobRunContext, Job] | None:
        """The job's RunContext (and row), once its start is announced; None if the attempt
        no longer owns the job."""
        with self.db.read() as s:
            job = s.get(Job, claim.job_id)
        if job is None or job.attempt_token != claim.token:
            return None
        self.bus.publish(claim.event)
        return JobRunContext(env=self, job=job, claim=claim, threads=self.threads), job

    def _run_job(self, claim: Claim) -> str:
        self.faults.reached("claimed")
        started = self._context(claim)
        if started is None:
            return LOST
        ctx, job = started
        try:
            pipeline = self.registry.get(job.pipeline)
            params = pipeline.Params.model_validate(job.params)
            mates = self._claim_mates(pipeline, params)
            if mates:
                return self._run_batch(pipeline, [(claim, ctx, params), *mates])
            extra = pipeline.run(params, ctx)
        except Exception as e:
            return self._record(claim, ctx, e)
        return self._record(claim, ctx, extra)

    def _claim_mates(self, pipeline: Pipeline, params: BaseModel) -> list[Member]:
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
            started = self._context(c)
            if started is None:
                continue
            ctx, job = started
            mates.append((c, ctx, pipeline.Params.model_validate(job.params)))
        return mates

    def _run_batch(self, pipeline: Pipeline, members: list[Member]) -> str:
        """One call for all members; each is then recorded (and charged) on its own."""
        assert isinstance(pipeline, BatchingPipeline)  # mates are only claimed for these
        outcomes: Sequence[object]
        try:
            outcomes = pipeline.run_batch([p for _, _, p in members], [c for _, c, _ in members])
        except Exception as e:
            outcomes = [e] * len(members)
        finally:
            self._track([c for c, _, _ in members[1:]], False)
        states = [
            self._record(claim, ctx, out)
            for (claim, ctx, _), out in zip(members, outcomes, strict=True)
        ]
        return states[0]

    def _record(self, claim: Claim, ctx: JobRunContext, outcome: object) -> str:
        """The attempt's end, through the lifecycle: one transaction, then its event."""
        if not isinstance(outcome, Exception):  # a requested cancel still wins (succeed)
            result = outcome if isinstance(outcome, dict) else None
            return self._end(
                ctx, lambda s: lifecycle.succeed(s, claim, result=result, outputs=ctx.outputs)
            )
        if isinstance(outcome, OperationalError):
            # The database went away under the pipeline (a progress write): not the job's
            # fault, so do not fail it. Left running, its lease runs out and the sweep queues
            # it again, counted against max_attempts like any lost worker.
            log.warning(
                "job %s: database unavailable mid-run; left to lease recovery: %s",
                claim.job_id,
                outcome,
            )
            ctx.discard_outputs()
            return LOST
        if isinstance(outcome, Interrupted):
            return self._end(ctx, lambda s: lifecycle.give_back(s, claim))
        if isinstance(outcome, JobCanceled):
            partial = outcome.partial
            return self._end(ctx, lambda s: lifecycle.stop(s, claim, result=partial))
        if isinstance(outcome, PixelForgeError):
            code, message = outcome.code, outcome.message
        else:  # a pipeline bug must fail the job, not the worker
            log.error("job %s crashed", claim.job_id, exc_info=outcome)
            code, message = ErrorCode.error_inference, f"{type(outcome).__name__}: {outcome}"
        return self._end(ctx, lambda s: lifecycle.fail(s, claim, code=code, message=message))

    def _end(self, ctx: JobRunContext, transition: Callable[[Session], Outcome]) -> str:
        with self.db.write() as s:
            outcome = transition(s)
            succeeded = outcome.applied and outcome.status == JobStatus.SUCCEEDED
            if succeeded:
                self.faults.reached("capture")
        if succeeded:
            self.faults.reached("committed")
        else:
            ctx.discard_outputs()
        if not outcome.applied:
            log.warning("job %s: lease lost before completion; result discarded", outcome.job_id)
            return LOST
        if outcome.event is not None:
            self.bus.publish(outcome.event)
        return outcome.status.value
