"""The embedded queue over the jobs table (the truth): pickup order, claims, leases, sweeps.

Status changes themselves are `pixelforge.jobs.lifecycle`'s; this module decides which jobs
they apply to (the next in fair order, same-shape batch mates, expired leases, unpolled jobs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update
from sqlalchemy.orm import Session

from pixelforge.clock import now
from pixelforge.jobs import lifecycle
from pixelforge.jobs.lifecycle import Claim, Outcome
from pixelforge.jobs.status import JobStatus
from pixelforge.store.db import Database
from pixelforge.store.tables import Account, Job

QUEUED, RUNNING = JobStatus.QUEUED, JobStatus.RUNNING


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


def claim_next(db: Database, *, lease_s: float, candidates: int = 8) -> Claim | None:
    """Take the next queued job with a fresh attempt token and lease, or None."""
    with db.write() as s:
        rows = s.execute(_fair_order().limit(candidates)).all()
        # On PostgreSQL another process may take a candidate between our read and our
        # update; the conditional UPDATE notices and we move on to the next one.
        for job_id, account_id in rows:
            claim = lifecycle.claim(s, job_id=job_id, account_id=account_id, lease_s=lease_s)
            if claim is not None:
                return claim
    return None


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
            claim = lifecycle.claim(s, job_id=job_id, account_id=account_id, lease_s=lease_s)
            if claim is not None:
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


def recover_expired(db: Database) -> list[Outcome]:
    """Jobs whose worker stopped heartbeating: re-queued, or ended (see lifecycle.lose)."""
    with db.write() as s:
        rows = s.scalars(
            select(Job)
            .where(Job.status == RUNNING, Job.lease_expires_at < now())
            .limit(100)
            # Lock the rows: a worker finishing one meanwhile must not be overwritten.
            .with_for_update(skip_locked=True)
        ).all()
        return [lifecycle.lose(s, job) for job in rows]


def abandon_unpolled(db: Database, *, limit: int = 100) -> list[Outcome]:
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
    with db.write() as s:
        rows = s.scalars(
            select(Job)
            .where(*overdue)
            .limit(limit)
            # A worker claiming or finishing one meanwhile must not be overwritten.
            .with_for_update(skip_locked=True)
        ).all()
        return [lifecycle.abandon(s, job, t) for job in rows]
