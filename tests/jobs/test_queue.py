"""The embedded queue and JobService over the jobs table, on SQLite and on PostgreSQL.

Idempotent submission, fair and prioritised pickup, concurrent claiming, lease recovery and
cancel, each checked against the rows and ledger entries they leave behind.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PIL import Image
from skimage import data as skdata
from sqlalchemy import event, select, text, update

from pixelforge.accounts import ledger
from pixelforge.accounts.service import AccountService
from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.events import InProcessBus
from pixelforge.jobs.queue import Claim, claim_next, extend_leases, queue_order, recover_expired
from pixelforge.jobs.service import JobService
from pixelforge.media.service import MediaLimits, MediaService
from pixelforge.pipelines.registry import default_registry
from pixelforge.safety.fetch import FetchPolicy
from pixelforge.store.db import Database
from pixelforge.store.media import LocalMediaStore
from pixelforge.store.tables import Job, LedgerEntry

T = TypeVar("T")
MAX_ATTEMPTS = 2
LEASE_S = 30.0


@cache
def _png() -> bytes:
    """A small real photo (skimage's astronaut, cropped) as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(skdata.astronaut()[100:148, 180:228]).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Env:
    db: Database
    accounts: AccountService
    media: MediaService
    jobs: JobService

    def account(self, email: str, credits: int = 100) -> tuple[str, str]:
        """(account id, id of an uploaded image it owns)."""
        acc, _ = self.accounts.create_account(email=email, credits=credits)
        upload = self.media.ingest_upload(account_id=acc.id, data=_png())
        return acc.id, upload.id

    def submit(self, account_id: str, image: str, **kw: Any) -> str:
        params = {"image": image, **kw.pop("params", {})}
        return self.jobs.submit(
            account_id=account_id, pipeline="convert", params=params, **kw
        ).job.id

    def job(self, job_id: str) -> Job:
        with self.db.read() as s:
            row = s.get(Job, job_id)
        assert row is not None
        return row

    def ledger_kinds(self, job_id: str) -> list[str]:
        with self.db.read() as s:
            q = select(LedgerEntry.kind).where(LedgerEntry.job_id == job_id)
            return list(s.scalars(q.order_by(LedgerEntry.id)))

    def expire_lease(self, job_id: str) -> None:
        with self.db.write() as s:
            s.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=now() - 1))


@pytest.fixture
def env(db: Database, tmp_path: Path) -> Env:
    media = MediaService(
        db=db,
        store=LocalMediaStore(tmp_path / "media"),
        sign_key=b"m" * 32,
        limits=MediaLimits(
            max_bytes=10 * 1024 * 1024,
            max_pixels=4096 * 4096,
            upload_retention_s=3600,
            result_retention_s=3600,
            signed_url_ttl_s=600,
        ),
        fetch_policy=FetchPolicy(),
    )
    jobs = JobService(
        db=db, registry=default_registry(), bus=InProcessBus(), max_attempts=MAX_ATTEMPTS
    )
    accounts = AccountService(db, token_key=b"t" * 32, token_ttl_s=3600)
    return Env(db=db, accounts=accounts, media=media, jobs=jobs)


def _together(n: int, fn: Callable[[int], T]) -> list[T | BaseException]:
    """Run fn(0..n-1) on n threads released at once; results or the exceptions raised."""
    barrier = threading.Barrier(n)

    def call(i: int) -> T | BaseException:
        barrier.wait(timeout=10)
        try:
            return fn(i)
        except Exception as e:
            return e

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(call, range(n)))


def _is_postgres(db: Database) -> bool:
    return not db.is_sqlite


# -- idempotency ---------------------------------------------------------------------------


def test_concurrent_idempotent_submits_make_one_job_and_one_hold(env: Env) -> None:
    acc, image = env.account("a@example.com", credits=10)

    def submit(_: int) -> tuple[str, bool]:
        res = env.jobs.submit(
            account_id=acc,
            pipeline="convert",
            params={"image": image, "format": "webp"},
            idempotency_key="req-1",
        )
        return res.job.id, res.created

    outcomes = _together(20, submit)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert errors == []
    ids = {o[0] for o in outcomes if isinstance(o, tuple)}
    created = [o for o in outcomes if isinstance(o, tuple) and o[1]]
    assert len(ids) == 1
    assert len(created) == 1
    (job_id,) = ids
    with env.db.read() as s:
        assert s.scalars(select(Job.id)).all() == [job_id]
        holds = s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "hold")).all()
    assert [(h.job_id, h.amount) for h in holds] == [(job_id, 1)]
    assert env.accounts.balance(acc) == ledger.Balance(available=9, held=1)


