"""Serving overhead benchmark: a text_to_image job through the server vs the bare diffusers call.

Builds the tiny random-weight models (`create_tiny_models`) into a temporary data directory,
starts the real server (`python -m pixelforge serve`) on it in a subprocess, creates an
account through the CLI, and for `tiny-sd` at 64x64 measures, with the same torch thread
count on both sides (`torch.set_num_threads(T)` here, `PIXELFORGE_WORKER_THREADS=T` there):

1. a `text_to_image` job through HTTP + queue + worker (POST /v1/jobs, `Prefer: wait=60`:
   client wall time, the job's `timings.run_s` and `timings.queued_s`) against a direct
   in-process `StableDiffusionPipeline` call on the same model files (PIL output included),
   median of N interleaved pairs, as ratios; plus the server's cold first job;
2. throughput of 8 same-shape jobs submitted all at once vs one by one (jobs/s and ratio,
   against 8 direct calls back to back in the same rounds),
   and whether the server batched them (`result.batch_size` > 1);
3. the HTTP + queue + worker layer alone: median of (end-to-end - direct) per pair, in ms.

The machine is shared and noisy, so the figures are printed beside ratios measured in the
same run, and direct calls and jobs are interleaved pair by pair. See bench/README.md.

    .venv/bin/python bench/serving_overhead.py --quick   # < 90 s, threads 1 only
    .venv/bin/python bench/serving_overhead.py           # a few minutes, threads 1 and 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from common import STARTED, Report, free_port, pixelforge_cmd, progress

ROOT = Path(__file__).resolve().parent.parent
MODEL = "tiny-sd"
SIZE = 64
GUIDANCE = 0.0  # tiny-sd's default; sent explicitly so both sides do the same work
PROMPT = "a photo of a red cat on the moon, detailed"
TERMINAL = ("succeeded", "failed", "canceled")
HAVE_PROC = Path("/proc/self/stat").exists()
CLK_TCK = os.sysconf("SC_CLK_TCK") if HAVE_PROC else 100


@dataclass(frozen=True)
class Profile:
    """How much to measure; `QUICK` fits a smoke run (< 90 s), `FULL` a few minutes."""

    threads: tuple[int, ...]  # torch threads, one server each
    steps: tuple[tuple[int, int], ...]  # (num_inference_steps, interleaved pairs)
    batch: int  # same-shape jobs in the throughput section
    repeats: int  # throughput runs per mode (median)
    warmup: int  # warm-up calls per steps setting, on each side


QUICK = Profile(threads=(1,), steps=((4, 11), (20, 5)), batch=8, repeats=2, warmup=1)
FULL = Profile(threads=(1, 2), steps=((4, 41), (20, 15)), batch=8, repeats=5, warmup=2)


# -- results ---------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    """The median (mean of the middle two for an even count)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# -- the server under test -------------------------------------------------------------------
def bench_env(data_dir: Path, threads: int = 0) -> dict[str, str]:
    """The environment without inherited PIXELFORGE_* settings, plus the bench's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXELFORGE_")}
    env.update(
        PIXELFORGE_DATA_DIR=str(data_dir),
        PIXELFORGE_RATE_LIMIT_ENABLED="false",
        PIXELFORGE_BOOTSTRAP_ADMIN="false",
        PIXELFORGE_WORKER_THREADS=str(threads),
    )
    return env


def start_account(data_dir: Path) -> subprocess.Popen[str]:
    """`pixelforge accounts create` in the background (it overlaps the model build)."""
    cmd = pixelforge_cmd("accounts", "create", "--email", "bench@example.com", "--credits", "10000")
    return subprocess.Popen(
        cmd, env=bench_env(data_dir), cwd=ROOT, stdout=subprocess.PIPE, text=True
    )


def account_key(proc: subprocess.Popen[str]) -> str:
    """The API key printed by the `accounts create` started by `start_account`."""
    out, _ = proc.communicate(timeout=120)
    m = re.search(r"API key \(shown once\): (pf_\S+)", out or "")
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"`accounts create` failed (rc {proc.returncode}):\n{out}")
    return m.group(1)


@dataclass
class Server:
    """The running `pixelforge serve` process."""

    url: str
    proc: subprocess.Popen[bytes]

    def cpu_s(self) -> float:
        """CPU seconds (user + system, every thread) the server used so far."""
        if not HAVE_PROC:
            return float("nan")
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


@contextlib.contextmanager
def running_server(data_dir: Path, threads: int, workers: int) -> Iterator[Server]:
    """`pixelforge serve --workers N` with PIXELFORGE_WORKER_THREADS=threads."""
    port = free_port()
    log_path = data_dir / f"server-t{threads}.log"
    cmd = pixelforge_cmd("serve", "--port", str(port), "--workers", str(workers))
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            cmd, env=bench_env(data_dir, threads), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        server = Server(url=f"http://127.0.0.1:{port}", proc=proc)
        try:
            wait_healthy(server, log_path)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_healthy(server: Server, log: Path) -> None:
    """Until GET /healthz answers 200 (60 s at most; the log tail on failure)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.proc.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"server at {server.url} did not become healthy; log tail:\n{tail}")


