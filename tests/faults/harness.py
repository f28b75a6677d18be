"""Helpers of the fault matrix: processes killed at a phase, throwaway services, the ledger."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from skimage import data
from sqlalchemy import func, select

from pixelforge.accounts import ledger
from pixelforge.settings import Settings
from pixelforge.store.db import Database
from pixelforge.store.tables import Job, LedgerEntry, Media
from tests.live import LiveServer, free_port, png_bytes

FINAL = ("succeeded", "failed", "canceled")


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a `pixelforge` child on the same data directory and database."""
    env = {
        **os.environ,
        "PIXELFORGE_DATA_DIR": str(settings.data_dir),
        "PIXELFORGE_LEASE_S": str(settings.lease_s),
        "PIXELFORGE_POLL_INTERVAL_S": "0.1",
        "PIXELFORGE_WORKER_THREADS": "1",
        "PIXELFORGE_BOOTSTRAP_ADMIN": "false",
        "PIXELFORGE_RATE_LIMIT_ENABLED": "false",
        **extra,
    }
    if settings.database_url:
        env["PIXELFORGE_DATABASE_URL"] = settings.database_url
    return env


def spawn(settings: Settings, *args: str, **extra: str) -> subprocess.Popen[bytes]:
    """`pixelforge <args>` in a child process; its output goes to a log in the data dir."""
    log_path = settings.data_dir / f"{args[0]}-{time.monotonic_ns()}.log"
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "pixelforge", *args],
            env=child_env(settings, **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def expect_killed(proc: subprocess.Popen[bytes], phase: str, timeout: float = 90) -> None:
    """The child ended itself at `phase` (exit 137 from the fault point), not otherwise."""
    try:
        rc = proc.wait(timeout)
    finally:
        proc.kill()
    assert rc == 137, f"the child was not killed at {phase!r} (exit {rc})"


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited while starting"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("the server did not start")


def submit(c: httpx.Client, media_id: str, key: str, pipeline: str = "convert") -> httpx.Response:
    """A job with an idempotency key, so a client that lost the answer can ask again."""
    params: dict[str, Any] = {"image": media_id}
    if pipeline == "upscale":  # tiles of 32 px: seconds of work, progress after each
        params = {"image": media_id, "scale": 4, "model": "realesr-animevideov3", "tile": 32}
    return c.post(
        "/v1/jobs",
        json={"pipeline": pipeline, "params": params},
        headers={"Idempotency-Key": key},
    )


def photo(size: int = 64) -> bytes:
    from PIL import Image

    return png_bytes(Image.fromarray(data.astronaut()).resize((size, size)))


def wait_final(srv: LiveServer, key: str, job_id: str, timeout: float = 90) -> dict[str, Any]:
    with srv.client(key) as c:
        return srv.wait_job(c, job_id, timeout=timeout)


@dataclass(frozen=True)
class Outcome:
    """One case's end: the row of the fault-matrix table."""

    status: str
    attempts: int
    charged: int  # capture entries of the job
    jobs: int  # jobs of the account (one request, one job: a duplicate makes 2)
    available: int
    held: int

    def line(self, case: str) -> str:
        lost = int(self.status not in FINAL)
        double = int(self.charged > 1)
        return (
            f"FAULT-MATRIX {case}: status={self.status} attempts={self.attempts} "
            f"charged={self.charged} lost={lost} double={double}"
        )


def settle(db: Database, *, account_id: str, job_id: str, granted: int) -> Outcome:
    """Check the account's invariants and return `job_id`'s outcome: every job ended,
    succeeded and charged once (one output each) or failed/canceled and not charged, no open
    hold, and the balance equal to grants - captures - open holds."""
    with db.read() as s:
        jobs = {j.id: j for j in s.scalars(select(Job).where(Job.account_id == account_id))}
        entries = s.execute(
            select(LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.job_id).where(
                LedgerEntry.account_id == account_id
            )
        ).all()
        outputs = dict(
            s.execute(
                select(Media.job_id, func.count())
                .where(Media.job_id.in_(list(jobs)))
                .group_by(Media.job_id)
            ).all()
        )
        bal = ledger.balance(s, account_id)
    assert job_id in jobs, "the job was lost"
    for job in jobs.values():
        assert job.status in FINAL, f"job {job.id} still {job.status}"
        kinds = sorted(k for k, _, j in entries if j == job.id)
        if job.status == "succeeded":
            assert kinds == ["capture", "hold"], (job.id, kinds)
            assert outputs.get(job.id) == 1, (job.id, outputs)
        else:
            assert kinds == ["hold", "void"], (job.id, kinds)
            assert job.id not in outputs, (job.id, outputs)
    grants = sum(a for k, a, _ in entries if k == "grant")
    captures = sum(a for k, a, _ in entries if k == "capture")
    settled = {j for k, _, j in entries if k in ("capture", "void")}
    open_holds = sum(a for k, a, j in entries if k == "hold" and j not in settled)
    assert grants == granted
    assert open_holds == 0 and bal.held == 0
    assert bal.available == grants - captures - open_holds
    assert captures == sum(j.cost for j in jobs.values() if j.status == "succeeded")
    job = jobs[job_id]
    charged = sum(1 for k, _, j in entries if k == "capture" and j == job_id)
    return Outcome(job.status, job.attempts, charged, len(jobs), bal.available, bal.held)


def orphan_files(db: Database, media_dir: Path) -> int:
    """Files in the media dir that no media row points at (written by an attempt that died
    before its commit): never served, only disk space."""
    files = {str(p.relative_to(media_dir)) for p in media_dir.rglob("*") if p.is_file()}
    with db.read() as s:
        keys = set(s.scalars(select(Media.storage_key).where(Media.storage_key.in_(files))))
    return len(files - keys)


def job_row(db: Database, job_id: str) -> tuple[str, list[str]]:
    """(status, ledger kinds) of a job as the database has it now."""
    with db.read() as s:
        job = s.get(Job, job_id)
        kinds = sorted(s.scalars(select(LedgerEntry.kind).where(LedgerEntry.job_id == job_id)))
    assert job is not None
    return job.status, kinds


# -- throwaway PostgreSQL and Redis (never the machine's shared ones: we restart these) ----


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / name).exists():
            return str(d / name)
    return None


class ThrowawayPostgres:
    """A PostgreSQL cluster of its own in a temp dir on a free port, to stop and start."""

    def __init__(self) -> None:
        initdb, self.pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if initdb is None or self.pg_ctl is None:
            pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
        # PostgreSQL refuses to run as root: run it as the postgres user there.
        self.prefix: list[str] = []
        self.dir = Path(tempfile.mkdtemp(prefix="pf-faults-pg-"))
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root without a postgres user: cannot start PostgreSQL")
            if shutil.which("runuser") is None:
                pytest.skip("running as root without runuser: cannot start a PostgreSQL")
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._run(initdb, "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust")

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.prefix, *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.dir / "pg.log")
        self._run(self.pg_ctl, "-D", str(self.dir / "data"), "-o", opts, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run(self.pg_ctl, "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    pg = ThrowawayPostgres()
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


class ThrowawayRedis:
    """A redis-server of its own on a free port, without persistence, to kill and restart."""

    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server is not installed")
        self.dir = Path(tempfile.mkdtemp(prefix="pf-faults-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.binary is not None
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self.proc = subprocess.Popen(
            [*args, "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10

        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None


@contextmanager
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    r = ThrowawayRedis()
    try:
        r.start()
        yield r
    finally:
        r.kill()
        shutil.rmtree(r.dir, ignore_errors=True)
