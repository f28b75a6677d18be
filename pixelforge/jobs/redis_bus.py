"""Events across processes: publish through Redis, fan out to this process's subscribers."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict

import redis
from redis.exceptions import RedisError

from pixelforge.jobs.events import Event, InProcessBus, Subscription

log = logging.getLogger("pixelforge.events")


class RedisBus:
    """Every process publishes to one channel and listens on it.

    A worker process's progress then reaches the websockets held by the API process. When
    Redis is unreachable, events still reach this process's own subscribers, and the
    websocket routes fall back to reading the job row (they always re-check it).
    """

    def __init__(self, url: str, *, channel: str = "pf:events") -> None:
        self.local = InProcessBus()
        self.channel = channel
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the EventBus protocol -----------------------------------------------------------
    def publish(self, event: Event) -> None:
        try:
            self._redis.publish(self.channel, json.dumps(asdict(event)))
        except RedisError as e:
            log.warning("event bus: Redis publish failed (%s); delivering locally only", e)
            self.local.publish(event)

    def subscribe(self, *, account_id: str, job_id: str | None = None) -> Subscription:
        return self.local.subscribe(account_id=account_id, job_id=job_id)

    def has_subscribers(self, account_id: str) -> bool:
        return self.local.has_subscribers(account_id)

    def subscribed_accounts(self) -> set[str]:
        return self.local.subscribed_accounts()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._listen, name="pf-redis-events", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._redis.close()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(self.channel)
                try:
                    while not self._stop.is_set():
                        msg = pubsub.get_message(timeout=0.5)
                        if msg is not None:
                            self.local.publish(Event(**json.loads(msg["data"])))
                finally:
                    pubsub.close()
            except (RedisError, ValueError, TypeError) as e:
                log.warning("event bus: Redis listener error (%s); reconnecting", e)
                self._stop.wait(1.0)
