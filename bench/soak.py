"""Soak: many mixed jobs from many clients on PostgreSQL with rate limits on; nothing lost.

Starts the real server (`python -m pixelforge serve`) on a fresh PostgreSQL database with the
default rate limits, creates one account per client through the admin API, and lets N
clients (each from its own loopback address, 127.0.0.2, 127.0.0.3, ..., so the per-address
limit applies to each as it would to separate machines) run a mix of cheap effect jobs:
blocking submits (`Prefer: wait`), async submits polled to the end, cancels, job and account
reads. A 429 is honoured (its `Retry-After`) and counted. The server's resident memory is
sampled every second.

At the end the database is read directly: every job accepted is in a final state (none lost,
none stuck), each succeeded job has exactly one capture and each other one none, no hold is
left open, and each account's balance equals its ledger. Printed: p50/p99 latency per kind
of request, jobs/s, 429s, and memory after warm-up against the end (a ratio).

    .venv/bin/python bench/soak.py                       # 2,000 jobs, 50 clients
    .venv/bin/python bench/soak.py --jobs 200 --clients 10   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Report, free_port, pixelforge_cmd, progress

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("PIXELFORGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
CREDITS = 1_000
MIX = (  # (weight, pipeline, params beyond the image)
    (5, "convert", {"format": "jpg"}),
    (2, "correct_color", {}),
    (2, "stylize", {"filter": "pencil_sketch"}),
    (1, "upscale", {"scale": 2}),
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) / 100 + 0.999) - 1))]


def png(side: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


class Sampler:
    """Resident memory (VmRSS) of a process, once a second, in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.samples.append((time.monotonic(), int(line.split()[1]) * 1024))

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


class Client:
    """One client: its own account, key, source address and image; records what it sees."""

    def __init__(self, n: int, base: str, key: str, account_id: str, stats: Stats) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{n + 2}")
        self.http = httpx.AsyncClient(
            base_url=base,
            transport=transport,
            headers={"Authorization": f"Bearer {key}"},
            timeout=120,
        )
        self.n = n
        self.account_id = account_id
        self.stats = stats
        self.image = ""

    async def call(self, kind: str, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request; a 429 waits its Retry-After and is retried (counted, not timed)."""
        while True:
            t0 = time.perf_counter()
            r = await self.http.request(method, path, **kw)
            if r.status_code != 429:
                self.stats.latency[kind].append(time.perf_counter() - t0)
                if r.status_code >= 500:
                    self.stats.server_errors.append(f"{method} {path}: {r.status_code}")
                return r
            self.stats.limited += 1
            await asyncio.sleep(float(r.headers.get("retry-after", "1")))

    async def run(self, jobs: int, rng: random.Random) -> None:
        r = await self.call("upload", "POST", "/v1/media", files={"file": png(64, self.n)})
        self.image = r.json()["id"]
        weights = [w for w, _, _ in MIX]
        for i in range(jobs):
            _, pipeline, extra = rng.choices(MIX, weights)[0]
            body = {"pipeline": pipeline, "params": {"image": self.image, **extra}}
            mode = rng.random()
            if mode < 0.7:  # blocking: the answer is the finished job
                r = await self.call(
                    "submit+wait", "POST", "/v1/jobs", json=body, headers={"Prefer": "wait=60"}
                )
                self.stats.record(r)
            else:
                r = await self.call("submit", "POST", "/v1/jobs", json=body)
                self.stats.record(r)
                job_id = r.json()["id"]
                if mode < 0.8:  # changed its mind
                    await self.call("cancel", "DELETE", f"/v1/jobs/{job_id}")
                for _ in range(120):
                    await asyncio.sleep(0.5)
                    r = await self.call("get job", "GET", f"/v1/jobs/{job_id}")
                    if r.json()["status"] in ("succeeded", "failed", "canceled"):
                        break
            if i % 10 == 9:
                await self.call("me", "GET", "/v1/me")
        await self.http.aclose()


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.accepted: set[str] = set()
        self.limited = 0
        self.server_errors: list[str] = []
        self.keys: dict[str, str] = {}  # account id -> API key

    def record(self, r: httpx.Response) -> None:
        if r.status_code in (200, 202):
            self.accepted.add(r.json()["id"])


def check_ledger(db_url: str, stats: Stats) -> dict[str, int]:
    """Read the truth: jobs, ledger entries, balances."""
    with psycopg.connect(db_url) as conn:
        jobs = dict(conn.execute("SELECT id, status FROM jobs").fetchall())
        kinds: dict[str, list[str]] = defaultdict(list)
        for job_id, kind in conn.execute(
            "SELECT job_id, kind FROM ledger_entries WHERE job_id IS NOT NULL"
        ):
            kinds[job_id].append(kind)
    lost = [j for j in stats.accepted if j not in jobs]
    unfinished = [j for j, s in jobs.items() if s in ("queued", "running")]
    double = [j for j, k in kinds.items() if k.count("capture") > 1]
    wrong = [
        j
        for j, s in jobs.items()
        if (s == "succeeded") != (kinds[j].count("capture") == 1)
        or (s in ("failed", "canceled") and kinds[j].count("void") != 1)
    ]
    open_holds = [j for j, k in kinds.items() if "capture" not in k and "void" not in k]
    return {
        "jobs in the table": len(jobs),
        "accepted, not in the table (lost)": len(lost),
        "not finished": len(unfinished),
        "double charges": len(double),
        "charge not matching status": len(wrong),
        "open holds": len(open_holds),
        "succeeded": sum(1 for s in jobs.values() if s == "succeeded"),
        "canceled": sum(1 for s in jobs.values() if s == "canceled"),
        "failed": sum(1 for s in jobs.values() if s == "failed"),
    }


async def balances_match(base: str, keys: dict[str, str], db_url: str) -> int:
    """Accounts whose `GET /v1/me` balance differs from grants - captures - open holds."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT account_id, "
            "sum(CASE kind WHEN 'grant' THEN amount WHEN 'capture' THEN -amount ELSE 0 END) "
            "FROM ledger_entries GROUP BY 1"
        ).fetchall()
    truth = {acc: int(v) for acc, v in rows}
    off = 0
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for acc, key in keys.items():
            r = await http.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
            if r.json()["credits_available"] != truth.get(acc):
                off += 1
    return off


