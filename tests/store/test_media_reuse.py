"""MediaService.ingest_upload(reuse_identical=True), on SQLite and on PostgreSQL."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.store.db import Database
from pixelforge.store.tables import Media
from tests.jobs.test_queue import Env, _png
from tests.jobs.test_queue import env as env  # the fixture, on both backends


def _other_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 48), (9, 9, 9)).save(buf, format="PNG")
    return buf.getvalue()


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


def test_upload_under_an_id_handed_out_in_advance(env: Env, db: Database) -> None:
    acc, _ = env.account("c@example.com")
    other, _ = env.account("d@example.com")
    media = env.media
    row = media.ingest_upload(account_id=acc, data=_png(), media_id="med_handed_out_1")
    assert row.id == "med_handed_out_1" and row.kind == "upload"
    # The same bytes put there again (a retried PUT): the stored row, nothing new.
    again = media.ingest_upload(account_id=acc, data=_png(), media_id="med_handed_out_1")
    assert again.id == row.id and again.storage_key == row.storage_key
    # Other bytes, or another account, at that id: 409, and the stored item is untouched.
    for account, data in ((acc, _other_png()), (other, _png())):
        with pytest.raises(PixelForgeError) as err:
            media.ingest_upload(account_id=account, data=data, media_id="med_handed_out_1")
        assert err.value.code == ErrorCode.conflict
    assert media.read_bytes(media.get(account_id=acc, media_id=row.id)) == media.read_bytes(row)
    with db.read() as s:
        mine = select(func.count()).select_from(Media).where(Media.account_id == acc)
        assert s.scalar(mine) == 2  # the env's upload and this one
