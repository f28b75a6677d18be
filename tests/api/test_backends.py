"""The same server on PostgreSQL and with Redis-backed rate limits (the scale-out pieces)."""

from __future__ import annotations

from pathlib import Path

import pytest
from skimage import data

from tests.conftest import REDIS_URL, make_settings, services_required
from tests.live import LiveServer, png_bytes

pytestmark = pytest.mark.services


def test_jobs_end_to_end_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    with LiveServer(make_settings(tmp_path, database_url=pg_url)) as srv:
        assert srv.services.db.engine.dialect.name == "postgresql"
        _, key = srv.account(credits=2)
        with srv.client(key) as c:
            media = srv.upload(c, png_bytes(data.astronaut()[:64, :64]))
            body = {"pipeline": "convert", "params": {"image": media["id"], "format": "jpg"}}
            r = c.post("/v1/jobs", json=body, headers={"Prefer": "wait=30"})
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
            assert c.get(r.json()["outputs"][0]["url"]).headers["content-type"] == "image/jpeg"
            me = c.get("/v1/me").json()
        assert (me["credits_available"], me["credits_held"]) == (1, 0)


def test_rate_limits_shared_through_redis(tmp_path: Path) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping()
    except redis.exceptions.ConnectionError as e:
        if services_required():
            raise
        pytest.skip(f"Redis not reachable ({e})")
    settings = make_settings(
        tmp_path,
        redis_url=REDIS_URL,
        rate_limit_enabled=True,
        rate_limit_per_key="3/minute",
        rate_limit_per_ip="1000/minute",
    )
    # Two servers (two processes' worth of limiters) share one budget per key.
    with (
        LiveServer(settings) as one,
        LiveServer(settings.model_copy(update={"data_dir": tmp_path})) as two,
    ):
        _, key = one.account()
        with one.client(key) as a, two.client(key) as b:
            codes = [a.get("/v1/me").status_code, b.get("/v1/me").status_code]
            codes += [a.get("/v1/me").status_code, b.get("/v1/me").status_code]
            assert codes == [200, 200, 200, 429]
            assert int(b.get("/v1/me").headers["Retry-After"]) >= 1
