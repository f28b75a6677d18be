"""One event model for every channel, and the in-process bus that fans events out."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pixelforge.clock import now
from pixelforge.jobs.status import EventType


@dataclass(frozen=True)
class Event:
    job_id: str
    account_id: str
    type: EventType
    progress: float = 0.0
    step: int = 0
    total: int = 0
    queue_position: int | None = None
    error_code: str | None = None
    message: str | None = None
    preview: str | None = None  # data URI, only on `preview` events
    # Only on `token` events: the candidate, its new text, and on its last piece why it ended.
    index: int | None = None
    delta: str | None = None
    finish_reason: str | None = None
    ts: float = field(default_factory=now)

    def __post_init__(self) -> None:
        # Events rebuilt from JSON (the Redis bus) carry the type as a plain string.
        object.__setattr__(self, "type", EventType(self.type))

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        del d["account_id"]
        d["type"] = self.type.value
        for key in ("preview", "index", "delta", "finish_reason"):
            if d[key] is None:
                del d[key]
        return d

    @property
    def terminal(self) -> bool:
        return self.type.terminal


class Subscription:
    """Events for one account, optionally one job, buffered for one reader."""

    MAX_PENDING = 1000
    # Generated text is never dropped for a slow reader below this (a stream must add up to
    # the reply); one generation is at most max_tokens x n pieces.
    MAX_PENDING_TEXT = 100_000

    def __init__(self, bus: InProcessBus, account_id: str, job_id: str | None) -> None:
        self.account_id = account_id
        self.job_id = job_id
        self.loop = asyncio.get_running_loop()
        self._pending: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._bus = bus

    def matches(self, ev: Event) -> bool:
        return ev.account_id == self.account_id and self.job_id in (None, ev.job_id)

    def offer(self, ev: Event) -> None:
        """Called on the subscriber's loop. A slow reader loses progress, never a final event.

        Past MAX_PENDING, new non-final events are dropped (text pieces only past
        MAX_PENDING_TEXT) and a final one evicts the oldest non-final; final events alone may
        exceed the bound (one per job, so it stays small).
        """
        if len(self._pending) >= self.MAX_PENDING:
            keep = ev.type == EventType.TOKEN and len(self._pending) < self.MAX_PENDING_TEXT
            if not ev.terminal and not keep:
                return
            victim = next((e for e in self._pending if not e.terminal), None)
            if victim is not None:
                self._pending.remove(victim)
        self._pending.append(ev)
        self._ready.set()

    async def get(self, wait_s: float) -> Event | None:
        """The next event, or None after `wait_s` seconds without one."""
        if not self._pending:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), wait_s)
            except TimeoutError:
                return None
        return self._pending.popleft()

    def close(self) -> None:
        self._bus.unsubscribe(self)


class EventBus(Protocol):
    """Where events go: this process's subscribers, or every process's (Redis)."""

    def start(self) -> None: ...
    def close(self) -> None: ...
    def publish(self, event: Event) -> None: ...
    def subscribe(self, *, account_id: str, job_id: str | None = None) -> Subscription: ...
    def has_subscribers(self, account_id: str) -> bool: ...
    def subscribed_accounts(self) -> set[str]: ...


class InProcessBus:
    """Fan-out inside one process. `publish` is thread-safe and never blocks the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []

    def start(self) -> None:
        """Nothing to start: delivery happens in `publish`."""

    def close(self) -> None:
        """Nothing to release."""

    def subscribe(self, *, account_id: str, job_id: str | None = None) -> Subscription:
        sub = Subscription(self, account_id, job_id)
        with self._lock:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def has_subscribers(self, account_id: str) -> bool:
        with self._lock:
            return any(s.account_id == account_id for s in self._subs)

    def subscribed_accounts(self) -> set[str]:
        with self._lock:
            return {s.account_id for s in self._subs}

    def publish(self, event: Event) -> None:
        with self._lock:
            targets = [s for s in self._subs if s.matches(event)]
        for sub in targets:
            try:
                sub.loop.call_soon_threadsafe(sub.offer, event)
            except RuntimeError:  # the subscriber's loop is closed
                self.unsubscribe(sub)
