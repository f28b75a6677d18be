"""Tests for the GCRA rate limiters: in-process with a fake clock, and against the local Redis."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from pixelforge.accounts.ratelimit import (
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    create_rate_limiter,
)

EPS = 1e-6


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def burst(limiter: RateLimiter, key: str, n: int, *, limit: int, window_s: float) -> list[float]:
    return [limiter.hit(key, limit=limit, window_s=window_s) for _ in range(n)]


# --- memory -------------------------------------------------------------------------------


def test_memory_burst_of_exactly_limit_then_refused_for_one_interval() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    assert burst(limiter, "k", 10, limit=10, window_s=60) == [0.0] * 10
    retry = limiter.hit("k", limit=10, window_s=60)
    assert 0 < retry <= 60 / 10 + EPS
    # Refused requests do not consume quota: asking again says the same.
    assert limiter.hit("k", limit=10, window_s=60) == pytest.approx(retry)

    clock.advance(retry)
    assert limiter.hit("k", limit=10, window_s=60) == 0.0
    assert limiter.hit("k", limit=10, window_s=60) > 0


@pytest.mark.parametrize(("limit", "window_s"), [(3, 1.0), (7, 0.7), (100, 60.0), (1, 5.0)])
def test_memory_burst_exact_with_awkward_floats(limit: int, window_s: float) -> None:
    limiter = MemoryRateLimiter(clock=FakeClock(123456.789))
    assert burst(limiter, "k", limit, limit=limit, window_s=window_s) == [0.0] * limit
    retry = limiter.hit("k", limit=limit, window_s=window_s)
    assert retry == pytest.approx(window_s / limit)


def test_memory_steady_traffic_at_the_rate_passes() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    assert burst(limiter, "k", 5, limit=5, window_s=10) == [0.0] * 5
    for _ in range(100):
        clock.advance(2.0)
        assert limiter.hit("k", limit=5, window_s=10) == 0.0


def test_memory_keys_are_independent() -> None:
    limiter = MemoryRateLimiter(clock=FakeClock())
    assert burst(limiter, "a", 2, limit=2, window_s=60) == [0.0, 0.0]
    assert limiter.hit("a", limit=2, window_s=60) > 0
    assert limiter.hit("b", limit=2, window_s=60) == 0.0


def test_memory_prunes_expired_keys() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock, prune_every=100)
    for i in range(10_000):
        assert limiter.hit(f"ip-{i}", limit=5, window_s=1.0) == 0.0
        clock.advance(0.01)
    # Each key's TAT is 0.2 s after its hit, so only the last ~20 are live; the dict holds
    # at most those plus one pruning period of new keys.
    assert len(limiter) <= 100 + 20


def test_memory_pruning_keeps_live_state() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock, prune_every=10)
    assert burst(limiter, "busy", 3, limit=3, window_s=3600) == [0.0] * 3
    for i in range(100):
        limiter.hit(f"other-{i}", limit=3, window_s=0.001)
        clock.advance(0.01)
    assert limiter.hit("busy", limit=3, window_s=3600) > 0


def test_memory_is_thread_safe() -> None:
    limiter = MemoryRateLimiter()
    allowed = [0] * 8
    start = threading.Barrier(8)

    def worker(i: int) -> None:
        start.wait()
        for _ in range(200):
            if limiter.hit("shared", limit=500, window_s=3600) == 0.0:
                allowed[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(allowed) == 500


@pytest.mark.parametrize(("limit", "window_s"), [(0, 60.0), (-1, 60.0), (5, 0.0), (5, -1.0)])
def test_rejects_nonsense_rates(limit: int, window_s: float) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        MemoryRateLimiter().hit("k", limit=limit, window_s=window_s)


def test_create_without_url_is_memory() -> None:
    limiter = create_rate_limiter(None)
    assert isinstance(limiter, MemoryRateLimiter)
    limiter.close()


# --- redis --------------------------------------------------------------------------------

REDIS_URL = os.environ.get("PIXELFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The local Redis; skipped when absent unless PIXELFORGE_REQUIRE_SERVICES=1."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        reason = f"Redis not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("PIXELFORGE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (PIXELFORGE_REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix private to one test; its keys are deleted afterwards (nothing global)."""
    p = f"pf:test:rl:{uuid.uuid4().hex}:"
    yield p
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=p + "*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.mark.services
def test_redis_burst_of_exactly_limit_then_refused(redis_url: str, prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=prefix)
    try:
        assert burst(limiter, "k", 10, limit=10, window_s=60) == [0.0] * 10
        retry = limiter.hit("k", limit=10, window_s=60)
        assert 0 < retry <= 60 / 10 + EPS
        # Refused requests do not consume quota.
        assert 0 < limiter.hit("k", limit=10, window_s=60) <= retry
        assert limiter.hit("other", limit=10, window_s=60) == 0.0
    finally:
        limiter.close()


@pytest.mark.services
def test_redis_allows_again_after_retry_after(redis_url: str, prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=prefix)
    try:
        assert burst(limiter, "k", 2, limit=2, window_s=0.2) == [0.0, 0.0]
        retry = limiter.hit("k", limit=2, window_s=0.2)
        assert 0 < retry <= 0.1 + EPS
        time.sleep(retry + 0.01)
        assert limiter.hit("k", limit=2, window_s=0.2) == 0.0
    finally:
        limiter.close()


@pytest.mark.services
def test_redis_key_expires_with_its_tat(redis_url: str, prefix: str) -> None:
    limiter = RedisRateLimiter(redis_url, prefix=prefix)
    client = redis.Redis.from_url(redis_url)
    try:
        limiter.hit("k", limit=5, window_s=60)
        assert 0 < client.pttl(prefix + "k") <= 60_000 / 5
    finally:
        client.close()
        limiter.close()


@pytest.mark.services
def test_redis_instances_share_counts(redis_url: str, prefix: str) -> None:
    a = RedisRateLimiter(redis_url, prefix=prefix)
    b = RedisRateLimiter(redis_url, prefix=prefix)
    try:
        results = [(a if i % 2 else b).hit("k", limit=6, window_s=60) for i in range(6)]
        assert results == [0.0] * 6
        assert a.hit("k", limit=6, window_s=60) > 0
        assert b.hit("k", limit=6, window_s=60) > 0
    finally:
        a.close()
        b.close()


def test_redis_fails_open_quickly(caplog: pytest.LogCaptureFixture) -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1")
    try:
        with caplog.at_level(logging.WARNING, logger="pixelforge.ratelimit"):
            started = time.monotonic()
            assert limiter.hit("k", limit=1, window_s=60) == 0.0
            assert limiter.hit("k", limit=1, window_s=60) == 0.0
            assert time.monotonic() - started < 2
    finally:
        limiter.close()
    warnings = [r for r in caplog.records if r.name == "pixelforge.ratelimit"]
    assert len(warnings) == 1  # throttled: one line, not one per request
    assert "Redis" in warnings[0].getMessage()


def test_redis_fails_open_when_the_server_hangs() -> None:
    # A listener that never answers: the connection succeeds, the reply times out.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        limiter = RedisRateLimiter(f"redis://127.0.0.1:{port}")
        try:
            started = time.monotonic()
            assert limiter.hit("k", limit=1, window_s=60) == 0.0
            assert time.monotonic() - started < 2
        finally:
            limiter.close()


def test_create_with_url_is_redis() -> None:
    limiter = create_rate_limiter("redis://127.0.0.1:1")
    assert isinstance(limiter, RedisRateLimiter)
    limiter.close()
