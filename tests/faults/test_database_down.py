"""The database unreachable for a moment: 503 + Retry-After from the API, and a job whose
progress write fails is re-run (not failed, not charged twice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from pixelforge.jobs import lifecycle
from tests.conftest import make_settings
from tests.faults.harness import photo, settle, submit, wait_final
from tests.live import LiveServer


def refused() -> OperationalError:
    # What psycopg raises while PostgreSQL restarts (seen in tests/faults/test_restarts.py).
    return OperationalError("SELECT", {}, Exception("connection refused"))


def test_database_down_is_503_not_500(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    _, key = server.account(credits=1)

    def get(**_: object) -> None:
        raise refused()

    monkeypatch.setattr(server.services.jobs, "get", get)
    with server.client(key) as c:
        r = c.get("/v1/jobs/job_123")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "unavailable"
    assert r.headers["Retry-After"] == "5"


@pytest.mark.slow
def test_database_blip_mid_run_reruns_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first progress write fails as a restarting PostgreSQL makes it fail: the attempt is
    left to lease recovery and the job succeeds on its second, charged once (it used to fail
    with error_inference, the database's error as its message)."""
    real = lifecycle.record_progress
    calls = []

    def flaky(s: Any, claim: lifecycle.Claim, **kw: int) -> bool:
        calls.append(claim.attempt)
        if len(calls) == 1:
            raise refused()
        return real(s, claim, **kw)

    monkeypatch.setattr(lifecycle, "record_progress", flaky)
    with LiveServer(make_settings(tmp_path / "data", workers=1, lease_s=2.0)) as srv:
        account_id, key = srv.account(credits=5)
        with srv.client(key) as c:
            r = submit(c, srv.upload(c, photo())["id"], "req-1")
        job = wait_final(srv, key, r.json()["id"])
        outcome = settle(srv.services.db, account_id=account_id, job_id=job["id"], granted=5)
    assert job["status"] == "succeeded", job
    assert (job["attempts"], outcome.charged, outcome.available) == (2, 1, 4)
    assert calls[0] == 1