def test_same_key_with_different_request_is_idempotency_mismatch(env: Env) -> None:
    acc, image = env.account("a@example.com")
    first = env.submit(acc, image, params={"format": "png"}, idempotency_key="k")
    # Same request again: same job, nothing new held.
    again = env.jobs.submit(
        account_id=acc,
        pipeline="convert",
        params={"image": image, "format": "png"},
        idempotency_key="k",
    )
    assert (again.job.id, again.created) == (first, False)

    for kw in ({"params": {"format": "jpg"}}, {"priority": 5}):
        with pytest.raises(PixelForgeError) as err:
            env.submit(acc, image, idempotency_key="k", **kw)
        assert err.value.code == ErrorCode.idempotency_mismatch
        assert err.value.status == 422
    with env.db.read() as s:
        assert s.scalars(select(Job.id)).all() == [first]
    assert env.accounts.balance(acc) == ledger.Balance(available=99, held=1)


def test_idempotency_keys_are_scoped_to_the_account(env: Env) -> None:
    a, image_a = env.account("a@example.com")
    b, image_b = env.account("b@example.com")
    job_a = env.submit(a, image_a, idempotency_key="shared")
    job_b = env.submit(b, image_b, idempotency_key="shared")
    assert job_a != job_b
    assert env.job(job_b).account_id == b


def test_submit_needs_the_accounts_own_media(env: Env) -> None:
    a, _ = env.account("a@example.com")
    _, image_b = env.account("b@example.com")
    with pytest.raises(PixelForgeError) as err:
        env.submit(a, image_b)
    assert err.value.code == ErrorCode.not_found
    with env.db.read() as s:
        assert s.scalars(select(Job.id)).all() == []
        assert s.scalars(select(LedgerEntry).where(LedgerEntry.kind == "hold")).all() == []


