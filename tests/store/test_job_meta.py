"""Job metadata in JobService: kept with the job, searched by path, updated; on SQLite and
on PostgreSQL."""

from __future__ import annotations

import pytest

from pixelforge.clock import now
from pixelforge.errors import PixelForgeError
from tests.jobs.test_queue import Env
from tests.jobs.test_queue import env as env  # the fixture, on both backends

TYPE = ("dialect", "type")
GONE = ("dialect", "deletedAt")


def _meta(kind: str) -> dict[str, object]:
    return {"dialect": {"type": kind, "request": {"name": "Astrid", "n": 2}}}


def test_search_filters_on_metadata_newest_first(env: Env) -> None:
    acc, image = env.account("a@example.com")
    other, other_image = env.account("b@example.com")
    a = env.submit(acc, image, meta=_meta("A"))
    b = env.submit(acc, image, meta=_meta("B"), params={"quality": 80})
    plain = env.submit(acc, image, params={"quality": 70})
    env.submit(other, other_image, meta=_meta("A"))

    def ids(**kw: object) -> tuple[list[str], int]:
        jobs, total = env.jobs.search(account_id=acc, statuses=["queued"], **kw)  # type: ignore[arg-type]
        return [j.id for j in jobs], total

    assert ids() == ([plain, b, a], 3)
    assert ids(meta={TYPE: None}) == ([b, a], 2)
    assert ids(meta={TYPE: ["A"]}) == ([a], 1)
    assert ids(meta={TYPE: ["A", "B"]}, limit=1) == ([b], 2)
    assert ids(meta={TYPE: None}, offset=1) == ([a], 2)
    assert ids(meta={("dialect", "request", "name"): ["Astrid"]}) == ([b, a], 2)
    assert env.jobs.search(account_id=acc, statuses=["succeeded"]) == ([], 0)
    assert ids(created_after=now() + 1) == ([], 0)

    job = env.jobs.update_meta(
        account_id=acc, job_id=a, changes={"dialect": {**_meta("A")["dialect"], "deletedAt": 1.5}}
    )
    assert job.meta is not None and job.meta["dialect"]["deletedAt"] == 1.5
    assert ids(meta={TYPE: None}, meta_unset=[GONE]) == ([b], 1)
    assert env.job(a).meta == job.meta
    # None removes a key; nothing left is no metadata at all.
    assert env.jobs.update_meta(account_id=acc, job_id=a, changes={"dialect": None}).meta is None
    assert env.job(a).meta is None
    with pytest.raises(PixelForgeError) as e:
        env.jobs.update_meta(account_id=other, job_id=b, changes={"x": 1})
    assert e.value.status == 404
