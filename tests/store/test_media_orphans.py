"""MediaService.sweep_orphans: stored files no row names are removed once old, on both backends.

A worker killed between writing a result file and committing its job's success leaves such a
file (tests/faults counts it); so does a write that died half-way (`.part`).
"""

from __future__ import annotations

import os
import time

from pixelforge.store.db import Database
from tests.jobs.test_queue import Env
from tests.jobs.test_queue import env as env  # the fixture, on both backends

DAY = 24 * 3600


def _age(path: os.PathLike[str], seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_old_files_without_a_row_are_swept_and_nothing_else(env: Env, db: Database) -> None:
    acc, upload = env.account("a@example.com")
    media, store = env.media, env.media.store
    kept_key = media.get(account_id=acc, media_id=upload).storage_key
    orphan = store.put(b"result of a job whose worker died", ext="png")
    fresh_orphan = store.put(b"result of a job still running", ext="png")
    part = store.path(orphan).with_name("0123.png.part")  # a write that died half-way
    part.write_bytes(b"half")
    for path in (store.path(kept_key), store.path(orphan), part):
        _age(path, 2 * DAY)

    assert media.sweep_orphans(min_age_s=DAY) == 2  # the orphan and the .part file
    assert not part.exists() and not store.path(orphan).exists()
    # The row's file (however old) and a recent file without a row stay.
    assert store.path(kept_key).exists() and store.path(fresh_orphan).exists()
    assert media.read_bytes(media.get(account_id=acc, media_id=upload))
    assert media.sweep_orphans(min_age_s=DAY) == 0


def test_sweeping_in_batches_checks_every_file(env: Env, db: Database) -> None:
    env.account("b@example.com")
    store = env.media.store
    keys = [store.put(f"orphan {i}".encode(), ext="png") for i in range(7)]
    for key in keys:
        _age(store.path(key), 2 * DAY)
    assert env.media.sweep_orphans(min_age_s=DAY, batch=3) == 7
    assert not any(store.path(k).exists() for k in keys)
