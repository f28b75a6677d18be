"""Authentication and object-level authorization on the real server.

Account B, with a valid key of its own, must not be able to see, change or even confirm the
existence of anything that belongs to account A: every route that takes an id answers 404.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from PIL import Image
from skimage import data
from sqlalchemy import func, select
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from pixelforge.accounts.tokens import issue_access_token
from pixelforge.store.tables import Account, Job, LedgerEntry, Media
from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes

PASSWORD = "correct horse battery staple"


def photo_png(size: int = 64) -> bytes:
    img = Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.LANCZOS)
    return png_bytes(img)


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"], body


def ws_url(server: LiveServer, path: str) -> str:
    return server.url.replace("http://", "ws://", 1) + path


def ws_refused(server: LiveServer, path: str) -> InvalidStatus:
    """Open a websocket that the server must refuse; returns the refusal."""
    with pytest.raises(InvalidStatus) as info, connect(ws_url(server, path), open_timeout=10):
        pass
    return info.value


@dataclass
class World:
    a_id: str
    a_key: str
    a_key_id: str
    b_id: str
    b_key: str
    upload: dict[str, Any]
    job: dict[str, Any]
    result: dict[str, Any]


@pytest.fixture
def world(server: LiveServer) -> Iterator[World]:
    """A owns an upload, a finished convert job and its result; B owns nothing."""
    a_id, a_key = server.account(credits=10)
    b_id, b_key = server.account(credits=10)
    [a_key_row] = server.services.accounts.list_keys(a_id)
    with server.client(a_key) as a:
        upload = server.upload(a, photo_png(), "astronaut.png")
        r = a.post(
            "/v1/jobs",
            json={"pipeline": "convert", "params": {"image": upload["id"], "format": "webp"}},
            headers={"Prefer": "wait=30"},
        )
        assert r.status_code == 200, r.text
        job = r.json()
    assert job["status"] == "succeeded", job
    [result] = job["outputs"]
    yield World(a_id, a_key, a_key_row.id, b_id, b_key, upload, job, result)


# -- object-level authorization ------------------------------------------------------------


def test_other_account_gets_404_on_every_route_with_an_id(server: LiveServer, world: World) -> None:
    w = world
    with server.client(w.b_key) as b:
        me_before = b.get("/v1/me").json()
        for path in (
            f"/v1/jobs/{w.job['id']}",
            f"/v1/media/{w.upload['id']}",
            f"/v1/media/{w.result['id']}",
        ):
            assert_error(b.get(path), 404, "not_found")
            assert_error(b.delete(path), 404, "not_found")
        assert_error(b.delete(f"/v1/keys/{w.a_key_id}"), 404, "not_found")

        # A's media ids, used as job inputs, are as unknown to B as a made-up id.
        for media_id in (w.upload["id"], w.result["id"], "med_doesnotexist"):
            r = b.post("/v1/jobs", json={"pipeline": "convert", "params": {"image": media_id}})
            assert_error(r, 404, "not_found")
            assert media_id in r.json()["error"]["message"]

        # Same answer as for an id that does not exist: no existence oracle.
        mine = b.get(f"/v1/jobs/{w.job['id']}")
        nobody = b.get("/v1/jobs/job_doesnotexist")
        assert (mine.status_code, mine.json()["error"]["code"]) == (
            nobody.status_code,
            nobody.json()["error"]["code"],
        )

        # B's listing shows none of A's jobs, and B was charged nothing.
        assert b.get("/v1/jobs").json()["data"] == []
        me_after = b.get("/v1/me").json()
    assert me_after["credits_available"] == me_before["credits_available"] == 10
    assert me_after["credits_held"] == 0

    refusal = ws_refused(server, f"/v1/jobs/{w.job['id']}/events?token={w.b_key}")
    assert refusal.response.status_code == 404
    assert json.loads(refusal.response.body)["error"]["code"] == "not_found"

    with server.services.db.read() as s:
        b_jobs = s.scalar(select(func.count()).select_from(Job).where(Job.account_id == w.b_id))
    assert b_jobs == 0


def test_owner_items_intact_after_other_account_attempts(server: LiveServer, world: World) -> None:
    w = world
    with server.client(w.b_key) as b:
        for path in (
            f"/v1/jobs/{w.job['id']}",
            f"/v1/media/{w.upload['id']}",
            f"/v1/media/{w.result['id']}",
            f"/v1/keys/{w.a_key_id}",
        ):
            assert b.delete(path).status_code == 404

    with server.client(w.a_key) as a:
        job = a.get(f"/v1/jobs/{w.job['id']}")
        assert job.status_code == 200, job.text
        assert job.json()["status"] == "succeeded"
        assert [o["id"] for o in job.json()["outputs"]] == [w.result["id"]]
        for item in (w.upload, w.result):
            meta = a.get(f"/v1/media/{item['id']}")
            assert meta.status_code == 200, meta.text
            body = meta.json()
            assert body["sha256"] == item["sha256"]
            content = httpx.get(body["url"], timeout=30)
            assert content.status_code == 200
            assert hashlib.sha256(content.content).hexdigest() == item["sha256"]
            # The file is still on disk.
            with server.services.db.read() as s:
                row = s.get(Media, item["id"])
            assert row is not None
            assert server.services.media.store.path(row.storage_key).exists()
        keys = a.get("/v1/keys").json()
        assert [k["revoked_at"] for k in keys if k["id"] == w.a_key_id] == [None]
        me = a.get("/v1/me").json()
    assert (me["credits_available"], me["credits_held"]) == (9, 0)
    with server.services.db.read() as s:
        kinds = sorted(
            e.kind for e in s.scalars(select(LedgerEntry).where(LedgerEntry.job_id == w.job["id"]))
        )
    assert kinds == ["capture", "hold"]


def test_other_account_cannot_cancel_a_queued_job(tmp_path: Path) -> None:
    # No workers: the job stays queued, so a cancel by anyone would visibly take effect.
    with LiveServer(make_settings(tmp_path / "data", workers=0)) as srv:
        _, a_key = srv.account(credits=5)
        _, b_key = srv.account(credits=5)
        with srv.client(a_key) as a, srv.client(b_key) as b:
            upload = srv.upload(a, photo_png(32))
            r = a.post("/v1/jobs", json={"pipeline": "convert", "params": {"image": upload["id"]}})
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]

            assert_error(b.delete(f"/v1/jobs/{job_id}"), 404, "not_found")
            refusal = ws_refused(srv, f"/v1/jobs/{job_id}/events?token={b_key}")
            assert refusal.response.status_code == 404

            job = a.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] == "queued" and job["queue_position"] == 1
            me = a.get("/v1/me").json()
            assert (me["credits_available"], me["credits_held"]) == (4, 1)

            # The owner can cancel it: the 404 above was about ownership, not state.
            r = a.delete(f"/v1/jobs/{job_id}")
            assert r.status_code == 200 and r.json()["status"] == "canceled"


def test_idempotency_keys_are_scoped_to_the_account(server: LiveServer, world: World) -> None:
    w = world
    with server.client(w.a_key) as a:
        up = server.upload(a, photo_png(32))
        first = a.post(
            "/v1/jobs",
            json={"pipeline": "convert", "params": {"image": up["id"]}, "request_id": "shared-1"},
        )
        assert first.status_code == 202, first.text
    with server.client(w.b_key) as b:
        b_up = server.upload(b, photo_png(32))
        r = b.post(
            "/v1/jobs",
            json={"pipeline": "convert", "params": {"image": b_up["id"]}, "request_id": "shared-1"},
        )
        assert r.status_code == 202, r.text
        assert r.json()["id"] != first.json()["id"]
        assert "idempotent-replayed" not in r.headers
        # Replaying A's exact request under B's key does not reveal A's job either.
        r = b.post(
            "/v1/jobs",
            json={"pipeline": "convert", "params": {"image": up["id"]}, "request_id": "shared-1"},
        )
        assert r.status_code in (404, 422), r.text
        assert first.json()["id"] not in r.text


def test_account_event_stream_carries_only_own_jobs(server: LiveServer, world: World) -> None:
    w = world
    with (
        connect(ws_url(server, f"/v1/events?token={w.b_key}"), open_timeout=10) as b_ws,
        connect(ws_url(server, f"/v1/events?token={w.a_key}"), open_timeout=10) as a_ws,
    ):
        with server.client(w.a_key) as a:
            r = a.post(
                "/v1/jobs",
                json={"pipeline": "convert", "params": {"image": w.upload["id"]}},
                headers={"Prefer": "wait=30"},
            )
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
        job_id = r.json()["id"]
        a_events = []
        deadline = time.monotonic() + 10
        while not any(e.get("type") == "succeeded" for e in a_events):
            assert time.monotonic() < deadline, a_events
            a_events.append(json.loads(a_ws.recv(timeout=10)))
        assert {e["job_id"] for e in a_events} == {job_id}
        with pytest.raises(TimeoutError):
            b_ws.recv(timeout=0.5)


# -- admin routes --------------------------------------------------------------------------


def test_non_admin_gets_403_on_admin_routes(server: LiveServer, world: World) -> None:
    w = world
    with server.services.db.read() as s:
        accounts_before = s.scalar(select(func.count()).select_from(Account))
    calls: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", "/v1/admin/accounts", None),
        ("POST", "/v1/admin/accounts", {"email": "mallory@example.com", "is_admin": True}),
        ("GET", f"/v1/admin/accounts/{w.b_id}", None),
        ("POST", f"/v1/admin/accounts/{w.b_id}/credits", {"amount": 1000}),
        ("POST", f"/v1/admin/accounts/{w.b_id}/keys", {"name": "x"}),
        ("GET", f"/v1/admin/accounts/{w.a_id}/keys", None),
        ("DELETE", f"/v1/admin/keys/{w.a_key_id}", None),
    ]
    with server.client(w.b_key) as b:
        for method, path, body in calls:
            assert_error(b.request(method, path, json=body), 403, "forbidden")
        me = b.get("/v1/me").json()
    assert me["credits_available"] == 10 and not me["is_admin"]
    with server.services.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Account)) == accounts_before
    assert len(server.services.accounts.list_keys(w.b_id)) == 1
    assert server.services.accounts.list_keys(w.a_id)[0].revoked_at is None

    # Positive control: the same calls work with an administrator key.
    _, admin_key = server.services.accounts.create_account(email="root@example.com", is_admin=True)
    with server.client(admin_key.plaintext) as root:
        for method, path, body in calls:
            r = root.request(method, path, json=body)
            assert r.status_code in (200, 201, 204), (method, path, r.text)
    with server.client() as anon:
        assert_error(anon.get("/v1/admin/accounts"), 401, "unauthorized")


# -- authentication ------------------------------------------------------------------------


def test_credentials_required_and_all_header_forms_work(server: LiveServer) -> None:
    account_id, key = server.account(credits=1)
    with server.client() as anon:
        for method, path in (
            ("GET", "/v1/me"),
            ("GET", "/v1/jobs"),
            ("POST", "/v1/jobs"),
            ("GET", "/v1/keys"),
            ("GET", "/v1/pipelines"),
            ("GET", "/v1/media/med_x"),
        ):
            assert_error(anon.request(method, path), 401, "unauthorized")
        for headers in (
            {"Authorization": f"Bearer {key}"},
            {"Authorization": f"bearer {key}"},
            {"Authorization": f"Key {key}"},
            {"X-API-Key": key},
        ):
            r = anon.get("/v1/me", headers=headers)
            assert r.status_code == 200, (headers, r.text)
            assert r.json()["id"] == account_id
        bad_headers: list[dict[str, str]] = [
            {"Authorization": f"Basic {key}"},
            {"Authorization": "Bearer"},
            {"Authorization": "Bearer pf_nope_nope"},
            {"Authorization": f"Bearer {key}x"},
            {"Authorization": "Key not-a-key"},
            {"X-API-Key": key[:-1]},
        ]
        for headers in bad_headers:
            assert_error(anon.get("/v1/me", headers=headers), 401, "unauthorized")
        # Keys in the query string are for websockets only, never for plain HTTP.
        assert_error(anon.get("/v1/me", params={"token": key}), 401, "unauthorized")
    refusal = ws_refused(server, "/v1/events")
    assert refusal.response.status_code == 401


def test_revoked_key_fails_on_the_very_next_request(server: LiveServer) -> None:
    _, key = server.account(credits=1)
    with server.client(key) as c:
        r = c.post("/v1/keys", json={"name": "laptop"})
        assert r.status_code == 201, r.text
        second = r.json()
        assert second["key"].startswith("pf_")
    with server.client(second["key"]) as c2:
        assert c2.get("/v1/me").status_code == 200
        with server.client(key) as c:
            assert c.delete(f"/v1/keys/{second['id']}").status_code == 204
            # The revoking key itself still works.
            assert c.get("/v1/me").status_code == 200
        assert_error(c2.get("/v1/me"), 401, "unauthorized")
        assert_error(c2.get("/v1/jobs"), 401, "unauthorized")
    assert ws_refused(server, f"/v1/events?token={second['key']}").response.status_code == 401
    # A key can revoke itself, and is dead right after.
    with server.client(key) as c:
        [me_key] = [k for k in c.get("/v1/keys").json() if k["revoked_at"] is None]
        assert c.delete(f"/v1/keys/{me_key['id']}").status_code == 204
        assert_error(c.get("/v1/me"), 401, "unauthorized")


def test_login_token(server: LiveServer) -> None:
    email = "ada@example.com"
    account_id, _ = server.account(credits=3, email=email, password=PASSWORD)
    with server.client() as anon:
        r = anon.post("/v1/auth/login", json={"email": "Ada@Example.com", "password": PASSWORD})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "bearer" and body["expires_in"] > 0
        token = body["access_token"]
        assert not token.startswith("pf_")

        me = anon.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["id"] == account_id and me.json()["credits_available"] == 3

        wrong = anon.post("/v1/auth/login", json={"email": email, "password": PASSWORD + "!"})
        assert_error(wrong, 401, "unauthorized")
        unknown = anon.post("/v1/auth/login", json={"email": "eve@example.com", "password": "x"})
        assert_error(unknown, 401, "unauthorized")
        # The same message whether or not the email exists.
        assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]
        # An account without a password (API keys only) cannot log in with any password.
        server.account(email="keysonly@example.com")
        r = anon.post("/v1/auth/login", json={"email": "keysonly@example.com", "password": ""})
        assert_error(r, 401, "unauthorized")

    # The websocket takes the token too.
    with connect(ws_url(server, f"/v1/events?token={token}"), open_timeout=10):
        pass


def test_bad_tokens_are_refused(server: LiveServer) -> None:
    account_id, _ = server.account(credits=1, email="bob@example.com", password=PASSWORD)
    key = server.services.accounts.token_key
    now = int(time.time())
    claims = {"sub": account_id, "iat": now, "exp": now + 600, "typ": "access"}

    good = jwt.encode(claims, key, algorithm="HS256")
    expired = issue_access_token(key=key, account_id=account_id, ttl_s=-10)
    unsigned = jwt.encode(claims, None, algorithm="none")
    other_key = jwt.encode(claims, b"k" * 32, algorithm="HS256")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns that 32 bytes is short for HS512
        other_alg = jwt.encode(claims, key, algorithm="HS512")
    wrong_type = jwt.encode({**claims, "typ": "refresh"}, key, algorithm="HS256")
    no_such_account = jwt.encode({**claims, "sub": "acc_nobody"}, key, algorithm="HS256")
    no_exp = jwt.encode({k: v for k, v in claims.items() if k != "exp"}, key, algorithm="HS256")
    # Header says "none" but the original HS256 signature is kept.
    head = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    swapped = head + good[good.index(".") :]

    with server.client() as anon:
        assert anon.get("/v1/me", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        for name, token in {
            "expired": expired,
            "alg none": unsigned,
            "alg none, stripped": unsigned.rstrip("."),
            "header swapped to none": swapped,
            "other key": other_key,
            "HS512 with the right key": other_alg,
            "typ refresh": wrong_type,
            "unknown account": no_such_account,
            "no exp": no_exp,
            "garbage": "a.b.c",
        }.items():
            r = anon.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, (name, r.text)
            assert r.json()["error"]["code"] == "unauthorized", name
        r = anon.get("/v1/me", headers={"Authorization": f"Bearer {expired}"})
        assert "expired" in r.json()["error"]["message"]
    assert ws_refused(server, f"/v1/events?token={expired}").response.status_code == 401


def test_optional_media_fields_are_owner_checked_at_submit(server: LiveServer) -> None:
    """`MediaRef | None` params (e.g. a background image) are checked like required ones."""
    _, key_a = server.account()
    _, key_b = server.account()
    with server.client(key_a) as a:
        theirs = server.upload(a, png_bytes(data.astronaut()[:64, :64]))["id"]
    with server.client(key_b) as b:
        mine = server.upload(b, png_bytes(data.astronaut()[:64, :64]))["id"]
        params = {"image": mine, "background_image": theirs}
        r = b.post("/v1/jobs", json={"pipeline": "replace_background", "params": params})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
