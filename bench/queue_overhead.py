"""Queue overhead benchmark: what the embedded job queue costs next to a bare HTTP request.

Starts the real server (`python -m pixelforge serve`) in a subprocess on a temporary data
directory, creates an account through the CLI, and measures over HTTP and websockets:

1. baseline: `GET /healthz` and `GET /v1/me` requests/s (asyncio httpx, concurrent tasks);
2. end-to-end jobs/s of the cheap `convert` pipeline (POST /v1/jobs -> succeeded), with
   completion detected by polling, and again with one `/v1/events` listener connected;
3. queue pickup latency (created_at -> started_at) with an idle queue, in-process workers
   and a separate `pixelforge worker` process;
4. `GET /v1/jobs/{id}` latency with idle workers and while they run Real-ESRGAN x4plus;
5. progress messages/s delivered to 100 `/v1/events` websocket subscribers.

Machines are shared and noisy, so every figure is printed beside a ratio to a baseline taken
by the same run against the same server, and server CPU time per request / job / message is
reported beside the rates (read from /proc, so Linux only). See bench/README.md.

    .venv/bin/python bench/queue_overhead.py --quick   # < 60 s, for smoke runs
    .venv/bin/python bench/queue_overhead.py           # a few minutes (`make bench`)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import json
import math
import os
import random
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets
from common import STARTED, Report, free_port, pixelforge_cmd, progress
from PIL import Image
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = ("succeeded", "failed", "canceled")
X4PLUS = {"model": "realesrgan-x4plus", "scale": 4, "tile": 64}
ANIME_TILED = {"model": "realesr-animevideov3", "scale": 2, "tile": 32}
HAVE_PROC = Path("/proc/self/stat").exists()
CLK_TCK = os.sysconf("SC_CLK_TCK") if HAVE_PROC else 100

PEERS = (
    "Celery: ~1,700 no-op jobs/s with 10 workers",
    "arq: workers poll Redis with a 0.5 s default delay (poll_delay) between empty polls",
    "Celery + Redis: ~8.6 ms enqueue -> worker-start pickup latency",
)


@dataclass(frozen=True)
class Profile:
    """How much of everything to do; `QUICK` fits a CI smoke run, `FULL` a few minutes."""

    http_seconds: float
    http_tasks: int
    convert_jobs: tuple[int, ...]  # batch sizes (queue depth grows with the batch)
    submit_tasks: int
    pickup_samples: int
    split_pickup_samples: int
    latency_samples: int
    ws_clients: int
    ws_jobs: int
    repeats: int


QUICK = Profile(1.0, 16, (60,), 8, 12, 8, 40, 100, 1, 1)
FULL = Profile(4.0, 16, (60, 400), 16, 100, 30, 300, 100, 3, 3)


# -- results ---------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered) / 100) - 1))]


def median(values: list[float]) -> float:
    return pct(values, 50)


def png_bytes(side: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


# -- the server under test -------------------------------------------------------------------
def bench_env(data_dir: Path, redis_url: str | None = None) -> dict[str, str]:
    """The environment without inherited PIXELFORGE_* settings, plus the bench's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELFORGE_")}
    env.update(
        PIXELFORGE_DATA_DIR=str(data_dir),
        PIXELFORGE_RATE_LIMIT_ENABLED="false",
        PIXELFORGE_BOOTSTRAP_ADMIN="false",
    )
    if redis_url:
        env["PIXELFORGE_REDIS_URL"] = redis_url
    return env


def create_account(data_dir: Path) -> str:
    """A new account with plenty of credits; returns its API key."""
    cmd = pixelforge_cmd(
        "accounts", "create", "--email", "bench@example.com", "--credits", "100000000"
    )
    out = subprocess.run(
        cmd, env=bench_env(data_dir), cwd=ROOT, capture_output=True, text=True, check=True
    )
    m = re.search(r"API key \(shown once\): (pf_\S+)", out.stdout)
    if m is None:
        raise RuntimeError(f"no API key in `accounts create` output:\n{out.stdout}{out.stderr}")
    return m.group(1)


