"""Job metadata through the native API: kept with the job, capped, part of idempotency."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from skimage import data
from sqlalchemy import func, select

from pixelforge.api.routes.jobs import MAX_METADATA_BYTES
from pixelforge.jobs.service import MAX_META_DEPTH
from pixelforge.store.tables import Job
from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes

META = {"order": "A-1042", "tags": ["catalog", "spring"], "nested": {"n": 3, "ok": True}}


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[LiveServer]:
    """No workers: the jobs stay queued, which is all these tests need."""
    with LiveServer(make_settings(tmp_path, workers=0)) as server:
        yield server


@pytest.fixture
def user(srv: LiveServer) -> Iterator[tuple[httpx.Client, str]]:
    """A client of a new account, and an image it uploaded."""
    _, key = srv.account(credits=20)
    with srv.client(key) as c:
        photo = png_bytes(Image.fromarray(data.astronaut()).resize((32, 32)))
        yield c, srv.upload(c, photo)["id"]


def _job(media_id: str, **extra: Any) -> dict[str, Any]:
    return {"pipeline": "convert", "params": {"image": media_id}, **extra}


def _jobs(srv: LiveServer) -> int:
    with srv.services.db.read() as s:
        return int(s.scalar(select(func.count()).select_from(Job)) or 0)


def test_metadata_round_trip(srv: LiveServer, user: tuple[httpx.Client, str]) -> None:
    c, media = user
    r = c.post("/v1/jobs", json=_job(media, metadata=META))
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["metadata"] == META
    assert c.get(f"/v1/jobs/{job['id']}").json()["metadata"] == META
    [listed] = c.get("/v1/jobs").json()["data"]
    assert listed["metadata"] == META
    with srv.services.db.read() as s:  # on the job row itself
        row = s.get(Job, job["id"])
    assert row is not None and row.meta == META
    assert c.delete(f"/v1/jobs/{job['id']}").json()["metadata"] == META

    plain = c.post("/v1/jobs", json=_job(media)).json()
    assert plain["metadata"] is None
    assert c.post("/v1/jobs", json=_job(media, metadata={})).json()["metadata"] is None


def test_metadata_size_cap_and_shape(srv: LiveServer, user: tuple[httpx.Client, str]) -> None:
    c, media = user
    overhead = len(json.dumps({"k": ""}, separators=(",", ":")))
    at_limit = {"k": "x" * (MAX_METADATA_BYTES - overhead)}
    ok = c.post("/v1/jobs", json=_job(media, metadata=at_limit))
    assert ok.status_code == 202, ok.text
    assert ok.json()["metadata"] == at_limit
    before = _jobs(srv)

    over = {"k": "x" * (MAX_METADATA_BYTES - overhead + 1)}
    r = c.post("/v1/jobs", json=_job(media, metadata=over))
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_parameter" and err["message"].startswith("metadata")
    assert "16 KB" in err["message"]

    for bad in ([1, 2], "text", 7):
        r = c.post("/v1/jobs", json=_job(media, metadata=bad))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"].startswith("metadata"), r.text
    nan = json.dumps(_job(media, metadata={"x": 1.5})).replace("1.5", "NaN")
    r = c.post("/v1/jobs", content=nan, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("metadata"), r.text
    assert _jobs(srv) == before  # nothing refused was stored


def test_idempotency_covers_metadata(srv: LiveServer, user: tuple[httpx.Client, str]) -> None:
    c, media = user
    body = _job(media, metadata=META, request_id="order-7")
    first = c.post("/v1/jobs", json=body)
    assert first.status_code == 202, first.text
    # The same metadata in another key order is the same request.
    reordered = {**body, "metadata": dict(reversed(list(META.items())))}
    again = c.post("/v1/jobs", json=reordered)
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"

    for other in ({**META, "order": "A-1043"}, None):
        r = c.post("/v1/jobs", json={**body, "metadata": other})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "idempotency_mismatch"
    # And a key first used without metadata refuses a retry that adds some.
    c.post("/v1/jobs", json=_job(media, request_id="order-8"))
    r = c.post("/v1/jobs", json=_job(media, request_id="order-8", metadata={"late": 1}))
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_mismatch"
    assert _jobs(srv) == 2


def _nested(depth: int) -> dict[str, Any]:
    meta: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        meta = {"k": meta}
    return meta


def test_metadata_depth_is_capped(srv: LiveServer) -> None:
    """Metadata nested past MAX_META_DEPTH is refused before anything is stored or held (it
    used to be accepted, then every response with it was a 500)."""
    acc, key = srv.account(credits=20)
    deep = _nested(300)
    assert len(json.dumps(deep)) < MAX_METADATA_BYTES
    with srv.client(key) as c:
        media = srv.upload(c, png_bytes(Image.fromarray(data.astronaut()).resize((32, 32))))["id"]
        ok = c.post("/v1/jobs", json=_job(media, metadata=_nested(MAX_META_DEPTH)))
        assert ok.status_code == 202, ok.text
        held = srv.services.accounts.balance(acc)
        for depth in (MAX_META_DEPTH + 1, 300):
            r = c.post("/v1/jobs", json=_job(media, metadata=_nested(depth)))
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["code"] == "invalid_parameter"
            assert err["message"] == f"metadata: nested more than {MAX_META_DEPTH} levels deep"
        assert _jobs(srv) == 1
        assert srv.services.accounts.balance(acc) == held  # nothing more held or charged
        listed = c.get("/v1/jobs")
        assert listed.status_code == 200, listed.text
        assert [j["id"] for j in listed.json()["data"]] == [ok.json()["id"]]


def test_listing_survives_a_too_deep_stored_row(srv: LiveServer) -> None:
    """A row stored before the depth limit existed is listed without its metadata, not a 500."""
    _, key = srv.account(credits=20)
    with srv.client(key) as c:
        media = srv.upload(c, png_bytes(Image.fromarray(data.astronaut()).resize((32, 32))))["id"]
        job = c.post("/v1/jobs", json=_job(media, metadata=META)).json()
        with srv.services.db.write() as s:
            row = s.get(Job, job["id"])
            assert row is not None
            row.meta = _nested(300)
        for path in ("/v1/jobs", f"/v1/jobs/{job['id']}"):
            r = c.get(path)
            assert r.status_code == 200, (path, r.text)
        assert c.get(f"/v1/jobs/{job['id']}").json()["metadata"] is None
