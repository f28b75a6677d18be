"""The in-process bus: fan-out, filtering, and what a slow reader may lose."""

from __future__ import annotations

import asyncio

from pixelforge.jobs.events import Event, InProcessBus, Subscription


def test_slow_reader_keeps_every_final_event() -> None:
    async def run() -> list[Event]:
        bus = InProcessBus()
        sub = bus.subscribe(account_id="a")
        n = Subscription.MAX_PENDING
        for i in range(3 * n):  # nobody reads meanwhile
            sub.offer(Event(job_id=f"j{i}", account_id="a", type="progress"))
            sub.offer(Event(job_id=f"j{i}", account_id="a", type="succeeded"))
        got = []
        while (ev := await sub.get(0.01)) is not None:
            got.append(ev)
        sub.close()
        return got

    got = asyncio.run(run())
    finals = [e for e in got if e.type == "succeeded"]
    assert len(finals) == 3 * Subscription.MAX_PENDING  # none lost, in order
    assert [e.job_id for e in finals] == [f"j{i}" for i in range(3 * Subscription.MAX_PENDING)]


def test_filters_by_account_and_job_across_threads() -> None:
    import threading

    async def run() -> tuple[list[str], list[str]]:
        bus = InProcessBus()
        everything = bus.subscribe(account_id="a")
        one_job = bus.subscribe(account_id="a", job_id="j2")
        events = [
            Event(job_id=j, account_id=acc, type="queued")
            for acc, j in (("a", "j1"), ("b", "j9"), ("a", "j2"))
        ]
        t = threading.Thread(target=lambda: [bus.publish(e) for e in events])
        t.start()
        t.join()
        a = [e.job_id for e in [await everything.get(1), await everything.get(1)] if e]
        b = [e.job_id for e in [await one_job.get(1)] if e]
        assert await one_job.get(0.05) is None
        return a, b

    assert asyncio.run(run()) == (["j1", "j2"], ["j2"])
