"""Rate limits (GCRA): an in-process limiter and a Redis one shared by several API processes."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger("pixelforge.ratelimit")

# Summing window/limit `limit` times in floating point can land a hair past the window and
# refuse the last request of a legal burst; a microsecond of slack is far below any real rate.
_SLACK_S = 1e-6


class RateLimiter(Protocol):
    """Counts requests per key; `hit` says how long to wait, 0.0 when the request may go."""

    def hit(self, key: str, *, limit: int, window_s: float) -> float:
        """Record one request for `key`; 0.0 if allowed, else seconds until one would be."""
        ...

    def close(self) -> None:
        """Release connections; the limiter is not used afterwards."""
        ...


def _check(limit: int, window_s: float) -> None:
    if limit <= 0:
        raise ValueError(f"rate limit must be a positive number of requests, got {limit}")
    if not (window_s > 0 and math.isfinite(window_s)):
        raise ValueError(f"rate limit window must be positive seconds, got {window_s}")


class MemoryRateLimiter:
    """GCRA in this process: one theoretical arrival time (TAT) per key, behind a lock.

    A burst of `limit` requests is allowed from cold, then one every window_s/limit seconds.
    Refused requests change nothing, so a client hammering a closed door does not extend its ban.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        prune_every: int = 10_000,
    ) -> None:
        self._clock = clock
        self._prune_every = prune_every
        self._tat: dict[str, float] = {}
        self._new_keys = 0
        self._lock = threading.Lock()

    def hit(self, key: str, *, limit: int, window_s: float) -> float:
        _check(limit, window_s)
        emission = window_s / limit
        with self._lock:
            # Read the clock under the lock so TATs only ever move forward between threads.
            now = self._clock()
            tat = max(self._tat.get(key, now), now)
            new_tat = tat + emission
            wait = new_tat - window_s - now
            if wait > _SLACK_S:
                return wait
            if key not in self._tat:
                self._new_keys += 1
            self._tat[key] = new_tat
            if self._new_keys >= self._prune_every:
                self._prune(now)
        return 0.0

    def _prune(self, now: float) -> None:
        # A key whose TAT has passed is indistinguishable from one never seen, so dropping
        # it is free; pruning every N new keys keeps the cost amortised O(1) per request.
        self._tat = {k: v for k, v in self._tat.items() if v > now}
        self._new_keys = 0

    def __len__(self) -> int:
        return len(self._tat)

    def close(self) -> None:
        with self._lock:
            self._tat.clear()


# Times are integer microseconds from the server's TIME so every API process shares one clock.
# The TAT is stored with %.17g because Lua's default number formatting keeps only 14 digits,
# which would round a microsecond timestamp to 100 us. The key lives only until its TAT:
# after that it is the same as a key never seen.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + emission
local wait = new_tat - window - now
if wait > 1 then
  return math.ceil(wait)
end
local ttl_ms = math.max(1, math.ceil((new_tat - now) / 1000))
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', ttl_ms)
return 0
"""

_WARN_EVERY_S = 30.0


class RedisRateLimiter:
    """GCRA in one Lua script on Redis; fails open (allows) when Redis cannot be reached."""

    def __init__(self, url: str, *, prefix: str = "pf:rl:", timeout_s: float = 0.5) -> None:
        self._prefix = prefix
        # No retries: a rate limit is not worth stalling a request for; one short try, then open.
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._client.register_script(_GCRA_LUA)
        self._last_warning = -math.inf

    def hit(self, key: str, *, limit: int, window_s: float) -> float:
        _check(limit, window_s)
        window_us = window_s * 1e6
        try:
            wait_us = self._script(
                keys=[self._prefix + key], args=[repr(window_us / limit), repr(window_us)]
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            self._warn(exc)
            return 0.0
        return int(wait_us) / 1e6

    def _warn(self, exc: Exception) -> None:
        # While Redis is down every request lands here; one line per interval is enough.
        # An unlocked read-modify-write may let two threads both log: harmless.
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_S:
            self._last_warning = now
            logger.warning("rate limiter cannot reach Redis, allowing requests: %s", exc)

    def close(self) -> None:
        self._client.close()


def create_rate_limiter(redis_url: str | None) -> RateLimiter:
    """The Redis limiter when a URL is configured (several processes), else the in-process one."""
    if redis_url:
        return RedisRateLimiter(redis_url)
    return MemoryRateLimiter()
