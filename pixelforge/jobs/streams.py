"""Follow one job's events from an HTTP stream (NDJSON, SSE): subscribe before submitting,
and cancel the job when the reader leaves before it ends."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio.to_thread

from pixelforge.errors import PixelForgeError
from pixelforge.jobs.events import Event, EventBus, Subscription
from pixelforge.jobs.service import JobService
from pixelforge.jobs.status import EVENT_FOR_STATUS, JobStatus
from pixelforge.store.tables import Job

log = logging.getLogger(__name__)

# Without an event for this long, the row is read: the job may have ended where no event
# reaches us (an idempotent retry of a finished job, a bus that dropped a message).
RECHECK_S = 2.0


class JobStream:
    """The events of one job, read from a subscription opened before it was submitted."""

    def __init__(self, jobs: JobService, sub: Subscription, account_id: str) -> None:
        self._jobs = jobs
        self._sub = sub
        self._account_id = account_id
        self.job_id: str | None = None
        self.ended = False

    async def events(self, job_id: str) -> AsyncIterator[Event]:
        """The job's events until its final one (which is yielded too)."""
        self.job_id = job_id
        while not self.ended:
            ev = await self._sub.get(RECHECK_S)
            if ev is None:
                job = await self._read()
                if JobStatus(job.status).terminal:
                    self.ended = True
                    yield _final_event(job)
                continue
            if ev.job_id != job_id:
                continue
            if ev.terminal:
                self.ended = True
            yield ev

    async def _read(self) -> Job:
        assert self.job_id is not None
        read = partial(self._jobs.get, account_id=self._account_id, job_id=self.job_id)
        return await anyio.to_thread.run_sync(read)

    def abandon(self) -> None:
        """The reader left before the end: cancel the job (not charged)."""
        if self.job_id is None or self.ended:
            return
        try:
            # Synchronous on purpose: this runs while the reader's task is being cancelled,
            # where a further await may never resume. One short write.
            self._jobs.cancel(account_id=self._account_id, job_id=self.job_id)
        except PixelForgeError as e:  # already gone: nothing to cancel
            log.info("job %s: not canceled after the reader left: %s", self.job_id, e)


@asynccontextmanager
async def follow_job(jobs: JobService, bus: EventBus, account_id: str) -> AsyncIterator[JobStream]:
    """A stream for a job the block is about to submit; leaving the block before the job's
    final event cancels the job."""
    sub = bus.subscribe(account_id=account_id)
    stream = JobStream(jobs, sub, account_id)
    try:
        yield stream
    finally:
        sub.close()
        stream.abandon()


def _final_event(job: Job) -> Event:
    """The final event of a job that ended unseen, rebuilt from its row."""
    return Event(
        job_id=job.id,
        account_id=job.account_id,
        type=EVENT_FOR_STATUS[JobStatus(job.status)],
        progress=job.progress,
        error_code=job.error_code,
        message=job.error_message,
    )
