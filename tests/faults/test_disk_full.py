"""The disk full while a job's result is written: failed, not charged, nothing left behind.

The media directory is a small tmpfs of the test's own (mounting needs root; skipped
otherwise), filled to the last byte; the database lives outside it.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.faults.harness import photo, settle, submit, wait_final
from tests.live import LiveServer

pytestmark = pytest.mark.slow

GRANTED = 5


@pytest.fixture
def small_media_dir(tmp_path: Path) -> Iterator[Path]:
    """data/media on a 1 MiB tmpfs, unmounted afterwards."""
    media = tmp_path / "data" / "media"
    media.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the media dir needs root")
    mount = ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(media)]
    done = subprocess.run(mount, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield media
    finally:
        subprocess.run(["umount", "-l", str(media)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the filesystem has no byte left; returns it."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
        try:  # the last partial page
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def parts(directory: Path) -> list[Path]:
    return list(directory.rglob("*.part"))


def test_disk_full_while_writing_the_result(small_media_dir: Path) -> None:
    settings = make_settings(small_media_dir.parent, workers=1)
    with LiveServer(settings) as srv:
        account_id, key = srv.account(credits=GRANTED)
        with srv.client(key) as c:
            media_id = srv.upload(c, photo())["id"]
            filler = fill(small_media_dir)

            r = submit(c, media_id, "req-1")
            assert r.status_code == 202, r.text
            failed = wait_final(srv, key, r.json()["id"])
            # An upload meanwhile: refused with 503 (retry later), not a 500.
            up = c.post("/v1/media", files={"file": ("x.png", photo(), "image/png")})

            filler.unlink()  # space again: the same work now succeeds
            r2 = submit(c, media_id, "req-2")
            ok = wait_final(srv, key, r2.json()["id"])
            me = c.get("/v1/me").json()
        outcome = settle(
            srv.services.db, account_id=account_id, job_id=failed["id"], granted=GRANTED
        )
    print(outcome.line("disk full while the result is written"), failed["error"])
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] == "unavailable"
    assert "No space left on device" in failed["error"]["message"]
    assert up.status_code == 503, up.text
    assert up.json()["error"]["code"] == "unavailable"
    assert parts(small_media_dir) == []  # no half-written file keeps the space
    assert ok["status"] == "succeeded", ok
    assert (me["credits_available"], me["credits_held"]) == (GRANTED - 1, 0)