# -- the two sides ---------------------------------------------------------------------------
@dataclass(frozen=True)
class JobRun:
    e2e_s: float  # client wall time of POST /v1/jobs with Prefer: wait=60
    run_s: float  # timings.run_s (started_at -> finished_at)
    queued_s: float  # timings.queued_s (created_at -> started_at)
    batch_size: int  # result["batch_size"] when the server reports one, else 1


class Api:
    """An authenticated asyncio httpx client that submits tiny-sd jobs and waits for them."""

    def __init__(self, base: str, key: str) -> None:
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32, keepalive_expiry=2)
        self.http = httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=180, limits=limits
        )

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def job(self, steps: int, seed: int) -> JobRun:
        """One text_to_image job, submitted with `Prefer: wait=60` (polled if it answers 202)."""
        params = {
            "model": MODEL,
            "prompt": PROMPT,
            "steps": steps,
            "width": SIZE,
            "height": SIZE,
            "guidance": GUIDANCE,
            "seed": seed,
        }
        body = {"pipeline": "text_to_image", "params": params}
        t0 = time.perf_counter()
        r = await self.http.post("/v1/jobs", json=body, headers={"Prefer": "wait=60"})
        if r.status_code >= 400:
            raise RuntimeError(f"POST /v1/jobs: {r.status_code} {r.text[:300]}")
        job = r.json()
        while job["status"] not in TERMINAL:
            await asyncio.sleep(0.02)
            job = (await self.http.get(f"/v1/jobs/{job['id']}")).raise_for_status().json()
        e2e = time.perf_counter() - t0
        if job["status"] != "succeeded":
            raise RuntimeError(f"job {job['id']} {job['status']}: {job.get('error')}")
        timings, result = job["timings"], job.get("result") or {}
        return JobRun(e2e, timings["run_s"], timings["queued_s"], int(result.get("batch_size", 1)))


class Direct:
    """The same model files in this process: a plain StableDiffusionPipeline, loaded once."""

    def __init__(self, model_dir: Path) -> None:
        diffusers: Any = importlib.import_module("diffusers")  # untyped (mypy --strict)
        self.pipe = diffusers.StableDiffusionPipeline.from_pretrained(
            model_dir, safety_checker=None, requires_safety_checker=False
        )
        self.pipe.set_progress_bar_config(disable=True)

    def call(self, steps: int, seed: int) -> tuple[float, float]:
        """(wall s, CPU s) of one generation, PIL image out."""
        import torch

        generator = torch.Generator("cpu").manual_seed(seed)
        cpu0, t0 = time.process_time(), time.perf_counter()
        images = self.pipe(
            prompt=PROMPT,
            num_inference_steps=steps,
            height=SIZE,
            width=SIZE,
            guidance_scale=GUIDANCE,
            generator=generator,
        ).images
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        assert images[0].size == (SIZE, SIZE)
        return wall, cpu


