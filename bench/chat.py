"""Chat benchmark: SmolLM2 through the server's OpenAI door vs the bare ChatModel call.

Converts the default chat model (`smollm2-135m-instruct`, from its wheel's GGUF) into a
temporary data directory, loads it here as a `ChatModel`, starts the real server
(`python -m pixelforge serve`) on the same files in a subprocess with the same torch thread
count, and measures:

1. decode rate: a streamed `POST /v1/chat/completions` over loopback (tokens after the first,
   over the time from the first content chunk to the last) vs `ChatModel.stream()` in this
   process on the same prompt, greedy (the same tokens on both sides), pairs interleaved;
2. time to first token: request sent -> first content chunk vs call -> first delta; the
   difference of the medians is what the server adds (HTTP, queue pickup, events, SSE);
3. n=3 candidates in one call vs 3 sequential calls (non-streamed, same max_tokens);
4. 8 concurrent streamed chats: aggregate tokens/s, TTFT p50/p95 (queueing included);
5. transformers vs llama.cpp (profile `smollm2-135m-instruct-cpp`), when llama-cpp-python is
   installed.

The machine is shared and noisy: figures are printed beside ratios taken in the same run,
and no figure is asserted. See bench/README.md ("Chat").

    .venv/bin/python bench/chat.py --quick   # ~2 minutes on 2 cores
    .venv/bin/python bench/chat.py           # several minutes
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import STARTED, Report, progress
from serving_overhead import account_key, running_server, start_account

MODEL = "smollm2-135m-instruct"
CPP_MODEL = "smollm2-135m-instruct-cpp"
PROMPT = [{"role": "user", "content": "Write a long story about a dragon who learns to paint."}]


@dataclass(frozen=True)
class Profile:
    max_tokens: int
    pairs: int  # interleaved server / direct samples for sections 1-2
    n_rounds: int  # rounds of section 3
    concurrent: int  # chats at once in section 4
    concurrent_tokens: int


QUICK = Profile(max_tokens=48, pairs=5, n_rounds=1, concurrent=8, concurrent_tokens=24)
FULL = Profile(max_tokens=128, pairs=7, n_rounds=3, concurrent=8, concurrent_tokens=64)


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Run:
    ttft_s: float  # request (or call) -> first piece of text
    decode_s: float  # first piece -> last piece
    tokens: int  # completion tokens
    job_id: str = ""

    @property
    def rate(self) -> float:
        return (self.tokens - 1) / self.decode_s if self.decode_s > 0 else float("nan")


# -- the two sides ---------------------------------------------------------------------------
async def stream_chat(
    http: httpx.AsyncClient,
    *,
    model: str,
    max_tokens: int,
    n: int = 1,
    seed: int = 0,
    temperature: float = 0.0,
) -> Run:
    """One streamed chat completion, timed from the client's side."""
    body = {
        "model": model,
        "messages": PROMPT,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "seed": seed,
        "n": n,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    first = last = None
    tokens = 0
    job_id = ""
    async with http.stream("POST", "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code}: {(await r.aread()).decode()}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            job_id = chunk["id"].split("-", 1)[1]
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk["choices"]:
                if choice["delta"].get("content"):
                    last = time.perf_counter()
                    first = first or last
    assert first is not None and last is not None
    return Run(first - t0, last - first, tokens, job_id)


async def model_ttft_s(http: httpx.AsyncClient, run: Run) -> float:
    """The job's own time to its first token (model lookup, context fit, prefill, first
    decode step), from its result's timings: the rest of the client's TTFT is the server's
    layers (HTTP, submit, queue pickup, events, SSE)."""
    job = (await http.get(f"/v1/jobs/{run.job_id}")).raise_for_status().json()
    timings = job["result"]["timings"]
    return float(timings["load_ms"] + timings["ttft_ms"]) / 1e3


def direct_chat(llm: Any, max_tokens: int) -> Run:
    t0 = time.perf_counter()
    first = last = None
    tokens = 0
    for delta in llm.stream(PROMPT, max_tokens=max_tokens, temperature=0, seed=0):
        tokens += delta.tokens
        if delta.text:
            last = time.perf_counter()
            first = first or last
    assert first is not None and last is not None
    return Run(first - t0, last - first, tokens)


def load_direct(models_dir: Path, threads: int) -> Any:
    from pixelforge.models.base import CHAT
    from pixelforge.models.manager import ModelManager

    manager = ModelManager(models_dir, device="cpu", threads=threads)
    with manager.load(MODEL, task=CHAT) as llm:  # converts the GGUF once, into models_dir
        return llm


# -- sections --------------------------------------------------------------------------------
async def rate_and_ttft(report: Report, http: httpx.AsyncClient, llm: Any, prof: Profile) -> None:
    server: list[Run] = []
    direct: list[Run] = []
    for i in range(prof.pairs):
        progress(f"pair {i + 1}/{prof.pairs}")
        server.append(await stream_chat(http, model=MODEL, max_tokens=prof.max_tokens))
        direct.append(await asyncio.to_thread(direct_chat, llm, prof.max_tokens))
    s_rate, d_rate = median([r.rate for r in server]), median([r.rate for r in direct])
    sec = "1 decode rate"
    report.add(sec, "direct ChatModel.stream()", d_rate, "tokens/s")
    report.add(sec, "server, streamed SSE", s_rate, "tokens/s", s_rate / d_rate, "direct")
    s_ttft, d_ttft = median([r.ttft_s for r in server]), median([r.ttft_s for r in direct])
    sec = "2 time to first token"
    report.add(sec, "direct", d_ttft * 1e3, "ms")
    report.add(sec, "server", s_ttft * 1e3, "ms", s_ttft / d_ttft, "direct")
    report.add(sec, "server overhead (difference of medians)", (s_ttft - d_ttft) * 1e3, "ms")
    layers = [r.ttft_s - await model_ttft_s(http, r) for r in server]
    report.add(sec, "server layers (client TTFT - the job's own TTFT)", median(layers) * 1e3, "ms")
    report.notes.append(
        f"tokens per sample: server {[r.tokens for r in server]}, direct "
        f"{[r.tokens for r in direct]} (greedy: the same text on both sides)"
    )


async def candidates(report: Report, http: httpx.AsyncClient, prof: Profile) -> None:
    """Sampled (temperature 1, seeded) so the three candidates differ; candidates may end
    early, so the figure is completion tokens per second of wall time."""
    one: list[float] = []
    three: list[float] = []
    walls: dict[str, list[float]] = {"one": [], "three": []}
    kw: dict[str, Any] = {"model": MODEL, "max_tokens": prof.max_tokens, "temperature": 1.0}
    for i in range(prof.n_rounds):
        t0 = time.perf_counter()
        run = await stream_chat(http, n=3, seed=i, **kw)
        walls["one"].append(time.perf_counter() - t0)
        one.append(run.tokens / walls["one"][-1])
        t0, tokens = time.perf_counter(), 0
        for k in range(3):
            tokens += (await stream_chat(http, n=1, seed=10 * i + k, **kw)).tokens
        walls["three"].append(time.perf_counter() - t0)
        three.append(tokens / walls["three"][-1])
    sec = "3 three candidates"
    report.add(sec, "3 sequential calls (n=1)", median(three), "tokens/s")
    report.add(
        sec, "one call, n=3", median(one), "tokens/s", median(one) / median(three), "sequential"
    )
    report.notes.append(
        f"section 3 wall times: n=3 {[round(w, 1) for w in walls['one']]} s, 3 calls "
        f"{[round(w, 1) for w in walls['three']]} s"
    )


async def concurrent(report: Report, http: httpx.AsyncClient, prof: Profile) -> None:
    t0 = time.perf_counter()
    runs = await asyncio.gather(
        *(
            stream_chat(http, model=MODEL, max_tokens=prof.concurrent_tokens, seed=i)
            for i in range(prof.concurrent)
        )
    )
    wall = time.perf_counter() - t0
    single = await stream_chat(http, model=MODEL, max_tokens=prof.concurrent_tokens)
    sec = f"4 {prof.concurrent} concurrent chats"
    total = sum(r.tokens for r in runs)
    single_rate = single.tokens / (single.ttft_s + single.decode_s)
    report.add(sec, "one chat alone (end to end)", single_rate, "tokens/s")
    report.add(sec, "aggregate", total / wall, "tokens/s", total / wall / single_rate, "alone")
    report.add(sec, "TTFT p50", pct([r.ttft_s for r in runs], 0.5) * 1e3, "ms")
    report.add(sec, "TTFT p95", pct([r.ttft_s for r in runs], 0.95) * 1e3, "ms")


async def llama_cpp(report: Report, http: httpx.AsyncClient, prof: Profile) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        print("  .. skipped: llama-cpp-python not installed", flush=True)
        report.notes.append("section 5 skipped: llama-cpp-python not installed")
        return
    if (await http.get(f"/v1/models/{CPP_MODEL}")).status_code != 200:
        print(f"  .. skipped: no {CPP_MODEL} profile in this build", flush=True)
        report.notes.append(f"section 5 skipped: no {CPP_MODEL} profile in this build")
        return
    runs = {m: [] for m in (MODEL, CPP_MODEL)}  # type: ignore[var-annotated]
    for _ in range(prof.pairs):
        for m in runs:
            runs[m].append(await stream_chat(http, model=m, max_tokens=prof.max_tokens))
    t_rate = median([r.rate for r in runs[MODEL]])
    c_rate = median([r.rate for r in runs[CPP_MODEL]])
    sec = "5 transformers vs llama.cpp"
    report.add(sec, "transformers", t_rate, "tokens/s")
    report.add(sec, "llama.cpp", c_rate, "tokens/s", c_rate / t_rate, "transformers")
    t_ttft = median([r.ttft_s for r in runs[MODEL]])
    c_ttft = median([r.ttft_s for r in runs[CPP_MODEL]])
    report.add(sec, "TTFT transformers", t_ttft * 1e3, "ms")
    report.add(sec, "TTFT llama.cpp", c_ttft * 1e3, "ms", c_ttft / t_ttft, "transformers")


async def measure(url: str, key: str, llm: Any, prof: Profile, report: Report) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=600) as http:
        progress("warm-up: the server loads SmolLM2 on its first chat job")
        await stream_chat(http, model=MODEL, max_tokens=4)
        await asyncio.to_thread(direct_chat, llm, 4)
        progress("sections 1-2: decode rate and time to first token")
        await rate_and_ttft(report, http, llm, prof)
        progress("section 3: n=3 vs 3 calls")
        await candidates(report, http, prof)
        progress("section 4: concurrent chats")
        await concurrent(report, http, prof)
        progress("section 5: llama.cpp")
        await llama_cpp(report, http, prof)


def run(prof: Profile, threads: int, workers: int) -> Report:
    report = Report()
    with tempfile.TemporaryDirectory(prefix="pf-bench-chat-") as tmp:
        data_dir = Path(tmp)
        account = start_account(data_dir)
        progress("converting and loading SmolLM2 in this process")
        llm = load_direct(data_dir / "models", threads)
        key = account_key(account)
        progress(f"starting the server ({workers} workers, torch threads {threads})")
        with running_server(data_dir, threads, workers) as server:
            asyncio.run(measure(server.url, key, llm, prof, report))
    report.notes.append(f"torch threads {threads} on both sides; server workers {workers}")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (~2 minutes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides (1)")
    parser.add_argument("--workers", type=int, default=8, help="server worker threads (8)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    prof = QUICK if args.quick else FULL
    report = run(prof, args.threads, args.workers)
    report.print()
    mode = "quick" if args.quick else "full"
    print(f"\n({mode} mode, {time.monotonic() - STARTED:.0f} s, {os.cpu_count()} CPUs)")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in report.rows], indent=2))


if __name__ == "__main__":
    main()