@dataclass
class Server:
    """The running server processes (`serve`, and `worker` when split)."""

    url: str
    procs: list[subprocess.Popen[bytes]]

    def cpu_s(self, *, event_loop: bool = False) -> float:
        """CPU seconds (user + system) the server processes used so far.

        All threads of every process, or with `event_loop` only the main thread of the API
        process: the asyncio loop that sends websocket messages, without the pipelines'
        compute threads (whose time swings widely when other processes contend for cores).
        """
        if not HAVE_PROC:
            return float("nan")
        api_pid = self.procs[0].pid
        paths = (
            [f"/proc/{api_pid}/task/{api_pid}/stat"]
            if event_loop
            else [f"/proc/{p.pid}/stat" for p in self.procs]
        )
        ticks = 0
        for path in paths:
            # Fields after the ")" closing the command name start at field 3 (state);
            # utime and stime are fields 14 and 15.
            fields = Path(path).read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        return ticks / CLK_TCK


@contextlib.contextmanager
def running_server(
    data_dir: Path, workers: int, *, split: bool = False, redis_url: str | None = None
) -> Iterator[Server]:
    """`pixelforge serve --workers N`, or with `split` `serve --workers 0` + `worker`."""
    port = free_port()
    env = bench_env(data_dir, redis_url)
    log = (data_dir / "server.log").open("ab")
    cmds = [pixelforge_cmd("serve", "--port", str(port), "--workers", str(0 if split else workers))]
    if split:
        cmds.append(pixelforge_cmd("worker", "--workers", str(workers)))
    procs = [
        subprocess.Popen(c, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT) for c in cmds
    ]
    server = Server(url=f"http://127.0.0.1:{port}", procs=procs)
    try:
        wait_healthy(server, Path(log.name))
        yield server
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


def wait_healthy(server: Server, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and all(p.poll() is None for p in server.procs):
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"server at {server.url} did not become healthy; log tail:\n{tail}")


# -- a small API client ----------------------------------------------------------------------
class Api:
    """An authenticated asyncio httpx client for one server, plus the calls the bench makes."""

    def __init__(self, base: str, key: str, connections: int = 64) -> None:
        self.base = base
        self.key = key
        # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them
        # server-side, which otherwise races with a request sent on them (httpx.ReadError).
        limits = httpx.Limits(
            max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2
        )
        self.http = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120, limits=limits
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    @property
    def events_url(self) -> str:
        return self.base.replace("http://", "ws://", 1) + f"/v1/events?token={self.key}"

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        r = await self.http.request(method, path, **kw)
        if r.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    async def upload(self, data: bytes) -> str:
        body = await self.call("POST", "/v1/media", files={"file": ("b.png", data, "image/png")})
        return str(body["id"])

    async def submit(self, pipeline: str, params: dict[str, Any], wait_s: int = 0) -> Any:
        headers = {"Prefer": f"wait={wait_s}"} if wait_s else {}
        body = {"pipeline": pipeline, "params": params}
        return await self.call("POST", "/v1/jobs", json=body, headers=headers)

    async def settled(self, limit_s: float = 300, interval_s: float = 0.05) -> None:
        """Until no credits are held, i.e. every job of the account has ended."""
        deadline = time.monotonic() + limit_s
        while (await self.call("GET", "/v1/me"))["credits_held"] > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("jobs still holding credits")
            await asyncio.sleep(interval_s)

    async def jobs(self, ids: set[str], status: str = "succeeded") -> dict[str, Any]:
        """The listed jobs with these ids, paging `GET /v1/jobs?status=` newest first."""
        found: dict[str, Any] = {}
        cursor: str | None = None
        while len(found) < len(ids):
            params = {"status": status, "limit": 100} | ({"cursor": cursor} if cursor else {})
            page = await self.call("GET", "/v1/jobs", params=params)
            found.update({j["id"]: j for j in page["data"] if j["id"] in ids})
            cursor = page["next_cursor"]
            if cursor is None:
                break
        return found


