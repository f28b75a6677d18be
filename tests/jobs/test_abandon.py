"""Abandonment of poll-timed jobs (Perfect's "lost if not polled"), on SQLite and PostgreSQL.

A job submitted with `poll_timeout_s` must be polled (`JobService.touch_poll`) at least that
often. The sweep (`abandon_unpolled`, run by the worker pool every second) and a late poll
both abandon it: queued -> canceled with its hold voided; running -> cancel requested, and
the worker records it canceled, never charged, even when its last step completes anyway.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image
from pydantic import BaseModel, ConfigDict
from skimage import data as skdata
from sqlalchemy import select, update

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.queue import abandon_unpolled, claim_next
from pixelforge.pipelines.contract import RunContext
from pixelforge.pipelines.limits import InputLimit
from pixelforge.pipelines.registry import default_registry
from pixelforge.services import Services, build_services
from pixelforge.store.db import Database
from pixelforge.store.tables import Job, LedgerEntry, Media
from tests.conftest import make_settings


@cache
def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(skdata.astronaut()[100:164, 180:244]).save(buf, format="PNG")
    return buf.getvalue()


class GateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = "x"


class GatePipeline:
    """Runs until the test opens the gate, never reporting progress, then saves an image."""

    name: ClassVar[str] = "gate"
    description: ClassVar[str] = "test pipeline: waits for a gate"
    Params: ClassVar[type[BaseModel]] = GateParams
    input_limit: ClassVar[InputLimit | None] = None

    def __init__(self) -> None:
        self.started = threading.Event()
        self.gate = threading.Event()

    def cost(self, params: GateParams) -> int:
        return 1

    def run(self, params: GateParams, ctx: RunContext) -> dict[str, Any]:
        self.started.set()
        assert self.gate.wait(30)
        ctx.save_image(Image.new("RGB", (8, 8), "red"))
        return {}


class Env:
    def __init__(self, services: Services, gate: GatePipeline) -> None:
        self.services = services
        self.gate = gate
        self.db = services.db

    def account(self, credits: int = 10) -> tuple[str, str]:
        import uuid

        acc, _ = self.services.accounts.create_account(
            email=f"a-{uuid.uuid4().hex[:8]}@example.com", credits=credits
        )
        media = self.services.media.ingest_upload(account_id=acc.id, data=_png())
        return acc.id, media.id

    def submit(self, account_id: str, image: str, poll_timeout_s: float | None = 5.0) -> str:
        return self.services.jobs.submit(
            account_id=account_id,
            pipeline="convert",
            params={"image": image},
            poll_timeout_s=poll_timeout_s,
        ).job.id

    def age(self, job_id: str, seconds: float) -> None:
        """Move the job's creation and last poll `seconds` into the past."""
        with self.db.write() as s:
            job = s.get(Job, job_id)
            assert job is not None
            job.created_at -= seconds
            if job.last_polled_at is not None:
                job.last_polled_at -= seconds

    def job(self, job_id: str) -> Job:
        with self.db.read() as s:
            row = s.get(Job, job_id)
        assert row is not None
        return row

    def ledger(self, job_id: str) -> list[str]:
        with self.db.read() as s:
            q = select(LedgerEntry.kind).where(LedgerEntry.job_id == job_id)
            return sorted(s.scalars(q))

    def available(self, account_id: str) -> int:
        return self.services.accounts.balance(account_id).available


@pytest.fixture
def env(db: Database, tmp_path: Path) -> Iterator[Env]:
    url = db.engine.url.render_as_string(hide_password=False)
    registry = default_registry()
    gate = GatePipeline()
    registry.register(gate)
    services = build_services(
        make_settings(tmp_path / "data", database_url=url, workers=0), registry=registry
    )
    try:
        yield Env(services, gate)
    finally:
        gate.gate.set()
        services.close()