def test_concurrent_submits_from_one_account_never_overdraw(
    env: Env,
) -> None:
    acc, image = env.account("a@example.com", credits=5)
    if _is_postgres(env.db):
        # Detect deadlocks in 50 ms instead of the server's default 1 s: only faster.
        def fast_deadlock_detection(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.execute("SET SESSION deadlock_timeout = '50ms'")
            dbapi_conn.commit()

        event.listen(env.db.engine, "connect", fast_deadlock_detection)
        env.db.engine.dispose()

    def submit(i: int) -> str:
        return env.submit(acc, image, params={"quality": 50 + i})

    outcomes = _together(10, submit)
    codes = sorted(
        o.code.value if isinstance(o, PixelForgeError) else f"{type(o).__name__}: {o}"[:80]
        for o in outcomes
        if isinstance(o, BaseException)
    )
    assert codes == ["insufficient_credits"] * 5
    with env.db.read() as s:
        assert len(s.scalars(select(Job.id)).all()) == 5
    assert env.accounts.balance(acc) == ledger.Balance(available=0, held=5)


# -- pickup order --------------------------------------------------------------------------


def test_one_busy_account_cannot_starve_another(env: Env) -> None:
    a, image_a = env.account("a@example.com")
    b, image_b = env.account("b@example.com")
    a_jobs = [env.submit(a, image_a, params={"quality": 50 + i}) for i in range(30)]
    b_job = env.submit(b, image_b)

    with env.db.read() as s:
        order = queue_order(s)
    assert len(order) == 31
    assert (b_job, b) in order[:2]
    # A's own jobs keep their submission order.
    assert [j for j, acc in order if acc == a] == a_jobs
    assert env.jobs.position(env.job(b_job)) in (1, 2)


def test_workers_take_jobs_in_the_fair_order(env: Env) -> None:
    a, image_a = env.account("a@example.com")
    b, image_b = env.account("b@example.com")
    for i in range(30):
        env.submit(a, image_a, params={"quality": 50 + i})
    b_job = env.submit(b, image_b)
    first_two = [claim_next(env.db, lease_s=LEASE_S) for _ in range(2)]
    assert b_job in {c.job_id for c in first_two if c is not None}


def test_higher_priority_goes_first(env: Env) -> None:
    a, image_a = env.account("a@example.com")
    b, image_b = env.account("b@example.com")
    low = [env.submit(a, image_a, params={"quality": 50 + i}) for i in range(3)]
    high = env.submit(b, image_b, priority=10)
    with env.db.read() as s:
        assert queue_order(s)[0] == (high, b)
    claim = claim_next(env.db, lease_s=LEASE_S)
    assert claim is not None and claim.job_id == high
    assert claim_next(env.db, lease_s=LEASE_S).job_id == low[0]  # type: ignore[union-attr]


# -- claiming ------------------------------------------------------------------------------


def test_concurrent_claims_get_distinct_jobs(env: Env) -> None:
    acc, image = env.account("a@example.com")
    job_ids = {env.submit(acc, image, params={"quality": 50 + i}) for i in range(6)}

    outcomes = _together(4, lambda _: claim_next(env.db, lease_s=LEASE_S))
    claims = [o for o in outcomes if isinstance(o, Claim)]
    assert len(claims) == 4, outcomes
    assert len({c.job_id for c in claims}) == 4
    assert {c.job_id for c in claims} <= job_ids
    t = now()
    for c in claims:
        row = env.job(c.job_id)
        assert row.status == "running"
        assert row.attempts == 1 == c.attempt
        assert row.attempt_token == c.token and len(c.token) >= 32
        assert row.lease_expires_at is not None
        assert t < row.lease_expires_at <= t + LEASE_S + 1
        assert row.started_at is not None
    assert len({c.token for c in claims}) == 4

    # The two left over, then nothing.
    rest = [claim_next(env.db, lease_s=LEASE_S) for _ in range(3)]
    assert rest[2] is None
    assert {c.job_id for c in claims} | {c.job_id for c in rest[:2] if c} == job_ids


def test_extend_leases_only_moves_the_current_token(env: Env) -> None:
    acc, image = env.account("a@example.com")
    env.submit(acc, image)
    claim = claim_next(env.db, lease_s=1.0)
    assert claim is not None
    before = env.job(claim.job_id).lease_expires_at
    extend_leases(env.db, tokens={claim.job_id: "not-the-token"}, lease_s=LEASE_S)
    assert env.job(claim.job_id).lease_expires_at == before
    extend_leases(env.db, tokens={claim.job_id: claim.token}, lease_s=LEASE_S)
    assert env.job(claim.job_id).lease_expires_at > now() + LEASE_S - 5  # type: ignore[operator]


# -- recovery ------------------------------------------------------------------------------


def test_expired_lease_requeues_then_fails_with_worker_lost(env: Env) -> None:
    acc, image = env.account("a@example.com", credits=10)
    job_id = env.submit(acc, image)
    other = env.submit(acc, image, params={"format": "jpg"})
    first = claim_next(env.db, lease_s=LEASE_S)
    live = claim_next(env.db, lease_s=LEASE_S)
    assert first is not None and live is not None
    assert {first.job_id, live.job_id} == {job_id, other}
    lost = first.job_id

    # Nothing has expired yet.
    assert recover_expired(env.db) == []

    env.expire_lease(lost)
    (rec,) = recover_expired(env.db)
    assert (rec.job_id, rec.account_id, rec.requeued) == (lost, acc, True)
    row = env.job(lost)
    assert (row.status, row.attempts, row.attempt_token) == ("queued", 1, None)
    assert row.lease_expires_at is None
    assert env.job(live.job_id).status == "running"  # a live lease is left alone

    second = claim_next(env.db, lease_s=LEASE_S)
    assert second is not None and second.job_id == lost
    assert second.attempt == 2 == env.job(lost).attempts
    assert second.token != first.token

    env.expire_lease(lost)
    (rec,) = recover_expired(env.db)
    assert (rec.job_id, rec.requeued) == (lost, False)
    row = env.job(lost)
    assert row.status == "failed"
    assert row.error_code == ErrorCode.worker_lost.value
    assert row.error_message
    assert row.attempt_token is None and row.finished_at is not None
    assert env.ledger_kinds(lost) == ["hold", "void"]
    # Only the live job is still held.
    assert env.accounts.balance(acc) == ledger.Balance(available=9, held=1)
    assert recover_expired(env.db) == []


def test_recovery_does_not_undo_a_job_finished_meanwhile(
    env: Env,
) -> None:
    """A worker finishing just past its lease must win over the sweeper, not be re-queued."""
    acc, image = env.account("a@example.com")
    job_id = env.submit(acc, image)
    claim = claim_next(env.db, lease_s=LEASE_S)
    assert claim is not None
    env.expire_lease(job_id)

    result: list[Any] = []
    sweeper = threading.Thread(target=lambda: result.append(recover_expired(env.db)))
    # The worker's completion transaction (what Runner._finish does), held open while the
    # sweeper runs, then committed.
    with env.db.write() as s:
        s.execute(
            update(Job)
            .where(Job.id == job_id, Job.attempt_token == claim.token)
            .values(status="succeeded", attempt_token=None, lease_expires_at=None)
        )
        assert ledger.capture(s, job_id=job_id)
        sweeper.start()
        _wait_until_blocked(env.db, sweeper)
    sweeper.join(30)
    assert not sweeper.is_alive()

    assert result == [[]]
    assert env.job(job_id).status == "succeeded"
    assert env.ledger_kinds(job_id) == ["hold", "capture"]


def _wait_until_blocked(db: Database, thread: threading.Thread) -> None:
    """Until `thread` waits on a lock this test holds (PostgreSQL), or a moment (SQLite)."""
    if db.is_sqlite:
        time.sleep(0.3)
        return
    deadline = time.monotonic() + 10
    with db.engine.connect() as conn:
        while time.monotonic() < deadline and thread.is_alive():
            waiting = conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE NOT granted")
            ).scalar_one()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.02)


