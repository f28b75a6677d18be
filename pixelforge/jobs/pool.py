"""In-process workers: threads that claim jobs from the table, plus the housekeeping loop."""

from __future__ import annotations

import logging
import threading
import time

from pixelforge.jobs.lifecycle import Outcome
from pixelforge.jobs.queue import abandon_unpolled, claim_next, extend_leases, recover_expired
from pixelforge.jobs.runner import Runner
from pixelforge.jobs.status import JobStatus

log = logging.getLogger("pixelforge.worker")


class WorkerPool:
    """N worker threads pulling from the jobs table, and one housekeeping thread."""

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
                    self._announce(recover_expired(self.runner.db), "worker lost")
                self._announce(abandon_unpolled(self.runner.db), "abandoned (not polled in time)")
                if t - last_sweep >= self.sweep_interval_s:
                    last_sweep = t
                    self.runner.media.sweep()
                    self.runner.media.sweep_orphans()
            except Exception:
                log.exception("housekeeping failed; will retry")

    def _announce(self, outcomes: list[Outcome], why: str) -> None:
        """Publish what a sweep did; a running job asked to stop is stopped at once if it
        runs in this process (elsewhere, at its next progress write)."""
        for o in outcomes:
            log.warning("job %s: %s -> %s", o.job_id, why, o.status.value)
            if o.status == JobStatus.RUNNING:
                self.runner.request_cancel(o.job_id)
            if o.event is not None:
                self.runner.bus.publish(o.event)
            if o.requeued:
                self.wake()
        if outcomes:
            self.runner.positions()