def test_sweep_cancels_an_unpolled_queued_job_and_voids_its_hold(env: Env) -> None:
    acc, image = env.account(credits=3)
    job_id = env.submit(acc, image)
    assert env.available(acc) == 2
    assert abandon_unpolled(env.db) == []  # within its 5 s

    env.age(job_id, 6)
    (gone,) = abandon_unpolled(env.db)
    assert (gone.job_id, gone.status) == (job_id, "canceled")
    row = env.job(job_id)
    assert row.status == "canceled" and row.error_code == ErrorCode.task_abandoned.value
    assert row.finished_at is not None and row.attempt_token is None
    assert env.ledger(job_id) == ["hold", "void"] and env.available(acc) == 3
    assert claim_next(env.db, lease_s=30) is None  # out of the queue
    assert abandon_unpolled(env.db) == []


def test_polls_keep_a_job_and_jobs_without_a_timeout_are_left_alone(env: Env) -> None:
    acc, image = env.account()
    polled = env.submit(acc, image)
    untimed = env.submit(acc, image, poll_timeout_s=None)
    env.age(polled, 4)
    env.age(untimed, 3600)
    job = env.services.jobs.touch_poll(account_id=acc, job_id=polled)
    assert job.status == "queued" and job.last_polled_at is not None
    env.age(polled, 4)  # 8 s since creation, 4 s since the poll
    assert abandon_unpolled(env.db) == []
    assert env.job(polled).status == env.job(untimed).status == "queued"
    # Polling a job without a timeout changes nothing.
    assert env.services.jobs.touch_poll(account_id=acc, job_id=untimed).last_polled_at is None


def test_a_late_poll_abandons_at_once(env: Env) -> None:
    acc, image = env.account(credits=2)
    job_id = env.submit(acc, image)
    env.age(job_id, 6)
    job = env.services.jobs.touch_poll(account_id=acc, job_id=job_id)
    assert job.status == "canceled" and job.error_code == ErrorCode.task_abandoned.value
    assert env.ledger(job_id) == ["hold", "void"] and env.available(acc) == 2
    # Another account's poll of it is a plain not-found.
    other, _ = env.account()
    with pytest.raises(PixelForgeError) as e:
        env.services.jobs.touch_poll(account_id=other, job_id=job_id)
    assert e.value.code == ErrorCode.not_found


def test_an_abandoned_running_job_is_canceled_even_when_its_step_completes(env: Env) -> None:
    acc, _ = env.account(credits=1)
    sub = env.services.jobs.submit(account_id=acc, pipeline="gate", params={}, poll_timeout_s=5.0)
    claim = claim_next(env.db, lease_s=30)
    assert claim is not None and claim.job_id == sub.job.id
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(env.services.runner.run_job(claim)))
    worker.start()
    assert env.gate.started.wait(30)

    env.age(sub.job.id, 6)
    (flagged,) = abandon_unpolled(env.db)
    assert flagged.status == "running"
    row = env.job(sub.job.id)
    assert row.cancel_requested and row.error_code == ErrorCode.task_abandoned.value
    assert abandon_unpolled(env.db) == []  # flagged once

    env.gate.gate.set()  # the pipeline finishes its work regardless
    worker.join(30)
    assert outcome == ["canceled"]
    row = env.job(sub.job.id)
    assert row.status == "canceled" and row.error_code == ErrorCode.task_abandoned.value
    assert env.ledger(sub.job.id) == ["hold", "void"] and env.available(acc) == 1
    with env.db.read() as s:
        assert s.scalars(select(Media).where(Media.job_id == sub.job.id)).all() == []


def test_sweep_skips_a_job_a_worker_finished_meanwhile(env: Env) -> None:
    acc, image = env.account()
    job_id = env.submit(acc, image)
    with env.db.write() as s:
        s.execute(update(Job).where(Job.id == job_id).values(status="succeeded"))
    env.age(job_id, 60)
    assert abandon_unpolled(env.db) == []
    assert env.job(job_id).status == "succeeded"
