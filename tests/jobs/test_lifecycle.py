"""The job state machine, table-driven: every transition from every state, on both backends.

Each case builds a job in a state through the lifecycle itself, applies one transition, and
checks the outcome, the row, the ledger and the event: an allowed transition writes the row
and its ledger entry together and announces an event that agrees with the row; a refused one
changes nothing and announces nothing (for example, succeed after cancel captures nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pixelforge.accounts import ledger
from pixelforge.clock import now
from pixelforge.errors import ErrorCode
from pixelforge.ids import new_id
from pixelforge.jobs import lifecycle
from pixelforge.jobs.lifecycle import Claim, Outcome
from pixelforge.jobs.status import EVENT_FOR_STATUS, JobStatus
from pixelforge.store.db import Database
from pixelforge.store.tables import Account, Job, LedgerEntry

MAX_ATTEMPTS = 2
Q, R, S, F, C = "queued", "running", "succeeded", "failed", "canceled"
HOLD, CAPTURE, VOID = ["hold"], ["hold", "capture"], ["hold", "void"]


class World:
    """One account and helpers to put a job in a state through the lifecycle."""

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.write() as s:
            self.account = Account(id=new_id("acc"), email=f"{new_id('e')}@x.io", created_at=now())
            s.add(self.account)
            s.flush()
            ledger.grant(s, account_id=self.account.id, amount=100)

    def new_job(self) -> str:
        job = Job(
            id=new_id("job"),
            account_id=self.account.id,
            pipeline="convert",
            params={},
            priority=0,
            request_hash="h",
            cost=3,
            seed=1,
            attempts=0,
            max_attempts=MAX_ATTEMPTS,
            cancel_requested=False,
            block_explicit=False,
            poll_timeout_s=10.0,
            created_at=now(),
        )
        with self.db.write() as s:
            outcome = lifecycle.accept(s, job)
        assert outcome.applied and outcome.event is not None and outcome.event.type == Q
        return job.id

    def claim(self, job_id: str) -> Claim:
        with self.db.write() as s:
            claim = lifecycle.claim(s, job_id=job_id, account_id=self.account.id, lease_s=30)
        assert claim is not None
        return claim

    def apply(self, fn: Callable[[Session], Any]) -> Any:
        with self.db.write() as s:
            return fn(s)

    def row(self, job_id: str) -> Job:
        with self.db.read() as s:
            job = s.get(Job, job_id)
        assert job is not None
        return job

    def ledger(self, job_id: str) -> list[str]:
        with self.db.read() as s:
            q = select(LedgerEntry.kind).where(LedgerEntry.job_id == job_id)
            return list(s.scalars(q.order_by(LedgerEntry.id)))

    def locked(self, job_id: str, s: Session) -> Job:
        job = s.scalar(select(Job).where(Job.id == job_id).with_for_update())
        assert job is not None
        return job


def make(world: World, state: str) -> tuple[str, Claim]:
    """A job in `state` and the claim of its (last) attempt; a never-run job gets a made-up
    claim, which no transition may accept."""
    job_id = world.new_job()
    claim = Claim(job_id=job_id, account_id=world.account.id, token="0" * 32, attempt=0)
    if state == "queued":
        return job_id, claim
    if state == "canceled":
        world.apply(lambda s: lifecycle.cancel(s, world.locked(job_id, s)))
        return job_id, claim
    claim = world.claim(job_id)
    if state == "running+cancel":
        world.apply(lambda s: lifecycle.cancel(s, world.locked(job_id, s)))
    elif state == "running+last":  # its last allowed attempt
        world.apply(lambda s: setattr(world.locked(job_id, s), "attempts", MAX_ATTEMPTS))
    elif state == "succeeded":
        world.apply(lambda s: lifecycle.succeed(s, claim, result={}, outputs=[]))
    elif state == "failed":
        world.apply(lambda s: lifecycle.fail(s, claim, code=ErrorCode.error_inference, message="x"))
    return job_id, claim


def transition(name: str, world: World, job_id: str, claim: Claim) -> Outcome | Claim | None:
    def on_row(fn: Callable[[Session, Job], Outcome]) -> Outcome:
        return world.apply(lambda s: fn(s, world.locked(job_id, s)))  # type: ignore[no-any-return]

    if name == "claim":
        return world.apply(
            lambda s: lifecycle.claim(s, job_id=job_id, account_id=world.account.id, lease_s=30)
        )  # type: ignore[no-any-return]
    if name == "cancel":
        return on_row(lifecycle.cancel)
    if name == "abandon":
        return on_row(lambda s, job: lifecycle.abandon(s, job, now()))
    if name == "lose":
        return on_row(lifecycle.lose)
    calls: dict[str, Callable[[Session], Outcome]] = {
        "succeed": lambda s: lifecycle.succeed(s, claim, result={"k": 1}, outputs=[]),
        "fail": lambda s: lifecycle.fail(s, claim, code=ErrorCode.error_inference, message="x"),
        "stop": lambda s: lifecycle.stop(s, claim),
        "give_back": lambda s: lifecycle.give_back(s, claim),
    }
    return world.apply(calls[name])  # type: ignore[no-any-return]


# (state, transition) -> (status afterwards, ledger afterwards, error code), or None: refused.
# Pairs not listed are refused.
ALLOWED: dict[tuple[str, str], tuple[str, list[str], str | None]] = {
    ("queued", "claim"): (R, HOLD, None),
    ("queued", "cancel"): (C, VOID, "canceled"),
    ("queued", "abandon"): (C, VOID, "task_abandoned"),
    ("running", "cancel"): (R, HOLD, None),  # requested: the worker stops at its next step
    ("running", "abandon"): (R, HOLD, "task_abandoned"),
    ("running", "succeed"): (S, CAPTURE, None),
    ("running", "fail"): (F, VOID, "error_inference"),
    ("running", "stop"): (C, VOID, "canceled"),
    ("running", "give_back"): (Q, HOLD, None),
    ("running", "lose"): (Q, HOLD, None),
    ("running+cancel", "cancel"): (R, HOLD, None),
    ("running+cancel", "succeed"): (C, VOID, "canceled"),  # the cancel wins, nothing charged
    ("running+cancel", "fail"): (C, VOID, "canceled"),
    ("running+cancel", "stop"): (C, VOID, "canceled"),
    ("running+cancel", "give_back"): (C, VOID, "canceled"),
    ("running+cancel", "lose"): (C, VOID, "canceled"),
}
# On its last allowed attempt a job behaves the same, except that losing its worker ends it.
ALLOWED |= {("running+last", tr): v for (st, tr), v in ALLOWED.items() if st == "running"}
ALLOWED[("running+last", "lose")] = (F, VOID, "worker_lost")
STATES = ["queued", "running", "running+cancel", "running+last", "succeeded", "failed", "canceled"]
TRANSITIONS = ["claim", "cancel", "abandon", "succeed", "fail", "stop", "give_back", "lose"]
CASES = [(st, tr) for st in STATES for tr in TRANSITIONS]


def _snapshot(job: Job) -> dict[str, Any]:
    keys = ("status", "attempts", "attempt_token", "cancel_requested", "error_code", "result")
    return {k: getattr(job, k) for k in keys}


@pytest.mark.parametrize(("state", "name"), CASES, ids=[f"{s}-{t}" for s, t in CASES])
def test_transition(db: Database, state: str, name: str) -> None:
    world = World(db)
    job_id, claim = make(world, state)
    before, ledger_before = _snapshot(world.row(job_id)), world.ledger(job_id)

    out = transition(name, world, job_id, claim)

    row, entries = world.row(job_id), world.ledger(job_id)
    expected = ALLOWED.get((state, name))
    if expected is None:  # refused: nothing written, nothing announced
        assert out is None or (isinstance(out, Outcome) and not out.applied and out.event is None)
        assert _snapshot(row) == before and entries == ledger_before
        return
    status, kinds, code = expected
    assert (row.status, entries, row.error_code) == (status, kinds, code)
    if isinstance(out, Claim):  # claim: a new attempt, announced as started
        assert row.attempt_token == out.token and out.event.type == "started"
        return
    assert isinstance(out, Outcome) and out.applied and out.status == row.status
    if row.status == R:  # a cancel request: recorded, announced when the worker stops
        assert out.event is None and row.cancel_requested
        return
    assert out.event is not None
    assert out.event.type == EVENT_FOR_STATUS[JobStatus(row.status)]
    assert (out.event.job_id, out.event.account_id) == (job_id, world.account.id)
    terminal = JobStatus(row.status).terminal
    assert out.event.error_code == (row.error_code if terminal else None)
    assert out.event.message == (row.error_message if terminal else None)
    assert (row.attempt_token is None) and (row.finished_at is not None) == terminal
    if row.status == S:
        assert row.result == {"k": 1} and row.progress == 1.0


def test_a_give_back_returns_the_attempt(db: Database) -> None:
    world = World(db)
    job_id, claim = make(world, "running")
    world.apply(lambda s: lifecycle.give_back(s, claim))
    assert world.row(job_id).attempts == 0
    assert world.claim(job_id).attempt == 1


def test_an_abandoned_job_whose_worker_died_keeps_its_code_on_row_and_event(db: Database) -> None:
    world = World(db)
    job_id, _ = make(world, "running")
    world.apply(lambda s: lifecycle.abandon(s, world.locked(job_id, s), now()))
    out = world.apply(lambda s: lifecycle.lose(s, world.locked(job_id, s)))
    row = world.row(job_id)
    assert row.status == "canceled" and row.error_code == "task_abandoned"
    assert out.event.type == "canceled"
    assert (out.event.error_code, out.event.message) == (row.error_code, row.error_message)
    assert world.ledger(job_id) == VOID


def test_a_stale_attempt_cannot_end_the_job(db: Database) -> None:
    """After its lease ran out and the job was re-queued and claimed again, the first
    attempt's success is refused: only the current token may end the job."""
    world = World(db)
    job_id, first = make(world, "running")
    world.apply(lambda s: lifecycle.lose(s, world.locked(job_id, s)))
    second = world.claim(job_id)
    out = world.apply(lambda s: lifecycle.succeed(s, first, result={}, outputs=[]))
    assert not out.applied and out.event is None
    assert world.row(job_id).attempt_token == second.token and world.ledger(job_id) == HOLD
    world.apply(lambda s: lifecycle.succeed(s, second, result={}, outputs=[]))
    assert world.ledger(job_id) == CAPTURE


def test_snapshot_of_a_running_job_is_its_progress() -> None:
    job = Job(id="job_1", account_id="acc_1", status="running", progress=0.5, step=1, total=2)
    ev = lifecycle.snapshot(job, queue_position=None)
    assert (ev.type, ev.progress, ev.step, ev.total) == ("progress", 0.5, 1, 2)
