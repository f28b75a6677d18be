"""The embedded queue: claiming, leases and recovery, all over the jobs table (the truth)."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.orm import Session

from pixelforge.accounts import ledger
from pixelforge.clock import now
from pixelforge.errors import ErrorCode
from pixelforge.jobs.events import Event, EventBus
from pixelforge.store.db import Database
from pixelforge.store.tables import Account, Job

log = logging.getLogger("pixelforge.queue")

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "canceled",
)


@dataclass(frozen=True)
class Claim:
    job_id: str
    account_id: str
    token: str
    attempt: int


def _fair_order() -> Select[str, str]:
    """Queued jobs in pickup order: priority first, then round-robin across accounts.

    Each account's queued jobs are numbered 1, 2, 3... (per priority); ordering by that
    number interleaves accounts, so one account's thousand queued jobs cannot starve another's
    one. Among equal numbers, the account served longest ago (or never) goes first: otherwise
    the older job of a busy account would win every tie.
    """
    rn = (
        func.row_number()
        .over(partition_by=(Job.account_id, Job.priority), order_by=(Job.created_at, Job.id))
        .label("rn")
    )
    ranked = (
        select(Job.id, Job.account_id, Job.priority, Job.created_at, rn)
        .where(Job.status == QUEUED)
        .subquery()
    )
    return (
        select(ranked.c.id, ranked.c.account_id)
        .join(Account, Account.id == ranked.c.account_id)
        .order_by(
            ranked.c.priority.desc(),
            ranked.c.rn,
            func.coalesce(Account.last_served_at, 0.0),
            ranked.c.created_at,
            ranked.c.id,
        )
    )


def queue_order(session: Session, *, limit: int = 10_000) -> list[tuple[str, str]]:
    """(job id, account id) of queued jobs in the order workers will take them."""
    return [(r[0], r[1]) for r in session.execute(_fair_order().limit(limit))]


def queue_position(session: Session, job_id: str) -> int | None:
    for i, (jid, _) in enumerate(queue_order(session), start=1):
        if jid == job_id:
            return i
    return None


class PositionNotifier:
    """Tells listening accounts where their queued jobs stand, after submits and claims.

    At most one update per `interval_s` (a burst of submits would otherwise send one message
    per queued job per submit), for the first `limit` places; an update skipped inside the
    interval is sent when it ends, so the last state is never lost.
    """

    def __init__(self, db: Database, bus: EventBus, *, interval_s: float = 0.25, limit: int = 100):
        self.db = db
        self.bus = bus
        self.interval_s = interval_s
        self.limit = limit
        self._lock = threading.Lock()
        self._last = 0.0
        self._pending = False

    def __call__(self) -> None:
        with self._lock:
            wait = self._last + self.interval_s - time.monotonic()
            if wait > 0:
                if not self._pending:
                    self._pending = True
                    timer = threading.Timer(wait, self._trailing)
                    timer.daemon = True
                    timer.start()
                return
            self._last = time.monotonic()
        self._publish()

    def _trailing(self) -> None:
        with self._lock:
            self._pending = False
            self._last = time.monotonic()
        try:
            self._publish()
        except Exception:  # a timer thread has no caller to tell; the next update will do
            log.exception("publishing queue positions failed")

    def _publish(self) -> None:
        listening = self.bus.subscribed_accounts()
        if not listening:
            return
        with self.db.read() as s:
            order = queue_order(s, limit=self.limit)
        for pos, (job_id, account_id) in enumerate(order, start=1):
            if account_id in listening:
                self.bus.publish(
                    Event(job_id=job_id, account_id=account_id, type="queued", queue_position=pos)
                )


def claim_next(db: Database, *, lease_s: float, candidates: int = 8) -> Claim | None:
    """Take the next queued job with a fresh attempt token and lease, or None."""
    with db.write() as s:
        rows = s.execute(_fair_order().limit(candidates)).all()
        # On PostgreSQL another process may take a candidate between our read and our
        # update; the conditional UPDATE notices and we move on to the next one.
        for job_id, account_id in rows:
            if (claim := _take(s, job_id, account_id, lease_s)) is not None:
                return claim
    return None


def _take(s: Session, job_id: str, account_id: str, lease_s: float) -> Claim | None:
    """Move one queued job to running under a fresh attempt token and lease."""
    token, t = secrets.token_hex(16), now()
    res = s.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == QUEUED)
        .values(
            status=RUNNING,
            attempts=Job.attempts + 1,
            attempt_token=token,
            lease_expires_at=t + lease_s,
            started_at=func.coalesce(Job.started_at, t),
        )
        .returning(Job.attempts)
    ).first()
    if res is None:
        return None
    s.execute(update(Account).where(Account.id == account_id).values(last_served_at=t))
    return Claim(job_id=job_id, account_id=account_id, token=token, attempt=res[0])


def claim_batch_mates(
    db: Database,
    *,
    pipeline: str,
    matches: Callable[[dict[str, Any]], bool],
    limit: int,
    lease_s: float,
    scan: int = 64,
) -> list[Claim]:
    """Claim up to `limit` queued jobs of `pipeline` whose params `matches` (same shape)."""
    claims: list[Claim] = []
    with db.write() as s:
        rows = s.execute(
            select(Job.id, Job.account_id, Job.params)
            .where(Job.status == QUEUED, Job.pipeline == pipeline)
            .order_by(Job.priority.desc(), Job.created_at, Job.id)
            .limit(scan)
        ).all()
        for job_id, account_id, params in rows:
            if len(claims) >= limit:
                break
            if not matches(params):
                continue
            if (claim := _take(s, job_id, account_id, lease_s)) is not None:
                claims.append(claim)
    return claims


def extend_leases(db: Database, *, tokens: dict[str, str], lease_s: float) -> None:
    """Heartbeat: push the lease of every job this process is running."""
    if not tokens:
        return
    with db.write() as s:
        for job_id, token in tokens.items():
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.attempt_token == token, Job.status == RUNNING)
                .values(lease_expires_at=now() + lease_s)
            )


@dataclass(frozen=True)
class Recovered:
    job_id: str
    account_id: str
    requeued: bool
    status: str = QUEUED


def recover_expired(db: Database) -> list[Recovered]:
    """Jobs whose worker stopped heartbeating: re-queue, or fail with worker_lost."""
    out: list[Recovered] = []
    with db.write() as s:
        rows = s.scalars(
            select(Job)
            .where(Job.status == RUNNING, Job.lease_expires_at < now())
            .limit(100)
            # Lock the rows: a worker finishing one meanwhile must not be overwritten.
            .with_for_update(skip_locked=True)
        ).all()
        for job in rows:
            if job.cancel_requested:
                job.status = CANCELED
                # An abandoned job keeps the code and message its abandonment set.
                job.error_code = job.error_code or ErrorCode.canceled.value
                job.error_message = (
                    job.error_message or "canceled by the client (its worker stopped meanwhile)"
                )
                job.finished_at = now()
                job.attempt_token = None
                ledger.void(s, job_id=job.id)
                out.append(Recovered(job.id, job.account_id, requeued=False, status=CANCELED))
            elif job.attempts >= job.max_attempts:
                job.status = FAILED
                job.error_code = ErrorCode.worker_lost.value
                job.error_message = (
                    f"the worker running this job stopped {job.attempts} times "
                    "(crash or restart); the job was given up and not charged"
                )
                job.finished_at = now()
                job.attempt_token = None
                ledger.void(s, job_id=job.id)
                out.append(Recovered(job.id, job.account_id, requeued=False, status=FAILED))
            else:
                job.status = QUEUED
                job.attempt_token = None
                job.lease_expires_at = None
                job.progress, job.step, job.total = 0.0, 0, 0
                out.append(Recovered(job.id, job.account_id, requeued=True))
    return out


# -- abandonment: jobs whose client must keep polling (Perfect's "lost if not polled") --------


def poll_overdue(job: Job, t: float) -> bool:
    """True when a poll-timed job, not yet ended, was not polled within its timeout."""
    if job.poll_timeout_s is None or job.status not in (QUEUED, RUNNING):
        return False
    return t - (job.last_polled_at or job.created_at) > job.poll_timeout_s


def abandon(s: Session, job: Job, t: float) -> str:
    """Abandon an overdue job in the caller's transaction; returns its status afterwards.

    Queued: canceled now, hold voided. Running: cancel requested, so it stops at its next
    step and is recorded canceled (never charged) with the code set here.
    """
    message = (
        f"abandoned: the client did not poll for {job.poll_timeout_s:g} s; "
        "the task was stopped and nothing was charged"
    )
    if job.status == QUEUED:
        job.status = CANCELED
        job.finished_at = t
        job.attempt_token = None
        job.error_code = ErrorCode.task_abandoned.value
        job.error_message = message
        ledger.void(s, job_id=job.id)
    elif job.status == RUNNING and not job.cancel_requested:
        job.cancel_requested = True
        job.error_code = ErrorCode.task_abandoned.value
        job.error_message = message
    return job.status


@dataclass(frozen=True)
class Abandoned:
    job_id: str
    account_id: str
    status: str  # canceled (was queued) or running (cancel requested)
    message: str


def abandon_unpolled(db: Database, *, limit: int = 100) -> list[Abandoned]:
    """Abandon every poll-timed job not polled in time (the housekeeping sweep)."""
    t = now()
    overdue = (
        Job.poll_timeout_s.is_not(None),
        or_(Job.status == QUEUED, and_(Job.status == RUNNING, Job.cancel_requested.is_(False))),
        func.coalesce(Job.last_polled_at, Job.created_at) + Job.poll_timeout_s < t,
    )
    # Runs every second: a read first, so an idle sweep never takes the write lock.
    with db.read() as s:
        if s.scalar(select(Job.id).where(*overdue).limit(1)) is None:
            return []
    out = []
    with db.write() as s:
        rows = s.scalars(
            select(Job)
            .where(*overdue)
            .limit(limit)
            # A worker claiming or finishing one meanwhile must not be overwritten.
            .with_for_update(skip_locked=True)
        ).all()
        for job in rows:
            status = abandon(s, job, t)
            out.append(Abandoned(job.id, job.account_id, status, job.error_message or ""))
    return out
