"""The job lifecycle: every status change of a job, with its ledger entry and its event.

Each transition runs inside the caller's write transaction (`with db.write() as s:`), changes
the row and the ledger together, and returns an `Outcome` carrying the event to publish once
that transaction has committed. The event is built from the row as written, so a row and its
event never disagree. No other module writes `jobs.status`; docs/architecture.md draws the graph:

    accept    (new)   -> queued     hold
    claim     queued  -> running    new attempt token and lease
    cancel    queued  -> canceled   void            running: cancel requested (no change yet)
    abandon   queued  -> canceled   void            running: cancel requested, code kept
    succeed   running -> succeeded  capture         refused unless the attempt owns the job;
                                                    a requested cancel wins (canceled, void)
    fail      running -> failed     void            a requested cancel wins here too
    stop      running -> canceled   void            the worker saw the cancel request
    give_back running -> queued                     clean shutdown: the attempt is returned
                                                    (a requested cancel wins: canceled)
    lose      running -> queued | failed | canceled   lease ran out: re-run, worker_lost, void

Every other (status, transition) pair is refused: the row is left as it is and nothing is
written to the ledger.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from pixelforge.accounts import ledger
from pixelforge.clock import now
from pixelforge.errors import ErrorCode
from pixelforge.jobs.events import Event
from pixelforge.jobs.status import EVENT_FOR_STATUS, EventType, JobStatus
from pixelforge.store.tables import Account, Job, Media

QUEUED, RUNNING = JobStatus.QUEUED, JobStatus.RUNNING
SUCCEEDED, FAILED, CANCELED = JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED

CANCELED_BY_CLIENT = "canceled by the client"
CANCELED_BEFORE_START = "canceled by the client before it started"


@dataclass(frozen=True)
class Outcome:
    """What a transition did. `applied` is False when the job's state refused it."""

    job_id: str
    account_id: str
    applied: bool
    status: JobStatus  # the row's status afterwards (as found, when refused)
    event: Event | None  # publish after the commit; None when there is nothing to announce
    requeued: bool = False


@dataclass(frozen=True)
class Claim:
    """A running attempt: only the holder of `token` may record the job's outcome."""

    job_id: str
    account_id: str
    token: str
    attempt: int

    @property
    def event(self) -> Event:
        return Event(job_id=self.job_id, account_id=self.account_id, type=EventType.STARTED)


def announce(job: Job) -> Event:
    """The event for the row as it now stands."""
    status = JobStatus(job.status)
    final = status.terminal
    return Event(
        job_id=job.id,
        account_id=job.account_id,
        type=EVENT_FOR_STATUS[status],
        progress=1.0 if status == SUCCEEDED else 0.0,
        error_code=job.error_code if final else None,
        message=job.error_message if final else None,
    )


def snapshot(job: Job, *, queue_position: int | None = None) -> Event:
    """The job's state now as one event: what a subscriber arriving late needs first (a
    running job's is a progress event with its stored step)."""
    status = JobStatus(job.status)
    kind = EventType.PROGRESS if status == RUNNING else EVENT_FOR_STATUS[status]
    return Event(
        job_id=job.id,
        account_id=job.account_id,
        type=kind,
        progress=job.progress,
        step=job.step,
        total=job.total,
        queue_position=queue_position,
        error_code=job.error_code,
        message=job.error_message,
    )


def _applied(job: Job, *, silent: bool = False, requeued: bool = False) -> Outcome:
    """Applied; `silent`: nothing to announce yet (a cancel request on a running job)."""
    return Outcome(
        job_id=job.id,
        account_id=job.account_id,
        applied=True,
        status=JobStatus(job.status),
        event=None if silent else announce(job),
        requeued=requeued,
    )


def _refused(job: Job | None, claim: Claim | None = None) -> Outcome:
    if job is None:  # deleted with its account meanwhile
        assert claim is not None
        return Outcome(claim.job_id, claim.account_id, False, CANCELED, None)
    return Outcome(job.id, job.account_id, False, JobStatus(job.status), None)


def _end(s: Session, job: Job, status: JobStatus, code: str | None, message: str | None) -> None:
    """Record a final status; the hold is captured on success and voided otherwise."""
    job.status = status
    job.error_code = code
    job.error_message = message
    job.finished_at = now()
    job.attempt_token = None
    job.lease_expires_at = None
    if status == SUCCEEDED:
        job.progress = 1.0
        ledger.capture(s, job_id=job.id)
    else:
        ledger.void(s, job_id=job.id)


def _end_canceled(s: Session, job: Job, message: str) -> None:
    # An abandoned job keeps the code and message its abandonment set.
    code = job.error_code or ErrorCode.canceled.value
    _end(s, job, CANCELED, code, job.error_message or message)


def _request_cancel(job: Job, code: str | None = None, message: str | None = None) -> None:
    job.cancel_requested = True
    if code is not None:
        job.error_code, job.error_message = code, message


# -- accept and claim ---------------------------------------------------------------------


def accept(s: Session, job: Job) -> Outcome:
    """(new) -> queued: insert the row and hold its cost (insufficient_credits: nothing kept)."""
    job.status = QUEUED
    s.add(job)
    s.flush()
    ledger.hold(s, account_id=job.account_id, job_id=job.id, amount=job.cost)
    return _applied(job)