def build_direct(models_dir: Path) -> Direct:
    """Write the tiny models (as `pixelforge models create-tiny` does) and load tiny-sd."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # before the imports read it
    from diffusers.utils import logging as diffusers_logging

    from pixelforge.models.tiny import create_tiny_models

    diffusers_logging.disable_progress_bar()
    create_tiny_models(models_dir)
    return Direct(models_dir / MODEL)


# -- measurements ----------------------------------------------------------------------------
@dataclass
class Pairs:
    """Interleaved samples: one direct call and one job per pair, same steps and seed."""

    direct: list[float] = field(default_factory=list)  # wall s
    jobs: list[JobRun] = field(default_factory=list)

    def overhead(self) -> list[float]:
        """Per pair: end-to-end job time - direct call time (s)."""
        return [j.e2e_s - d for j, d in zip(self.jobs, self.direct, strict=True)]


async def measure_pairs(api: Api, direct: Direct, steps: int, n: int, warmup: int) -> Pairs:
    """`warmup` unrecorded calls on each side, then n pairs; the order flips every pair so
    drift in the machine's load hits both sides alike."""
    for i in range(warmup):
        direct.call(steps, 9000 + i)
        await api.job(steps, 9000 + i)
    pairs = Pairs()
    for i in range(n):
        seed = 1 + i
        if i % 2:
            job = await api.job(steps, seed)
            wall = direct.call(steps, seed)[0]
        else:
            wall = direct.call(steps, seed)[0]
            job = await api.job(steps, seed)
        pairs.direct.append(wall)
        pairs.jobs.append(job)
    return pairs


def latency_rows(report: Report, tag: str, steps: int, pairs: Pairs) -> None:
    """Section 1 (job vs direct) and section 3 (the layer's own cost) for one setting."""
    what = f"{steps} steps, {tag}, n={len(pairs.direct)}"
    direct = median(pairs.direct)
    e2e = median([j.e2e_s for j in pairs.jobs])
    run = median([j.run_s for j in pairs.jobs])
    vs = f"direct call ({steps} steps, {tag})"
    add = report.add
    add("1 job vs direct", f"direct diffusers call ({what})", direct * 1e3, "ms")
    add("1 job vs direct", f"job end-to-end ({what})", e2e * 1e3, "ms", e2e / direct, vs)
    add("1 job vs direct", f"job timings.run_s ({what})", run * 1e3, "ms", run / direct, vs)
    paired = median([j.e2e_s / d for j, d in zip(pairs.jobs, pairs.direct, strict=True)])
    add(
        "1 job vs direct", f"  end-to-end / direct, median of per-pair ratios ({what})", paired, "x"
    )
    paired = median([j.run_s / d for j, d in zip(pairs.jobs, pairs.direct, strict=True)])
    add("1 job vs direct", f"  run_s / direct, median of per-pair ratios ({what})", paired, "x")
    queued = median([j.queued_s for j in pairs.jobs])
    add("1 job vs direct", f"job timings.queued_s ({what})", queued * 1e3, "ms")
    layer = median(pairs.overhead())
    add("3 layer cost", f"end-to-end - direct ({what})", layer * 1e3, "ms", layer / direct, vs)
    worker = median([j.run_s - d for j, d in zip(pairs.jobs, pairs.direct, strict=True)])
    add("3 layer cost", f"  of which run_s - direct, in the worker ({what})", worker * 1e3, "ms")
    api_side = median([j.e2e_s - j.run_s - j.queued_s for j in pairs.jobs])
    add(
        "3 layer cost",
        f"  of which e2e - queued_s - run_s, HTTP/API ({what})",
        api_side * 1e3,
        "ms",
    )


@dataclass(frozen=True)
class Batch:
    jobs_per_s: float  # n / (last answer - first POST sent)
    cpu_s: float  # server CPU per job
    sizes: tuple[int, ...]  # each job's result.batch_size (1: it ran alone)


