"""Jobs through the real server: cancel, blocking mode, idempotency over HTTP, rate limits."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from skimage import data
from sqlalchemy import func, select
from websockets.sync.client import connect

from pixelforge.store.tables import Job, LedgerEntry
from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes


def _photo(side: int = 64) -> bytes:
    return png_bytes(Image.fromarray(data.astronaut()).resize((side, side)))


def _slow_params(media_id: str) -> dict[str, Any]:
    # x4plus in many small tiles: seconds of work with a cancel point per tile.
    return {"image": media_id, "scale": 4, "model": "realesrgan-x4plus", "tile": 32}


def _ledger(srv: LiveServer, job_id: str) -> list[str]:
    with srv.services.db.read() as s:
        return sorted(s.scalars(select(LedgerEntry.kind).where(LedgerEntry.job_id == job_id)))


def test_cancel_queued_job_is_immediate_and_free(tmp_path: Path) -> None:
    with LiveServer(make_settings(tmp_path, workers=0)) as srv:
        _, key = srv.account(credits=3)
        with srv.client(key) as c:
            media = srv.upload(c, _photo())
            job = c.post("/v1/jobs", json={"pipeline": "convert", "params": {"image": media["id"]}})
            assert job.json()["queue_position"] == 1
            assert c.get("/v1/me").json()["credits_held"] == 1
            r = c.delete(f"/v1/jobs/{job.json()['id']}")
            assert r.status_code == 200 and r.json()["status"] == "canceled"
            me = c.get("/v1/me").json()
        assert (me["credits_available"], me["credits_held"]) == (3, 0)
        assert _ledger(srv, job.json()["id"]) == ["hold", "void"]


def test_cancel_running_job_stops_at_next_step(server: LiveServer) -> None:
    _, key = server.account(credits=5)
    with server.client(key) as c:
        media = server.upload(c, _photo(128))
        job = c.post("/v1/jobs", json={"pipeline": "upscale", "params": _slow_params(media["id"])})
        job_id = job.json()["id"]
        with connect(
            f"{server.url.replace('http', 'ws')}/v1/jobs/{job_id}/events?token={key}"
        ) as ws:
            for raw in ws:
                ev = json.loads(raw)
                if ev["type"] == "progress" and ev["step"] >= 1:
                    c.delete(f"/v1/jobs/{job_id}")
                    break
            final = [json.loads(raw) for raw in ws][-1]
        assert final["type"] == "canceled"
        done = server.wait_job(c, job_id)
        assert done["status"] == "canceled" and done["outputs"] == []
        assert done["step"] < done["total"]
        assert c.get("/v1/me").json()["credits_available"] == 5
    assert _ledger(server, job_id) == ["hold", "void"]


def test_blocking_mode_returns_the_finished_job(server: LiveServer) -> None:
    _, key = server.account(credits=5)
    with server.client(key) as c:
        media = server.upload(c, _photo())
        body = {"pipeline": "convert", "params": {"image": media["id"], "format": "webp"}}
        r = c.post("/v1/jobs", json=body, headers={"Prefer": "wait=30"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "succeeded" and r.json()["outputs"]
        assert r.headers["Preference-Applied"] == "wait=30"


def test_blocking_mode_times_out_with_202(tmp_path: Path) -> None:
    with LiveServer(make_settings(tmp_path, workers=0)) as srv:
        _, key = srv.account(credits=5)
        with srv.client(key) as c:
            media = srv.upload(c, _photo())
            body = {"pipeline": "convert", "params": {"image": media["id"]}}
            r = c.post("/v1/jobs", json=body, headers={"Prefer": "wait=1"})
        assert r.status_code == 202 and r.json()["status"] == "queued"


def test_idempotent_retries_over_http(server: LiveServer) -> None:
    account_id, key = server.account(credits=50)
    with server.client(key) as c:
        media = server.upload(c, _photo())
    body = {"pipeline": "convert", "params": {"image": media["id"]}, "request_id": "order-42"}

    def submit(_: int) -> httpx.Response:
        with server.client(key) as cl:
            return cl.post("/v1/jobs", json=body)

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(submit, range(20)))
    assert {r.status_code for r in responses} == {202}
    assert len({r.json()["id"] for r in responses}) == 1
    job_id = responses[0].json()["id"]
    with server.services.db.read() as s:
        n_jobs = s.scalar(select(func.count()).where(Job.account_id == account_id))
        holds = s.scalar(
            select(func.count()).where(LedgerEntry.job_id == job_id, LedgerEntry.kind == "hold")
        )
    assert (n_jobs, holds) == (1, 1)
    with server.client(key) as c:
        # The header form is the same key space; a different request under it is refused.
        same = c.post(
            "/v1/jobs", json={**body, "request_id": None}, headers={"Idempotency-Key": "order-42"}
        )
        assert same.json()["id"] == job_id and same.headers["Idempotent-Replayed"] == "true"
        other = {**body, "params": {"image": media["id"], "format": "jpg"}}
        r = c.post("/v1/jobs", json=other)
        assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_mismatch"
        server.wait_job(c, job_id)
        me = c.get("/v1/me").json()
        assert (me["credits_available"], me["credits_held"]) == (49, 0)  # charged once


def test_rate_limit_per_key_gives_429_with_retry_after(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        rate_limit_enabled=True,
        rate_limit_per_key="5/minute",
        rate_limit_per_ip="1000/minute",
    )
    with LiveServer(settings) as srv:
        _, key = srv.account()
        _, other = srv.account()
        with srv.client(key) as c:
            codes = [c.get("/v1/me").status_code for _ in range(8)]
            r = c.get("/v1/me")
        assert codes[:5] == [200] * 5 and codes[5:] == [429] * 3
        assert r.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(r.headers["Retry-After"]) <= 12
        with srv.client(other) as c:  # another key has its own budget
            assert c.get("/v1/me").status_code == 200


def test_rate_limit_per_ip(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, rate_limit_enabled=True, rate_limit_per_ip="4/5minutes")
    with LiveServer(settings) as srv, srv.client() as c:
        codes = [c.get("/v1/pipelines").status_code for _ in range(6)]
        assert codes == [401] * 4 + [429] * 2
        r = c.get("/v1/me")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 60
        assert c.get("/healthz").status_code == 200  # liveness is never limited


def test_account_event_stream_sees_queue_changes_and_completion(tmp_path: Path) -> None:
    with LiveServer(make_settings(tmp_path, workers=0)) as srv:
        _, key = srv.account(credits=10)
        with srv.client(key) as c:
            media = srv.upload(c, _photo())
            url = f"{srv.url.replace('http', 'ws')}/v1/events"
            with connect(url, additional_headers={"X-API-Key": key}) as ws:
                ids = [
                    c.post(
                        "/v1/jobs", json={"pipeline": "convert", "params": {"image": media["id"]}}
                    ).json()["id"]
                    for _ in range(2)
                ]
                # Start a worker now: the second job moves from position 2 to 1, then both end.
                # (Updates are throttled to one per 0.25 s; unthrottled here to see each.)
                srv.services.runner.positions.interval_s = 0.0
                srv.services.pool.workers = 1
                srv.services.pool.start()
                seen: list[dict[str, Any]] = []
                while sum(e["type"] == "succeeded" for e in seen) < 2:
                    seen.append(json.loads(ws.recv(timeout=30)))
        positions = [
            e["queue_position"] for e in seen if e["job_id"] == ids[1] and e["type"] == "queued"
        ]
        assert 2 in positions and 1 in positions
        assert {e["job_id"] for e in seen if e["type"] == "succeeded"} == set(ids)
        assert all(set(e) >= {"job_id", "type", "progress", "step", "total", "ts"} for e in seen)


def test_socket_of_a_finished_job_sends_final_event_and_closes(server: LiveServer) -> None:
    _, key = server.account(credits=5)
    with server.client(key) as c:
        media = server.upload(c, _photo())
        body = {"pipeline": "convert", "params": {"image": media["id"]}}
        job = c.post("/v1/jobs", json=body, headers={"Prefer": "wait=30"}).json()
    assert job["status"] == "succeeded"
    url = f"{server.url.replace('http', 'ws')}/v1/jobs/{job['id']}/events"
    with connect(url, additional_headers={"Authorization": f"Key {key}"}) as ws:
        events = [json.loads(raw) for raw in ws]  # ends when the server closes
    assert [e["type"] for e in events] == ["succeeded"]
    assert events[0]["job_id"] == job["id"] and events[0]["progress"] == 1.0


def test_job_socket_of_a_queued_job_reports_its_position(tmp_path: Path) -> None:
    with LiveServer(make_settings(tmp_path, workers=0)) as srv:
        _, key = srv.account(credits=5)
        with srv.client(key) as c:
            media = srv.upload(c, _photo())
            body = {"pipeline": "convert", "params": {"image": media["id"]}}
            ids = [c.post("/v1/jobs", json=body).json()["id"] for _ in range(2)]
        url = f"{srv.url.replace('http', 'ws')}/v1/jobs/{ids[1]}/events?token={key}"
        with connect(url) as ws:
            first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "queued" and first["queue_position"] == 2