def claim(s: Session, *, job_id: str, account_id: str, lease_s: float) -> Claim | None:
    """queued -> running under a fresh attempt token and lease; None if no longer queued."""
    token, t = secrets.token_hex(16), now()
    # A conditional UPDATE: on PostgreSQL another worker may have taken the job meanwhile.
    row = s.execute(
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
    if row is None:
        return None
    s.execute(update(Account).where(Account.id == account_id).values(last_served_at=t))
    return Claim(job_id=job_id, account_id=account_id, token=token, attempt=row[0])


# -- a running attempt: progress and its end ------------------------------------------------


def record_progress(s: Session, claim: Claim, *, step: int, total: int) -> bool:
    """Store progress; False when the attempt should stop (canceled, or no longer its job)."""
    row = s.execute(
        update(Job)
        .where(Job.id == claim.job_id, Job.attempt_token == claim.token)
        .values(progress=step / max(total, 1), step=step, total=total)
        .returning(Job.cancel_requested)
    ).first()
    return row is not None and not row[0]


def _owned(s: Session, claim: Claim) -> Job | None:
    """The job, locked, if `claim` is still its running attempt."""
    job = s.scalar(select(Job).where(Job.id == claim.job_id).with_for_update())
    if job is None or job.status != RUNNING or job.attempt_token != claim.token:
        return None
    return job


def _end_attempt(s: Session, claim: Claim, record: Callable[[Job], Outcome]) -> Outcome:
    """End the running attempt `claim` holds with `record`. Refused unless the attempt still
    owns the job; a cancel (or abandonment) requested meanwhile wins over whatever `record`
    would write: the job is canceled and not charged."""
    job = _owned(s, claim)
    if job is None:
        return _refused(s.get(Job, claim.job_id), claim)
    if job.cancel_requested:
        _end_canceled(s, job, CANCELED_BY_CLIENT)
        return _applied(job)
    return record(job)


def succeed(
    s: Session, claim: Claim, *, result: dict[str, Any] | None, outputs: Sequence[Media]
) -> Outcome:
    """running -> succeeded: outputs, result and capture together."""

    def record(job: Job) -> Outcome:
        job.result = result
        s.add_all(outputs)
        _end(s, job, SUCCEEDED, None, None)
        return _applied(job)

    return _end_attempt(s, claim, record)


def fail(s: Session, claim: Claim, *, code: ErrorCode, message: str) -> Outcome:
    """running -> failed, not charged."""

    def record(job: Job) -> Outcome:
        _end(s, job, FAILED, code.value, message)
        return _applied(job)

    return _end_attempt(s, claim, record)


def stop(s: Session, claim: Claim, *, result: dict[str, Any] | None = None) -> Outcome:
    """running -> canceled: the attempt stopped on a cancel request; not charged. `result`
    is what the attempt had made so far (a language model's partial text), kept on the row."""

    def record(job: Job) -> Outcome:
        _end_canceled(s, job, CANCELED_BY_CLIENT)
        return _applied(job)

    outcome = _end_attempt(s, claim, record)
    if outcome.applied and result is not None:
        job = s.get(Job, claim.job_id)
        if job is not None:
            job.result = result
    return outcome


def give_back(s: Session, claim: Claim) -> Outcome:
    """running -> queued on a clean shutdown: not a crash, so the attempt is returned."""

    def record(job: Job) -> Outcome:
        _requeue(job)
        job.attempts -= 1
        return _applied(job, requeued=True)

    return _end_attempt(s, claim, record)


def _requeue(job: Job) -> None:
    job.status = QUEUED
    job.attempt_token = None
    job.lease_expires_at = None
    job.progress, job.step, job.total = 0.0, 0, 0


# -- from outside the attempt: clients, the sweeps ----------------------------------------


def cancel(s: Session, job: Job) -> Outcome:
    """The client's cancel. queued -> canceled at once; running: cancel requested, and the
    worker records it at its next step (applied, status still running, no event yet)."""
    if job.status == QUEUED:
        _end(s, job, CANCELED, ErrorCode.canceled.value, CANCELED_BEFORE_START)
        return _applied(job)
    if job.status == RUNNING:
        _request_cancel(job)
        return _applied(job, silent=True)
    return _refused(job)


def poll_overdue(job: Job, t: float) -> bool:
    """True when a poll-timed job, not yet ended, was not polled within its timeout."""
    if job.poll_timeout_s is None or job.status not in (QUEUED, RUNNING):
        return False
    return t - (job.last_polled_at or job.created_at) > job.poll_timeout_s


def abandon(s: Session, job: Job, t: float) -> Outcome:
    """A poll-timed job its client stopped polling (Perfect's rule): queued -> canceled with
    task_abandoned; running: cancel requested with that code, so the worker stops it."""
    message = (
        f"abandoned: the client did not poll for {job.poll_timeout_s or 0:g} s; "
        "the task was stopped and nothing was charged"
    )
    if job.status == QUEUED:
        _end(s, job, CANCELED, ErrorCode.task_abandoned.value, message)
        job.finished_at = t
        return _applied(job)
    if job.status == RUNNING and not job.cancel_requested:
        _request_cancel(job, ErrorCode.task_abandoned.value, message)
        return _applied(job, silent=True)
    return _refused(job)


def lose(s: Session, job: Job) -> Outcome:
    """A running job whose lease ran out (its worker died): canceled if a cancel was asked,
    failed with worker_lost after `max_attempts`, otherwise queued again for another try."""
    if job.status != RUNNING:
        return _refused(job)
    if job.cancel_requested:
        _end_canceled(s, job, "canceled by the client (its worker stopped meanwhile)")
    elif job.attempts >= job.max_attempts:
        message = (
            f"the worker running this job stopped {job.attempts} times "
            "(crash or restart); the job was given up and not charged"
        )
        _end(s, job, FAILED, ErrorCode.worker_lost.value, message)
    else:
        _requeue(job)
        return _applied(job, requeued=True)
    return _applied(job)
