"""Queue positions pushed to listening accounts, rate-limited so bursts stay cheap."""

from __future__ import annotations

import logging
import threading
import time

from pixelforge.jobs.events import Event, EventBus
from pixelforge.jobs.queue import queue_order
from pixelforge.jobs.status import EventType
from pixelforge.store.db import Database

log = logging.getLogger("pixelforge.queue")


class PositionNotifier:
    """Tells listening accounts where their queued jobs stand, after submits and claims.

    At most one update per `interval_s` (a burst of submits would otherwise send one message
    per queued job per submit), for the first `limit` places; an update skipped inside the
    interval is sent when it ends, so the last state is never lost.
    """

    def __init__(self, db: Database, bus: EventBus, *, interval_s: float = 0.25, limit: int = 100):
        self.db = db
        self.bus = bus
        self.interval_s = interval_s
        self.limit = limit
        self._lock = threading.Lock()
        self._last = 0.0
        self._pending = False

    def __call__(self) -> None:
        with self._lock:
            wait = self._last + self.interval_s - time.monotonic()
            if wait > 0:
                if not self._pending:
                    self._pending = True
                    timer = threading.Timer(wait, self._trailing)
                    timer.daemon = True
                    timer.start()
                return
            self._last = time.monotonic()
        self._publish()

    def _trailing(self) -> None:
        with self._lock:
            self._pending = False
            self._last = time.monotonic()
        try:
            self._publish()
        except Exception:  # a timer thread has no caller to tell; the next update will do
            log.exception("publishing queue positions failed")

    def _publish(self) -> None:
        listening = self.bus.subscribed_accounts()
        if not listening:
            return
        with self.db.read() as s:
            order = queue_order(s, limit=self.limit)
        for pos, (job_id, account_id) in enumerate(order, start=1):
            if account_id in listening:
                self.bus.publish(
                    Event(
                        job_id=job_id,
                        account_id=account_id,
                        type=EventType.QUEUED,
                        queue_position=pos,
                    )
                )
