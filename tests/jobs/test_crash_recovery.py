"""A worker process killed mid-job: the job is re-run once and charged once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from skimage import data
from sqlalchemy import select, update

from pixelforge.store.tables import Job, LedgerEntry, Media
from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes

pytestmark = pytest.mark.slow


def start_worker(data_dir: Path, **env: str) -> subprocess.Popen[bytes]:
    full = {
        **os.environ,
        "PIXELFORGE_DATA_DIR": str(data_dir),
        "PIXELFORGE_LEASE_S": "2",
        "PIXELFORGE_POLL_INTERVAL_S": "0.1",
        "PIXELFORGE_WORKER_THREADS": "1",
        **env,
    }
    # The child keeps its own copy of the log's descriptor; ours can close at once.
    with open(data_dir / f"worker-{time.monotonic_ns()}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pixelforge", "worker", "--workers", "1"],
            env=full,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def slow_job(srv: LiveServer, key: str) -> str:
    """An x4plus upscale in 9 tiles: a few seconds, with progress after each tile."""
    photo = Image.fromarray(data.astronaut()).resize((96, 96))
    with srv.client(key) as c:
        media = srv.upload(c, png_bytes(photo))
        params = {"image": media["id"], "scale": 4, "model": "realesrgan-x4plus", "tile": 32}
        r = c.post("/v1/jobs", json={"pipeline": "upscale", "params": params})
        assert r.status_code == 202, r.text
        job_id: str = r.json()["id"]
    return job_id


def wait_until_running(srv: LiveServer, key: str, job_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with srv.client(key) as c:
        while time.monotonic() < deadline:
            job = c.get(f"/v1/jobs/{job_id}").json()
            if job["status"] == "running" and job["step"] >= 2:
                return
            assert job["status"] in ("queued", "running"), job
            time.sleep(0.05)
    raise TimeoutError("job never got going")


def kill_worker_mid_job(srv: LiveServer, key: str, job_id: str, data_dir: Path) -> None:
    """Start a worker, let it get into the job, then SIGKILL it."""
    worker = start_worker(data_dir)
    try:
        wait_until_running(srv, key, job_id)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        worker.kill()


def finish_with_new_worker(
    srv: LiveServer, key: str, job_id: str, *, timeout: float = 120
) -> dict[str, Any]:
    """A fresh worker (its housekeeping notices the lost lease); the job's final state."""
    worker = start_worker(srv.settings.data_dir)
    try:
        with srv.client(key) as c:
            return srv.wait_job(c, job_id, timeout=timeout)
    finally:
        worker.terminate()
        worker.wait(15)


def ledger_kinds(srv: LiveServer, job_id: str) -> list[str]:
    with srv.services.db.read() as s:
        q = select(LedgerEntry.kind).where(LedgerEntry.job_id == job_id)
        return sorted(s.scalars(q))


def test_killed_worker_job_completes_once_charged_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", workers=0, lease_s=2.0)
    with LiveServer(settings) as srv:
        _, key = srv.account(credits=5)
        job_id = slow_job(srv, key)

        kill_worker_mid_job(srv, key, job_id, settings.data_dir)
        job = finish_with_new_worker(srv, key, job_id)

        assert job["status"] == "succeeded", job
        assert job["attempts"] == 2
        assert len(job["outputs"]) == 1
        assert (job["outputs"][0]["width"], job["outputs"][0]["height"]) == (384, 384)
        assert ledger_kinds(srv, job_id) == ["capture", "hold"]
        with srv.services.db.read() as s:
            rows = s.scalars(select(Media).where(Media.job_id == job_id)).all()
        assert len(rows) == 1
        with srv.client(key) as c:
            me = c.get("/v1/me").json()
        assert (me["credits_available"], me["credits_held"]) == (3, 0)


def test_worker_lost_too_often_fails_and_voids(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", workers=0, lease_s=2.0)
    with LiveServer(settings) as srv:
        _, key = srv.account(credits=5)
        job_id = slow_job(srv, key)
        # max_attempts is fixed on the row when the job is accepted; lower it there so a
        # single lost worker is already one too many.
        with srv.services.db.write() as s:
            s.execute(update(Job).where(Job.id == job_id).values(max_attempts=1))
        kill_worker_mid_job(srv, key, job_id, settings.data_dir)
        job = finish_with_new_worker(srv, key, job_id, timeout=60)
        assert job["status"] == "failed"
        assert job["error"]["code"] == "worker_lost"
        assert ledger_kinds(srv, job_id) == ["hold", "void"]
        with srv.client(key) as c:
            me = c.get("/v1/me").json()
        assert (me["credits_available"], me["credits_held"]) == (5, 0)


def test_queued_jobs_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", workers=0)
    with LiveServer(settings) as srv:
        _, key = srv.account(credits=5)
        with srv.client(key) as c:
            media = srv.upload(c, png_bytes(data.astronaut()[:64, :64]))
            ids = [
                c.post(
                    "/v1/jobs", json={"pipeline": "convert", "params": {"image": media["id"]}}
                ).json()["id"]
                for _ in range(3)
            ]
            assert all(c.get(f"/v1/jobs/{i}").json()["status"] == "queued" for i in ids)
    # A new process on the same data directory, now with a worker: the queue is still there.
    with LiveServer(make_settings(tmp_path / "data", workers=1)) as srv2, srv2.client(key) as c:
        finished = [srv2.wait_job(c, i) for i in ids]
    assert [j["status"] for j in finished] == ["succeeded"] * 3
