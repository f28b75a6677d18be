"""PostgreSQL and Redis restarted while a job runs: it still ends once, charged at most once.

Both run as throwaway instances of the test's own (never the machine's shared services).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from pixelforge.settings import Settings
from tests.conftest import make_settings
from tests.faults.harness import (
    photo,
    settle,
    submit,
    throwaway_postgres,
    throwaway_redis,
    wait_final,
)
from tests.live import LiveServer

pytestmark = [pytest.mark.slow, pytest.mark.services]

GRANTED = 50


def wait_running(srv: LiveServer, key: str, job_id: str, timeout: float = 60) -> None:
    """Until the job has made progress (a worker is inside its pipeline)."""
    deadline = time.monotonic() + timeout
    with srv.client(key) as c:
        while time.monotonic() < deadline:
            job = c.get(f"/v1/jobs/{job_id}").json()
            if job["status"] == "running" and job["step"] >= 2:
                return
            assert job["status"] in ("queued", "running"), job
            time.sleep(0.05)
    raise TimeoutError("the job never got going")


def probe(srv: LiveServer, key: str, job_id: str, seconds: float) -> list[int]:
    """The API's answers to a poll while a service is down (never a 500)."""
    codes = []
    deadline = time.monotonic() + seconds
    with srv.client(key) as c:
        while time.monotonic() < deadline:
            try:
                codes.append(c.get(f"/v1/jobs/{job_id}").status_code)
            except httpx.TimeoutException:
                codes.append(0)
            time.sleep(0.2)
    return codes


def run_one(
    srv: LiveServer, key: str, media_id: str, request: str, pipeline: str = "upscale"
) -> str:
    with srv.client(key) as c:
        r = submit(c, media_id, request, pipeline=pipeline)
    assert r.status_code == 202, r.text
    job_id: str = r.json()["id"]
    return job_id


def settings_for(tmp_path: Path, **kw: object) -> Settings:
    return make_settings(tmp_path / "data", workers=1, lease_s=2.0, **kw)


def test_postgres_restarted_mid_run(tmp_path: Path) -> None:
    with throwaway_postgres() as pg, LiveServer(settings_for(tmp_path, database_url=pg.url)) as srv:
        account_id, key = srv.account(credits=GRANTED)
        with srv.client(key) as c:
            media_id = srv.upload(c, photo(96))["id"]
        job_id = run_one(srv, key, media_id, "req-1")
        wait_running(srv, key, job_id)

        pg.stop()
        codes = probe(srv, key, job_id, 2.0)
        pg.start()

        job = wait_final(srv, key, job_id, timeout=120)
        outcome = settle(srv.services.db, account_id=account_id, job_id=job_id, granted=GRANTED)
        print(outcome.line("postgresql restarted mid-run"), "codes during the outage:", codes)
        assert set(codes) <= {200, 503}, codes  # 503 + Retry-After while it is down
        assert job["status"] == "succeeded", job
        # The server works on after the outage.
        after = wait_final(srv, key, run_one(srv, key, media_id, "req-2", "convert"), timeout=120)
        assert after["status"] == "succeeded", after


def test_redis_restarted_mid_run(tmp_path: Path) -> None:
    with throwaway_redis() as redis:
        # Rate limits on (through this Redis), loose enough for the test's polling.
        loose = {"rate_limit_per_key": "100000/minute", "rate_limit_per_ip": "100000/minute"}
        settings = settings_for(tmp_path, redis_url=redis.url, rate_limit_enabled=True, **loose)
        with LiveServer(settings) as srv:
            account_id, key = srv.account(credits=GRANTED)
            with srv.client(key) as c:
                # Large enough that the upscale is still running when Redis goes away.
                media_id = srv.upload(c, photo(192))["id"]
            job_id = run_one(srv, key, media_id, "req-1")
            wait_running(srv, key, job_id)

            redis.kill()
            codes = probe(srv, key, job_id, 2.0)
            redis.start()

            job = wait_final(srv, key, job_id, timeout=120)
            outcome = settle(srv.services.db, account_id=account_id, job_id=job_id, granted=GRANTED)
            print(outcome.line("redis restarted mid-run"), "codes during the outage:", codes)
            assert set(codes) == {200}, codes  # rate limits fail open, events go local
            assert job["status"] == "succeeded", job
            after = wait_final(
                srv, key, run_one(srv, key, media_id, "req-2", "convert"), timeout=120
            )
            assert after["status"] == "succeeded", after