def start_server(data_dir: Path, db_url: str, port: int) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELFORGE_")}
    env.update(
        PIXELFORGE_DATA_DIR=str(data_dir),
        PIXELFORGE_DATABASE_URL=db_url.replace("postgresql://", "postgresql+psycopg://"),
        PIXELFORGE_BOOTSTRAP_ADMIN="false",
    )
    out = subprocess.run(
        pixelforge_cmd("accounts", "create", "--email", "soak-admin@example.com", "--admin"),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    admin_key = next(w for w in out.stdout.split() if w.startswith("pf_"))
    log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen(
        pixelforge_cmd("serve", "--port", str(port)),
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc, admin_key
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start; see {data_dir / 'server.log'}")


async def soak(args: argparse.Namespace, base: str, admin_key: str, report: Report) -> Stats:
    stats = Stats()
    keys = stats.keys
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for n in range(args.clients):
            r = await http.post(
                "/v1/admin/accounts",
                json={"email": f"soak{n}@example.com", "credits": CREDITS},
                headers={"Authorization": f"Bearer {admin_key}"},
            )
            r.raise_for_status()
            keys[r.json()["id"]] = r.json()["api_key"]
    clients = [Client(n, base, key, acc, stats) for n, (acc, key) in enumerate(keys.items())]
    per_client = args.jobs // args.clients
    rng = random.Random(args.seed)
    seeds = [random.Random(rng.random()) for _ in clients]
    progress(f"{args.clients} clients x {per_client} jobs")
    t0 = time.perf_counter()
    await asyncio.gather(*(c.run(per_client, s) for c, s in zip(clients, seeds, strict=True)))
    elapsed = time.perf_counter() - t0
    report.add("soak", "jobs accepted", len(stats.accepted), "jobs")
    report.add("soak", "wall time", elapsed, "s")
    report.add("soak", "throughput", len(stats.accepted) / elapsed, "jobs/s")
    report.add("soak", "429 answers (honoured)", stats.limited, "")
    report.add("soak", "5xx answers", len(stats.server_errors), "")
    for kind, values in sorted(stats.latency.items()):
        report.add("latency", f"{kind} p50", pct(values, 50) * 1000, "ms")
        report.add("latency", f"{kind} p99", pct(values, 99) * 1000, "ms")
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if not 1 <= args.clients <= 200:
        parser.error("--clients: 1..200 (one loopback address each)")
    report = Report()
    name = f"pf_soak_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory(prefix="pf-soak-") as tmp:
            proc, admin_key = start_server(Path(tmp), db_url, port)
            try:
                with Sampler(proc.pid) as mem:
                    stats = asyncio.run(soak(args, base, admin_key, report))
                for what, n in check_ledger(db_url, stats).items():
                    report.add("truth", what, n, "")
                off = asyncio.run(balances_match(base, stats.keys, db_url))
                report.add("truth", "GET /v1/me balance != ledger", off, "accounts")
                memory(mem, report)
            finally:
                proc.terminate()
                proc.wait(30)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report.print()
    for line in stats.server_errors[:10]:
        print(f"5xx: {line}")


def memory(mem: Sampler, report: Report) -> None:
    """RSS after warm-up (the first fifth of the run) against the end of the run."""
    if len(mem.samples) < 5:
        return
    values = [v for _, v in mem.samples]
    warm = values[len(values) // 5]
    end = max(values[-3:])
    report.add("memory", "server RSS after warm-up", warm / 2**20, "MiB")
    report.add("memory", "server RSS at the end", end / 2**20, "MiB", end / warm, "after warm-up")
    report.add("memory", "server RSS peak", max(values) / 2**20, "MiB")


if __name__ == "__main__":
    main()
