"""ModelCache: LRU under a budget, in-use models pinned, one load per key."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from pixelforge.models.cache import ModelCache, module_bytes

MB = 2**20


def block(n_mb: int) -> Any:
    """A torch module of exactly n_mb MiB of float32 parameters."""
    import torch

    return torch.nn.Linear(n_mb * MB // 4, 1, bias=False)


def loader(n_mb: int, calls: list[str], key: str) -> Any:
    def load() -> Any:
        calls.append(key)
        return block(n_mb)

    return load


def touch(cache: ModelCache, key: str, calls: list[str], n_mb: int = 1) -> None:
    with cache.use(key, device="cpu", load=loader(n_mb, calls, key), dtype="float32"):
        pass


def test_module_bytes_counts_parameters_once() -> None:
    import torch

    lin = block(1)
    assert module_bytes(lin) == MB
    assert module_bytes([lin, lin]) == MB  # shared weights count once
    assert module_bytes(torch.nn.Sequential(lin, lin)) == MB


def test_budget_evicts_the_least_recently_used_idle_model() -> None:
    cache = ModelCache(cpu_budget_bytes=3 * MB, gpu_budget_bytes=0)
    calls: list[str] = []
    for key in ("a", "b", "c"):
        touch(cache, key, calls)
    touch(cache, "a", calls)  # a is now the most recently used; b the least
    touch(cache, "d", calls)
    assert [r["id"] for r in cache.resident()] == ["d", "a", "c"]
    assert calls == ["a", "b", "c", "d"]
    assert cache.used_bytes("cpu") == 3 * MB
    touch(cache, "b", calls)  # evicted, so loaded again
    assert calls[-1] == "b" and "c" not in cache


def test_a_model_in_use_is_never_evicted(caplog: pytest.LogCaptureFixture) -> None:
    cache = ModelCache(cpu_budget_bytes=2 * MB, gpu_budget_bytes=0)
    calls: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with cache.use("held", device="cpu", load=loader(1, calls, "held")):
            holding.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert holding.wait(10)
        touch(cache, "x", calls)
        with caplog.at_level(logging.WARNING, logger="pixelforge.models.cache"):
            touch(cache, "y", calls, n_mb=2)  # needs everything: only x may go
        resident = {r["id"]: r for r in cache.resident()}
        assert set(resident) == {"held", "y"}
        assert resident["held"]["in_use"] and not resident["y"]["in_use"]
        assert "over the cpu budget" in caplog.text
        assert not cache.evict("held")
    finally:
        release.set()
        t.join()
    assert cache.resident()[-1] == {
        "id": "held",
        "device": "cpu",
        "dtype": "",
        "bytes": MB,
        "in_use": False,
    }
    assert cache.evict("held") and "held" not in cache


def test_two_threads_loading_one_model_load_it_once() -> None:
    cache = ModelCache(cpu_budget_bytes=10 * MB, gpu_budget_bytes=0)
    calls: list[str] = []
    got: list[Any] = []

    def slow_load() -> Any:
        calls.append("m")
        time.sleep(0.3)
        return block(1)

    def worker() -> None:
        with cache.use("m", device="cpu", load=slow_load) as value:
            got.append(value)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["m"] and cache.loads == 1
    assert len(got) == 4 and all(v is got[0] for v in got)


def test_a_failed_load_leaves_nothing_behind() -> None:
    cache = ModelCache(cpu_budget_bytes=2 * MB, gpu_budget_bytes=0)

    def broken() -> Any:
        raise OSError("disk on fire")

    with pytest.raises(OSError), cache.use("m", device="cpu", load=broken, estimate_bytes=MB):
        pass
    assert "m" not in cache and cache.used_bytes("cpu") == 0
    calls: list[str] = []
    touch(cache, "m", calls, n_mb=2)  # the failed load's reservation was given back
    assert calls == ["m"]


def test_gpu_and_cpu_budgets_are_separate() -> None:
    cache = ModelCache(cpu_budget_bytes=1 * MB, gpu_budget_bytes=1 * MB)
    calls: list[str] = []
    touch(cache, "cpu-model", calls)
    # A "cuda" entry only needs the value and bookkeeping; nothing here touches a GPU.
    with cache.use("gpu-model", device="cuda:0", load=loader(1, calls, "gpu-model")):
        pass
    assert {r["id"] for r in cache.resident()} == {"cpu-model", "gpu-model"}
    assert cache.used_bytes("cpu") == cache.used_bytes("cuda") == MB