async def batch_run(api: Api, server: Server, steps: int, n: int, concurrent: bool) -> Batch:
    """n same-shape jobs, all submitted at once or one after the other."""
    seeds = range(100, 100 + n)
    cpu0, t0 = server.cpu_s(), time.perf_counter()
    if concurrent:
        runs = list(await asyncio.gather(*(api.job(steps, s) for s in seeds)))
    else:
        runs = [await api.job(steps, s) for s in seeds]
    wall = time.perf_counter() - t0
    return Batch(n / wall, (server.cpu_s() - cpu0) / n, tuple(r.batch_size for r in runs))


MODES = ("direct", "one by one", "all at once")  # section 2, rotated every round


def direct_run(direct: Direct, steps: int, n: int) -> Batch:
    """n direct calls back to back: the in-process baseline for the same n images."""
    t0, cpu = time.perf_counter(), 0.0
    for seed in range(100, 100 + n):
        cpu += direct.call(steps, seed)[1]
    return Batch(n / (time.perf_counter() - t0), cpu / n, (1,) * n)


async def section_throughput(
    report: Report, api: Api, server: Server, tag: str, prof: Profile, direct: Direct
) -> None:
    """Section 2: jobs/s one by one vs all at once, and n direct calls back to back in the
    same rounds (median over `repeats` rounds; the order rotates every round)."""
    steps, n = prof.steps[0][0], prof.batch
    runs: dict[str, list[Batch]] = {mode: [] for mode in MODES}
    for i in range(prof.repeats):
        for mode in MODES[i % 3 :] + MODES[: i % 3]:
            if mode == "direct":
                runs[mode].append(direct_run(direct, steps, n))
            else:
                concurrent = mode == "all at once"
                runs[mode].append(await batch_run(api, server, steps, n, concurrent))
    base, seq, conc = (runs[mode] for mode in MODES)
    rate = {mode: median([b.jobs_per_s for b in runs[mode]]) for mode in MODES}
    what = f"{n} jobs, {steps} steps, {tag}"
    vs = f"direct calls back to back ({what})"
    add = functools.partial(report.add, "2 throughput")
    add(vs, rate["direct"], "images/s")
    ratio = rate["one by one"] / rate["direct"]
    add(f"one by one ({what})", rate["one by one"], "jobs/s", ratio, vs)
    ratio = rate["all at once"] / rate["one by one"]
    add(f"all at once ({what})", rate["all at once"], "jobs/s", ratio, "one by one")
    cpu, direct_cpu = median([b.cpu_s for b in seq]), median([b.cpu_s for b in base])
    vs_cpu = f"CPU per direct call, back to back ({what})"
    add(f"server CPU per job, one by one ({what})", cpu * 1e3, "ms", cpu / direct_cpu, vs_cpu)
    largest = max(max(b.sizes) for b in seq + conc)
    add(f"largest result.batch_size ({what})", largest, "jobs")
    batched = [sum(size > 1 for size in b.sizes) for b in conc]
    report.notes.append(
        f"{tag}: the server batched same-shape jobs: all at once, {'/'.join(map(str, batched))} "
        f"of {n} jobs per run reported batch_size > 1 (sizes {', '.join(sizes(conc))}); "
        f"one by one, the largest batch_size was {max(max(b.sizes) for b in seq)}"
        if largest > 1
        else f"{tag}: no batching seen (no result.batch_size > 1)"
    )


def sizes(batches: list[Batch]) -> list[str]:
    """Each run's calls as 'count x batch size', e.g. '1x4 + 1x3 + 1x1' for 8 jobs."""
    out = []
    for b in batches:
        counts = Counter(b.sizes)
        calls = [f"{counts[k] // k}x{k}" for k in sorted(counts, reverse=True)]
        out.append(" + ".join(calls))
    return out


