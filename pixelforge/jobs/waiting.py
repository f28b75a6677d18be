"""Blocking mode: wait (asynchronously) until a job ends, woken by its events."""

from __future__ import annotations

import time
from functools import partial

import anyio.to_thread

from pixelforge.jobs.events import EventBus
from pixelforge.jobs.service import JobService
from pixelforge.jobs.status import JobStatus
from pixelforge.store.tables import Job


async def wait_for_end(jobs: JobService, bus: EventBus, job: Job, wait_s: float) -> Job:
    """The job once it has ended, or as it is after `wait_s` seconds; events wake us, the
    row decides."""
    if wait_s <= 0:
        return job
    sub = bus.subscribe(account_id=job.account_id, job_id=job.id)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            read = partial(jobs.get, account_id=job.account_id, job_id=job.id)
            job = await anyio.to_thread.run_sync(read)
            left = deadline - time.monotonic()
            if JobStatus(job.status).terminal or left <= 0:
                return job
            # Sleep through progress events (re-reading the row for each would compete with
            # the worker); wake for the final one, or re-read every second in case a worker
            # in another process finished it.
            wake_at = time.monotonic() + min(left, 1.0)
            while (remaining := wake_at - time.monotonic()) > 0:
                ev = await sub.get(remaining)
                if ev is None or ev.terminal:
                    break
    finally:
        sub.close()