def test_recovery_of_a_cancel_requested_job_cancels_it(env: Env) -> None:
    acc, image = env.account("a@example.com")
    job_id = env.submit(acc, image)
    claim = claim_next(env.db, lease_s=LEASE_S)
    assert claim is not None
    assert env.jobs.cancel(account_id=acc, job_id=job_id).cancel_requested
    env.expire_lease(job_id)
    recover_expired(env.db)
    assert env.job(job_id).status == "canceled"
    assert env.ledger_kinds(job_id) == ["hold", "void"]


# -- cancel --------------------------------------------------------------------------------


def test_cancel_of_a_queued_job_voids_at_once(env: Env) -> None:
    acc, image = env.account("a@example.com", credits=3)
    job_id = env.submit(acc, image)
    assert env.accounts.balance(acc) == ledger.Balance(available=2, held=1)

    job = env.jobs.cancel(account_id=acc, job_id=job_id)
    assert job.status == "canceled"
    row = env.job(job_id)
    assert row.status == "canceled"
    assert row.error_code == ErrorCode.canceled.value
    assert row.finished_at is not None
    assert env.ledger_kinds(job_id) == ["hold", "void"]
    assert env.accounts.balance(acc) == ledger.Balance(available=3, held=0)
    # Gone from the queue; a second cancel changes nothing.
    assert claim_next(env.db, lease_s=LEASE_S) is None
    assert env.jobs.cancel(account_id=acc, job_id=job_id).status == "canceled"
    assert env.ledger_kinds(job_id) == ["hold", "void"]


def test_cancel_of_a_running_job_only_flags_it(env: Env) -> None:
    acc, image = env.account("a@example.com", credits=3)
    job_id = env.submit(acc, image)
    claim = claim_next(env.db, lease_s=LEASE_S)
    assert claim is not None

    job = env.jobs.cancel(account_id=acc, job_id=job_id)
    assert (job.status, job.cancel_requested) == ("running", True)
    row = env.job(job_id)
    assert (row.status, row.cancel_requested, row.attempt_token) == ("running", True, claim.token)
    assert row.error_code is None and row.finished_at is None
    assert env.ledger_kinds(job_id) == ["hold"]
    assert env.accounts.balance(acc) == ledger.Balance(available=2, held=1)


def test_cancel_of_another_accounts_job_is_not_found(env: Env) -> None:
    a, image = env.account("a@example.com")
    b, _ = env.account("b@example.com")
    job_id = env.submit(a, image)
    with pytest.raises(PixelForgeError) as err:
        env.jobs.cancel(account_id=b, job_id=job_id)
    assert err.value.code == ErrorCode.not_found
    assert env.job(job_id).status == "queued"
    assert env.ledger_kinds(job_id) == ["hold"]