async def measure_server(
    server: Server, key: str, direct: Direct, threads: int, prof: Profile, report: Report
) -> list[Pairs]:
    """Sections 1-3 against one server whose worker runs torch with `threads` threads."""
    tag = f"{threads} thread{'s' if threads > 1 else ''}"
    async with Api(server.url, key) as api:
        progress(f"[{tag}] cold first job (server imports torch, loads {MODEL})")
        cold = await api.job(prof.steps[0][0], 4242)
        pairs: list[Pairs] = []
        for steps, n in prof.steps:
            progress(f"[{tag}] {n} pairs of direct call + job, {steps} steps")
            pairs.append(await measure_pairs(api, direct, steps, n, prof.warmup))
            latency_rows(report, tag, steps, pairs[-1])
        warm = median([j.e2e_s for j in pairs[0].jobs])
        metric = f"cold first job end-to-end ({prof.steps[0][0]} steps, {tag})"
        vs = f"warm job end-to-end ({prof.steps[0][0]} steps, {tag})"
        report.add("1 job vs direct", metric, cold.e2e_s, "s", cold.e2e_s / warm, vs)
        metric = f"  of which timings.run_s, model load included ({tag})"
        report.add("1 job vs direct", metric, cold.run_s, "s")
        progress(f"[{tag}] throughput, {prof.batch} jobs one by one vs all at once")
        await section_throughput(report, api, server, tag, prof, direct)
    return pairs


def thread_rows(report: Report, prof: Profile, results: dict[int, list[Pairs]]) -> None:
    """Section 4: each thread count against the first one, direct and through the server."""
    base_threads = prof.threads[0]
    for threads in prof.threads[1:]:
        for (steps, _), base, pairs in zip(
            prof.steps, results[base_threads], results[threads], strict=True
        ):
            vs = f"same, {base_threads} thread{'s' if base_threads > 1 else ''}"
            for what, values, base_values in (
                ("direct call", pairs.direct, base.direct),
                ("job end-to-end", [j.e2e_s for j in pairs.jobs], [j.e2e_s for j in base.jobs]),
            ):
                metric = f"{what} ({steps} steps, {threads} threads)"
                value = median(values)
                report.add("4 threads", metric, value * 1e3, "ms", value / median(base_values), vs)


def run(prof: Profile, workers: int) -> Report:
    """One data directory, account and model build; one server per thread count."""
    import torch

    report = Report()
    with tempfile.TemporaryDirectory(prefix="pf-bench-") as tmp:
        data_dir = Path(tmp)
        account = start_account(data_dir)
        progress("building the tiny models and loading tiny-sd in this process")
        direct = build_direct(data_dir / "models")
        key = account_key(account)
        results: dict[int, list[Pairs]] = {}
        for threads in prof.threads:
            torch.set_num_threads(threads)
            progress(f"starting the server: --workers {workers}, worker threads {threads}")
            with running_server(data_dir, threads, workers) as server:
                coro = measure_server(server, key, direct, threads, prof, report)
                results[threads] = asyncio.run(coro)
    thread_rows(report, prof, results)
    report.rows.sort(key=lambda r: r.section)
    report.notes.append(
        f"model {MODEL} (random weights), {SIZE}x{SIZE}, guidance {GUIDANCE}, server "
        f"--workers {workers}; torch threads the same on both sides"
    )
    return report


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run the profile, print the table (and write --json)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-run sizes (< 90 s)")
    parser.add_argument(
        "--threads", help="torch thread counts, one server each (default: 1 quick, 1,2 full)"
    )
    parser.add_argument("--workers", type=int, default=1, help="server worker threads (1)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    prof = QUICK if args.quick else FULL
    if args.threads:
        threads = tuple(int(t) for t in args.threads.split(","))
        prof = Profile(threads, prof.steps, prof.batch, prof.repeats, prof.warmup)
    report = run(prof, args.workers)
    report.print()
    mode = "quick" if args.quick else "full"
    print(f"\n({mode} mode, {time.monotonic() - STARTED:.0f} s, {os.cpu_count()} CPUs)")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in report.rows], indent=2))


if __name__ == "__main__":
    main()
