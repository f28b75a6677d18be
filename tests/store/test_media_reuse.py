"""MediaService.ingest_upload(reuse_identical=True), on SQLite and on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import update

from pixelforge.clock import now
from pixelforge.store.db import Database
from pixelforge.store.tables import Media
from tests.jobs.test_queue import Env, _png
from tests.jobs.test_queue import env as env  # the fixture, on both backends


def test_reuse_identical_returns_the_live_upload(env: Env, db: Database) -> None:
    acc, first = env.account("a@example.com")
    other, _ = env.account("b@example.com")
    media = env.media
    assert media.ingest_upload(account_id=acc, data=_png(), reuse_identical=True).id == first
    # Without the flag, or for another account, a new item.
    second = media.ingest_upload(account_id=acc, data=_png())
    assert second.id != first
    assert media.ingest_upload(account_id=other, data=_png(), reuse_identical=True).id != first
    newest = media.ingest_upload(account_id=acc, data=_png(), reuse_identical=True)
    assert newest.id == second.id  # the most recent identical upload is the one reused

    # A result with the same bytes is not an upload; one about to expire is not reused.
    with db.write() as s:
        s.execute(update(Media).where(Media.account_id == acc).values(kind="result"))
    fresh = media.ingest_upload(account_id=acc, data=_png(), reuse_identical=True)
    assert fresh.kind == "upload" and fresh.id != newest.id
    with db.write() as s:
        s.execute(update(Media).where(Media.id == fresh.id).values(expires_at=now() + 5))
    later = media.ingest_upload(account_id=acc, data=_png(), reuse_identical=True)
    assert later.id != fresh.id
    media.delete(account_id=acc, media_id=later.id)
    assert media.ingest_upload(account_id=acc, data=_png(), reuse_identical=True).id != later.id
