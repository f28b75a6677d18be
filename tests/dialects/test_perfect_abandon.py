"""Perfect's "the task will lose if no polling": unpolled tasks are canceled and not charged.

With a 3 s poll timeout: a queued task nobody polls is canceled while the worker is busy, a
running one stops at its next step, and a task that is polled runs to success. On SQLite and
on PostgreSQL (marker `services`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import make_settings
from tests.dialects.test_perfect import API, Server, assert_error, jpeg_bytes, ledger, photo
from tests.store.conftest import _drop_everything


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def srv(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    overrides: dict[str, Any] = {
        "dialect_options": {"perfect": {"poll_timeout_s": 3.0}},
        "workers": 1,
    }
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        _drop_everything(url)
        overrides["database_url"] = url
    with Server(make_settings(tmp_path / "data", **overrides)) as server:
        yield server


def job(srv: Server, key: str, job_id: str) -> dict[str, Any]:
    """The job as the native API shows it (reading it is not a Perfect poll)."""
    r = httpx.get(f"{srv.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_unpolled_tasks_are_abandoned_and_free_polled_ones_complete(srv: Server) -> None:
    pc = srv.perfect(credits=10)
    pc.login()
    slow_file = pc.upload("enhance", jpeg_bytes(photo(side=320)))
    fast_file = pc.upload("enhance", jpeg_bytes(photo(side=48)))
    # x4plus in 32 px tiles: seconds of work with a cancel point per tile (2 credits).
    slow = {
        "file_sets": {"src_ids": [slow_file]},
        "actions": [{"id": 0, "params": {"model": "realesrgan-x4plus", "tile": 32}}],
    }
    fast = {"file_sets": {"src_ids": [fast_file]}, "actions": [{"id": 0}]}

    # A runs while a client thread polls it at the polling_interval; B waits behind it and
    # is never polled: canceled while still queued.
    a = pc.run("enhance", slow, request_id=0).json()["result"]["task_id"]
    stop_polling = threading.Event()
    seen: list[str] = []

    def keep_polling() -> None:
        with httpx.Client(base_url=srv.url, headers=pc.http.headers, timeout=60) as http:
            while not stop_polling.is_set():
                r = http.get(f"{API}/task/enhance", params={"task_id": a})
                seen.append(r.json()["result"]["status"] if r.status_code == 200 else r.text)
                stop_polling.wait(r.json()["result"]["polling_interval"] / 1000)

    poller = threading.Thread(target=keep_polling)
    poller.start()
    try:
        b = pc.run("enhance", fast, request_id=1).json()["result"]["task_id"]
        start = time.monotonic()
        while job(srv, pc.api_key, b)["status"] != "canceled":
            assert time.monotonic() < start + 30, "the unpolled queued task was not abandoned"
            time.sleep(0.1)
        waited = time.monotonic() - start
        assert waited < 3 + 5, f"abandoned only after {waited:.1f} s (timeout 3 s)"
        queued = job(srv, pc.api_key, b)
        assert queued["error"]["code"] == "task_abandoned" and queued["started_at"] is None
        assert job(srv, pc.api_key, a)["status"] == "running"
        assert_error(pc.status("enhance", b), 400, "InvalidTaskId")
    finally:
        stop_polling.set()
        poller.join(60)
    assert seen and set(seen) == {"running"}, seen

    # Now A is not polled any more: it stops at its next tile, canceled, uncharged.
    deadline = time.monotonic() + 30
    while (running := job(srv, pc.api_key, a))["status"] == "running":
        assert time.monotonic() < deadline, "the unpolled running task did not stop"
        time.sleep(0.1)
    assert running["status"] == "canceled", running
    assert running["error"]["code"] == "task_abandoned"
    assert running["outputs"] == [] and running["step"] < running["total"]
    assert_error(pc.status("enhance", a), 400, "InvalidTaskId")
    assert ledger(srv, a) == ledger(srv, b) == ["hold", "void"]
    assert pc.credits() == (10, 0)

    # A task that is polled at the polling_interval completes and is charged once.
    c = pc.run("enhance", fast, request_id=2).json()["result"]["task_id"]
    result = pc.poll("enhance", c)
    assert result["status"] == "success", result
    assert ledger(srv, c) == ["capture", "hold"]
    assert pc.credits() == (9, 0)


def test_a_late_poll_finds_the_task_lost(srv: Server) -> None:
    """Polled too late, a task is lost at that poll even before the sweep comes by."""
    srv.services.pool.stop()  # no worker, no sweep: the poll alone decides
    pc = srv.perfect(credits=3)
    pc.login()
    file_id = pc.upload("enhance", jpeg_bytes(photo(side=48)))
    task = pc.run("enhance", {"file_sets": {"src_ids": [file_id]}, "actions": [{"id": 0}]})
    task_id = task.json()["result"]["task_id"]
    assert pc.status("enhance", task_id).json()["result"]["status"] == "running"
    time.sleep(3.3)
    body = assert_error(pc.status("enhance", task_id), 400, "InvalidTaskId")
    assert "not poll" in body["error"]
    assert job(srv, pc.api_key, task_id)["status"] == "canceled"
    assert pc.credits() == (3, 0)