class Listener:
    """One `/v1/events` websocket that records (receive time, event) for every message."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.ended: set[str] = set()  # ids of jobs whose final event arrived
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str) -> Listener:
        return cls(await connect(url, open_timeout=60, max_queue=None))

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                event = json.loads(raw)
                self.events.append((time.time(), event))
                if event.get("type") in TERMINAL:
                    self.ended.add(event["job_id"])

    async def close(self) -> None:
        await self.ws.close()
        await self.task


async def until(check: Callable[[], bool], limit_s: float, what: str) -> None:
    """Until check() is true (checked every 10 ms); TimeoutError(what) after limit_s."""
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)


# -- measurements ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    per_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_us: float  # server CPU per request
    client_cpu: float  # cores the bench process itself used meanwhile


async def http_rate(api: Api, server: Server, path: str, tasks: int, seconds: float) -> Rate:
    """Requests/s of `GET path` from `tasks` concurrent keep-alive clients."""
    await asyncio.gather(*(api.http.get(path) for _ in range(tasks)))  # connect and warm up
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        while (t0 := time.perf_counter()) < stop:
            r = await api.http.get(path)
            r.raise_for_status()
            latencies.append(time.perf_counter() - t0)

    cpu0, server_cpu0, t0 = time.process_time(), server.cpu_s(), time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(tasks)))
    wall = time.perf_counter() - t0
    return Rate(
        per_s=len(latencies) / wall,
        p50_ms=pct(latencies, 50) * 1e3,
        p99_ms=pct(latencies, 99) * 1e3,
        server_cpu_us=(server.cpu_s() - server_cpu0) / len(latencies) * 1e6,
        client_cpu=(time.process_time() - cpu0) / wall,
    )


async def get_latencies(api: Api, path: str, n: int) -> list[float]:
    """Seconds per sequential `GET path` (one request in flight)."""
    out: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await api.http.get(path)
        r.raise_for_status()
        out.append(time.perf_counter() - t0)
    return out


@dataclass(frozen=True)
class Batch:
    jobs_per_s: float  # n / (last job's finished_at - first POST sent)
    submit_per_s: float  # n / (last POST answered - first POST sent)
    cpu_ms: float  # server CPU per job, submit to completion (with the completion polling)
    events_per_job: float  # messages the /v1/events listener received, per job (0: none)
    finals_missing: int = 0  # jobs whose final event never reached the listener


async def convert_batch(
    api: Api, server: Server, image: str, n: int, tasks: int, *, listen: bool
) -> Batch:
    """Submit n convert jobs from `tasks` concurrent clients and wait for all of them.

    Completion is detected by polling `GET /v1/me` until no credits are held, or, with
    `listen`, by the `succeeded` events of one `/v1/events` listener.
    """
    listener = await Listener.open(api.events_url) if listen else None
    pending, ids = list(range(n)), set[str]()

    async def submitter() -> None:
        while pending:
            pending.pop()
            ids.add((await api.submit("convert", {"image": image}))["id"])

    t0, cpu0 = time.time(), server.cpu_s()
    await asyncio.gather(*(submitter() for _ in range(tasks)))
    submitted = time.time()
    if listener is not None:
        await heard_or_settled(api, listener, ids)
        await listener.close()
    else:
        await api.settled()
    cpu = server.cpu_s() - cpu0
    jobs = await api.jobs(ids)
    if len(jobs) != n:
        raise RuntimeError(f"{n - len(jobs)} of {n} convert jobs did not succeed")
    last = max(j["finished_at"] for j in jobs.values())
    return Batch(
        jobs_per_s=n / (last - t0),
        submit_per_s=n / (submitted - t0),
        cpu_ms=cpu / n * 1e3,
        events_per_job=len(listener.events) / n if listener else 0.0,
        finals_missing=len(ids - listener.ended) if listener else 0,
    )


async def heard_or_settled(api: Api, listener: Listener, ids: set[str], grace_s: float = 5) -> None:
    """Until the listener heard every job end, or `grace_s` after the API says all ended.

    The API is asked only every 0.5 s, so that the listener run carries little polling load;
    the grace period stops a lost final event from hanging the run.
    """
    settled_at: float | None = None
    while not ids <= listener.ended:
        if settled_at is None and (await api.call("GET", "/v1/me"))["credits_held"] == 0:
            settled_at = time.monotonic()
        if settled_at is not None and time.monotonic() - settled_at > grace_s:
            return
        await asyncio.sleep(0.5 if settled_at is None else 0.05)


async def pickup_latencies(api: Api, image: str, n: int, *, poll: bool) -> list[float]:
    """created_at -> started_at of n convert jobs submitted one at a time to an idle queue.

    In-process workers: `Prefer: wait` blocks on the job's events (no polling load). With
    `poll`, for a separate worker process whose events do not reach the API process, the
    job is polled every 20 ms instead. A random pause before each submit keeps the samples
    from locking onto the phase of a worker's poll cycle.
    """
    rng, out = random.Random(n), list[float]()
    for _ in range(n):
        await asyncio.sleep(rng.uniform(0.05, 0.6) if poll else rng.uniform(0.02, 0.1))
        job = await api.submit("convert", {"image": image}, wait_s=0 if poll else 30)
        while job["status"] not in TERMINAL:
            await asyncio.sleep(0.02)
            job = await api.call("GET", f"/v1/jobs/{job['id']}")
        if job["status"] != "succeeded":
            raise RuntimeError(f"pickup job {job['id']} ended {job['status']}")
        out.append(job["timings"]["queued_s"])
    return out


async def busy_latencies(
    api: Api, path: str, image: str, workers: int, n: int
) -> tuple[list[float], bool]:
    """`GET path` latencies while every worker runs Real-ESRGAN x4plus; then cancels them.

    Three upscales per worker are queued so that the workers stay busy throughout. Returns
    the latencies and whether every worker was still upscaling when sampling ended.
    """
    params = {"image": image, **X4PLUS}
    ids = [(await api.submit("upscale", params))["id"] for _ in range(3 * workers)]

    async def running() -> int:
        """Jobs past the model load (it holds the GIL), i.e. with their tile count set."""
        page = await api.call("GET", "/v1/jobs", params={"status": "running", "limit": 100})
        return sum(1 for j in page["data"] if j["id"] in ids and j["total"] > 0)

    deadline = time.monotonic() + 60
    while (count := await running()) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {count} of {workers} upscales started")
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    latencies = await get_latencies(api, path, n)
    busy_throughout = await running() == workers
    for job_id in ids:
        await api.call("DELETE", f"/v1/jobs/{job_id}")
    await api.settled()
    return latencies, busy_throughout


@dataclass(frozen=True)
class Fanout:
    messages: int  # every message about the job, summed over the subscribers
    progress: int  # progress messages only
    delivered: float  # progress messages received / (subscribers x progress events sent)
    lags: list[float]  # seconds from each event's ts to its receipt
    run_s: float  # job runtime (started -> finished) with the subscribers connected
    loop_cpu_s: float  # event-loop CPU from submit until every subscriber had the final event


async def fanout_run(api: Api, server: Server, listeners: list[Listener], image: str) -> Fanout:
    """One tiled upscale followed by every listener; what they received for it."""
    cpu0 = server.cpu_s(event_loop=True)
    job_id = (await api.submit("upscale", {"image": image, **ANIME_TILED}))["id"]
    await until(
        lambda: all(job_id in lst.ended for lst in listeners), 300, "final event not delivered"
    )
    cpu = server.cpu_s(event_loop=True) - cpu0
    job = await api.call("GET", f"/v1/jobs/{job_id}")
    mine = [(t, e) for lst in listeners for t, e in lst.events if e.get("job_id") == job_id]
    progress = sum(1 for _, e in mine if e["type"] == "progress")
    sent = len(listeners) * (job["total"] + 1)  # progress(0, total), then one per tile
    return Fanout(
        messages=len(mine),
        progress=progress,
        delivered=progress / sent,
        lags=[t - e["ts"] for t, e in mine],
        run_s=job["timings"]["run_s"],
        loop_cpu_s=cpu,
    )


async def solo_runs(
    api: Api, server: Server, image: str, n: int, warm_image: str
) -> list[tuple[float, float]]:
    """(run_s, event-loop CPU s) of the tiled upscale with no subscriber, after a warm-up."""
    params = {"image": image, **ANIME_TILED}
    await api.submit("upscale", {**params, "image": warm_image}, wait_s=60)  # loads the model
    out = []
    for _ in range(n):
        cpu0 = server.cpu_s(event_loop=True)
        job = await api.submit("upscale", params, wait_s=60)
        out.append((job["timings"]["run_s"], server.cpu_s(event_loop=True) - cpu0))
    return out


async def fanout(api: Api, server: Server, image: str, clients: int, runs: int) -> list[Fanout]:
    """`runs` tiled upscales, each followed by `clients` `/v1/events` sockets."""
    sem = asyncio.Semaphore(16)

    async def open_one() -> Listener:
        async with sem:
            return await Listener.open(api.events_url)

    listeners = await asyncio.gather(*(open_one() for _ in range(clients)))
    try:
        return [await fanout_run(api, server, listeners, image) for _ in range(runs)]
    finally:
        await asyncio.gather(*(lst.close() for lst in listeners))


# -- the sections of the report --------------------------------------------------------------
@dataclass
class Phase:
    """One running server (`workers` workers) and the baselines measured on it."""

    api: Api
    server: Server
    workers: int
    prof: Profile
    report: Report
    media: dict[int, str] = field(default_factory=dict)  # image side -> media id
    job_path: str = ""  # a finished convert job, for GET /v1/jobs/{id}
    health: Rate | None = None
    idle: list[float] = field(default_factory=list)  # idle GET /v1/jobs/{id} seconds

    @property
    def tag(self) -> str:
        return f"w={self.workers}"

    @property
    def healthz(self) -> Rate:
        assert self.health is not None, "section_baseline runs first"
        return self.health


async def median_rate(phase: Phase, path: str) -> Rate:
    """The median (by req/s) of `repeats` runs of http_rate."""
    p = phase.prof
    runs = [
        await http_rate(phase.api, phase.server, path, p.http_tasks, p.http_seconds)
        for _ in range(p.repeats)
    ]
    return sorted(runs, key=lambda r: r.per_s)[len(runs) // 2]


async def section_baseline(phase: Phase) -> None:
    api, tag = phase.api, phase.tag
    add = functools.partial(phase.report.add, "1 baseline")
    for side in (32, 128, 256):
        phase.media[side] = await api.upload(png_bytes(side, seed=side))
    job = await api.submit("convert", {"image": phase.media[32]}, wait_s=30)
    phase.job_path = f"/v1/jobs/{job['id']}"
    phase.health = h = await median_rate(phase, "/healthz")
    me = await median_rate(phase, "/v1/me")
    vs, cpu_vs = f"GET /healthz req/s ({tag})", f"server CPU per GET /healthz ({tag})"
    add(f"GET /healthz ({tag})", h.per_s, "req/s", 1.0, vs)
    add(f"GET /v1/me ({tag})", me.per_s, "req/s", me.per_s / h.per_s, vs)
    add(f"server CPU per GET /healthz ({tag})", h.server_cpu_us, "us", 1.0, cpu_vs)
    me_cpu = me.server_cpu_us
    add(f"server CPU per GET /v1/me ({tag})", me_cpu, "us", me_cpu / h.server_cpu_us, cpu_vs)
    phase.idle = await get_latencies(api, phase.job_path, phase.prof.latency_samples)
    for q in (50, 99):
        add(f"GET /v1/jobs/{{id}} p{q}, one at a time ({tag})", pct(phase.idle, q) * 1e3, "ms")
    phase.report.notes.append(
        f"{tag}: the bench client used {h.client_cpu:.2f} cores during the GET /healthz "
        f"load ({phase.prof.http_tasks} tasks); near 1.0 the client, not the server, bounds "
        "the req/s figures, which is why server CPU per request is reported too"
    )


async def section_throughput(phase: Phase, n: int) -> None:
    p = phase.prof
    image, tasks = phase.media[32], p.submit_tasks
    polled = [
        await convert_batch(phase.api, phase.server, image, n, tasks, listen=False)
        for _ in range(p.repeats)
    ]
    listened = await convert_batch(phase.api, phase.server, image, n, tasks, listen=True)
    median_batch = Batch(
        jobs_per_s=median([b.jobs_per_s for b in polled]),
        submit_per_s=median([b.submit_per_s for b in polled]),
        cpu_ms=median([b.cpu_ms for b in polled]),
        events_per_job=0.0,
    )
    throughput_rows(phase, n, median_batch, listened)


def throughput_rows(phase: Phase, n: int, polled: Batch, listened: Batch) -> None:
    p, lst, h, tag = polled, listened, phase.healthz, phase.tag
    add = functools.partial(phase.report.add, "2 throughput")
    what = f"{n} convert jobs, {tag}"
    vs, cpu_vs = f"GET /healthz req/s ({tag})", f"server CPU per GET /healthz ({tag})"
    add(f"jobs/s end-to-end ({what})", p.jobs_per_s, "jobs/s", p.jobs_per_s / h.per_s, vs)
    add(
        f"POST /v1/jobs/s meanwhile ({what})", p.submit_per_s, "req/s", p.submit_per_s / h.per_s, vs
    )
    add(f"server CPU per job ({what})", p.cpu_ms, "ms", p.cpu_ms * 1e3 / h.server_cpu_us, cpu_vs)
    same = f"same, no listener ({tag})"
    add(
        f"jobs/s, 1 /v1/events listener ({what})",
        lst.jobs_per_s,
        "jobs/s",
        lst.jobs_per_s / p.jobs_per_s,
        same,
    )
    add(f"server CPU per job, 1 listener ({what})", lst.cpu_ms, "ms", lst.cpu_ms / p.cpu_ms, same)
    add(f"events pushed to the listener per job ({what})", lst.events_per_job, "msg")
    add(f"final events the listener never got ({what})", lst.finals_missing, "jobs")


async def section_pickup(phase: Phase, *, split_vs: float = 0.0) -> float:
    """Pickup latency p50/p99 (split_vs: the in-process p50 a split run compares with)."""
    split = split_vs > 0
    n = phase.prof.split_pickup_samples if split else phase.prof.pickup_samples
    lat = await pickup_latencies(phase.api, phase.media[32], n, poll=split)
    if split:
        where, base, vs = "separate `pixelforge worker` process", split_vs, "in-process pickup p50"
    else:
        where, base = f"in-process, {phase.tag}", pct(phase.idle, 50)
        vs = f"idle GET /v1/jobs/{{id}} p50 ({phase.tag})"
    for q in (50, 99):
        metric = f"created -> started p{q}, idle queue ({where}, n={n})"
        phase.report.add("3 pickup", metric, pct(lat, q) * 1e3, "ms", pct(lat, q) / base, vs)
    return pct(lat, 50)


async def section_busy(phase: Phase) -> None:
    """GET /v1/jobs/{id} latency with idle workers, then while they all run x4plus."""
    tag, n = phase.tag, phase.prof.latency_samples
    idle = await get_latencies(phase.api, phase.job_path, n)
    busy, throughout = await busy_latencies(
        phase.api, phase.job_path, phase.media[128], phase.workers, n
    )
    for q in (50, 99):
        base = pct(idle, q)
        metric = f"GET /v1/jobs/{{id}} p{q}, workers idle ({tag})"
        phase.report.add("4 API latency", metric, base * 1e3, "ms")
        metric = f"GET /v1/jobs/{{id}} p{q}, {phase.workers} x4plus upscale running ({tag})"
        vs = f"same call and percentile, workers idle ({tag})"
        phase.report.add("4 API latency", metric, pct(busy, q) * 1e3, "ms", pct(busy, q) / base, vs)
    if not throughout:
        phase.report.notes.append(f"{tag}: an upscale ended before the latency sampling did")


async def section_fanout(phase: Phase) -> None:
    p, h, tag = phase.prof, phase.healthz, phase.tag
    add = functools.partial(phase.report.add, "5 ws fan-out")
    image = phase.media[256]
    solo = await solo_runs(phase.api, phase.server, image, p.ws_jobs, phase.media[32])
    runs = await fanout(phase.api, phase.server, image, p.ws_clients, p.ws_jobs)
    subs, vs = f"{p.ws_clients} subscribers, {tag}", f"GET /healthz req/s ({tag})"
    msgs = median([r.messages / r.run_s for r in runs])
    add(f"messages/s delivered per s of job runtime ({subs})", msgs, "msg/s", msgs / h.per_s, vs)
    prog = median([r.progress / r.run_s for r in runs])
    add(f"progress messages/s delivered ({subs})", prog, "msg/s", prog / h.per_s, vs)
    add("progress messages received / sent", median([r.delivered for r in runs]) * 100, "%")
    lags = [lag for r in runs for lag in r.lags]
    for q in (50, 99):
        add(f"delivery lag p{q} (event ts -> received)", pct(lags, q) * 1e3, "ms")
    solo_run, solo_cpu = median([s[0] for s in solo]), median([s[1] for s in solo])
    run_s = median([r.run_s for r in runs])
    alone = f"same job, no subscriber ({solo_run:.2f} s)"
    add(f"tiled upscale run_s ({subs})", run_s, "s", run_s / solo_run, alone)
    extra = median([(r.loop_cpu_s - solo_cpu) / r.messages for r in runs]) * 1e6
    cpu_vs = f"server CPU per GET /healthz ({tag})"
    add("event-loop CPU per delivered message", extra, "us", extra / h.server_cpu_us, cpu_vs)


async def measure_phase(
    server: Server, key: str, workers: int, prof: Profile, report: Report
) -> float:
    """Sections 1-5 against one server; returns the in-process pickup p50 (seconds)."""
    async with Api(server.url, key) as api:
        phase = Phase(api=api, server=server, workers=workers, prof=prof, report=report)
        progress(f"[{phase.tag}] baseline")
        await section_baseline(phase)
        progress(f"[{phase.tag}] pickup latency")
        pickup = await section_pickup(phase)
        for n in prof.convert_jobs:
            progress(f"[{phase.tag}] convert throughput, {n} jobs")
            await section_throughput(phase, n)
        progress(f"[{phase.tag}] API latency, idle then while upscaling")
        await section_busy(phase)
        if workers == 1:
            progress(f"[{phase.tag}] websocket fan-out")
            await section_fanout(phase)
        return pickup


async def measure_split(server: Server, key: str, prof: Profile, report: Report, vs: float) -> None:
    async with Api(server.url, key) as api:
        phase = Phase(api=api, server=server, workers=1, prof=prof, report=report)
        phase.media[32] = await api.upload(png_bytes(32))
        progress("[split worker] pickup latency")
        await section_pickup(phase, split_vs=vs)


def run(prof: Profile, worker_counts: list[int], split: bool, redis_url: str | None) -> Report:
    """Every phase on its own fresh data directory and account."""
    report, pickup_p50 = Report(), 0.0
    if redis_url:
        report.notes.append(f"servers ran with the Redis event bus ({redis_url})")
    for workers in worker_counts:
        with tempfile.TemporaryDirectory(prefix="pf-bench-") as tmp:
            key = create_account(Path(tmp))
            with running_server(Path(tmp), workers, redis_url=redis_url) as server:
                p50 = asyncio.run(measure_phase(server, key, workers, prof, report))
                pickup_p50 = pickup_p50 or p50
    if split and pickup_p50:
        with tempfile.TemporaryDirectory(prefix="pf-bench-") as tmp:
            key = create_account(Path(tmp))
            with running_server(Path(tmp), 1, split=True, redis_url=redis_url) as server:
                asyncio.run(measure_split(server, key, prof, report, pickup_p50))
    report.rows.sort(key=lambda r: r.section)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-run sizes (< 60 s)")
    parser.add_argument("--workers", default="1,2", help="worker counts to run (default 1,2)")
    parser.add_argument(
        "--split",
        action=argparse.BooleanOptionalAction,
        help="also measure pickup by a separate `pixelforge worker` process "
        "(default: on in full mode, off with --quick)",
    )
    parser.add_argument(
        "--redis-url", help="run the servers with PIXELFORGE_REDIS_URL (the Redis event bus)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    prof = QUICK if args.quick else FULL
    report = run(
        prof,
        [int(w) for w in args.workers.split(",")],
        split=not args.quick if args.split is None else args.split,
        redis_url=args.redis_url,
    )
    report.print()
    print("\npeers (published reference points, NOT measured here):")
    for peer in PEERS:
        print(f"  - {peer}")
    mode = "quick" if args.quick else "full"
    print(f"\n({mode} mode, {time.monotonic() - STARTED:.0f} s, {os.cpu_count()} CPUs)")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in report.rows], indent=2))


if __name__ == "__main__":
    main()
