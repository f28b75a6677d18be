"""The database unreachable (restarting): the API answers 503 with Retry-After, not 500."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from tests.live import LiveServer


def test_database_down_is_503_not_500(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    _, key = server.account(credits=1)

    def refused(**_: object) -> None:
        # What psycopg raises while PostgreSQL restarts (seen in tests/faults/test_restarts.py).
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(server.services.jobs, "get", refused)
    with server.client(key) as c:
        r = c.get("/v1/jobs/job_123")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "unavailable"
    assert r.headers["Retry-After"] == "5"
