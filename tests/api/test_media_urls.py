"""Signed download links and media retention, on the real server."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from PIL import Image
from skimage import data

from pixelforge.store.tables import Media
from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes


def photo_png(size: int = 48) -> bytes:
    img = Image.fromarray(data.coffee()).resize((size, size), Image.Resampling.LANCZOS)
    return png_bytes(img)


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body


def split_url(url: str) -> tuple[str, int, str]:
    """(path, exp, sig) of a signed download URL."""
    parts = urlsplit(url)
    q = parse_qs(parts.query)
    assert set(q) == {"exp", "sig"}, q
    return parts.path, int(q["exp"][0]), q["sig"][0]


def media_row(server: LiveServer, media_id: str) -> Media | None:
    with server.services.db.read() as s:
        return s.get(Media, media_id)


@pytest.fixture
def owner(server: LiveServer) -> Iterator[tuple[str, httpx.Client]]:
    _, key = server.account(credits=10)
    with server.client(key) as c:
        yield key, c


def test_signed_url_downloads_exact_bytes_without_auth(
    server: LiveServer, owner: tuple[str, httpx.Client]
) -> None:
    _, c = owner
    up = server.upload(c, photo_png())
    meta = c.get(f"/v1/media/{up['id']}").json()
    assert meta["url"].startswith(server.url + f"/v1/media/{up['id']}/content?")
    path, exp, _ = split_url(meta["url"])
    assert exp == meta["url_expires_at"]
    assert time.time() < exp <= time.time() + server.settings.signed_url_ttl_s + 1

    with server.client() as anon:
        r = anon.get(meta["url"])
    assert r.status_code == 200, r.text
    assert "authorization" not in r.request.headers
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert hashlib.sha256(r.content).hexdigest() == meta["sha256"] == up["sha256"]
    assert len(r.content) == meta["bytes"]
    row = media_row(server, up["id"])
    assert row is not None
    assert r.content == server.services.media.store.path(row.storage_key).read_bytes()
    with Image.open(server.services.media.store.path(row.storage_key)) as img:
        assert img.size == (48, 48)
    assert path == f"/v1/media/{up['id']}/content"


def test_tampered_links_are_403(server: LiveServer, owner: tuple[str, httpx.Client]) -> None:
    _, c = owner
    up = server.upload(c, photo_png())
    other = server.upload(c, photo_png(32))
    path, exp, sig = split_url(up["url"])
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]

    def get(p: str, **query: object) -> httpx.Response:
        with server.client() as anon:
            return anon.get(p + "?" + urlencode(query))

    assert get(path, exp=exp, sig=sig).status_code == 200
    assert_error(get(path, exp=exp, sig=flipped), 403, "signature_invalid")
    assert_error(get(path, exp=exp, sig=sig[:-1]), 403, "signature_invalid")
    assert_error(get(path, exp=exp, sig=""), 403, "signature_invalid")
    # Extending (or shortening) the expiry breaks the signature.
    assert_error(get(path, exp=exp + 3600, sig=sig), 403, "signature_invalid")
    assert_error(get(path, exp=exp + 10**9, sig=sig), 403, "signature_invalid")
    assert_error(get(path, exp=exp - 1, sig=sig), 403, "signature_invalid")
    # A valid signature for one item does not open another.
    assert_error(
        get(f"/v1/media/{other['id']}/content", exp=exp, sig=sig), 403, "signature_invalid"
    )
    # Missing or malformed query parameters are a 400, not a crash.
    assert_error(get(path, exp=exp), 400, "invalid_parameter")
    assert_error(get(path, sig=sig), 400, "invalid_parameter")
    assert_error(get(path, exp="soon", sig=sig), 400, "invalid_parameter")
    # An id that never existed is 404 (nothing to sign against).
    assert_error(get("/v1/media/med_nope/content", exp=exp, sig=sig), 404, "not_found")


def test_non_ascii_signature_is_403_not_500(
    server: LiveServer, owner: tuple[str, httpx.Client]
) -> None:
    _, c = owner
    up = server.upload(c, photo_png(16))
    path, exp, sig = split_url(up["url"])
    with server.client() as anon:
        r = anon.get(path + "?" + urlencode({"exp": exp, "sig": "é" + sig[1:]}))
    assert_error(r, 403, "signature_invalid")


def test_expired_link_is_410(server: LiveServer, owner: tuple[str, httpx.Client]) -> None:
    _, c = owner
    up = server.upload(c, photo_png())
    row = media_row(server, up["id"])
    assert row is not None
    past = int(time.time()) - 5
    sig = server.services.media._signature(row.id, row.account_id, past)
    with server.client() as anon:
        r = anon.get(f"/v1/media/{row.id}/content", params={"exp": past, "sig": sig})
        assert_error(r, 410, "expired")
        # A correctly signed link that is still in date works, so 410 was about time only.
        future = int(time.time()) + 60
        sig = server.services.media._signature(row.id, row.account_id, future)
        r = anon.get(f"/v1/media/{row.id}/content", params={"exp": future, "sig": sig})
        assert r.status_code == 200
    # Asking for the metadata again gives a fresh, working link.
    fresh = c.get(f"/v1/media/{row.id}").json()
    assert fresh["url_expires_at"] > time.time()
    assert httpx.get(fresh["url"], timeout=30).status_code == 200


def test_short_ttl_link_expires(tmp_path: Path) -> None:
    with LiveServer(make_settings(tmp_path / "data", signed_url_ttl_s=1)) as srv:
        _, key = srv.account()
        with srv.client(key) as c:
            up = srv.upload(c, photo_png(16))
            assert up["url_expires_at"] <= time.time() + 1
            time.sleep(max(0.0, up["url_expires_at"] - time.time()) + 0.2)
            assert_error(httpx.get(up["url"], timeout=30), 410, "expired")
            # The item itself lives on: a new link works.
            r = c.get(f"/v1/media/{up['id']}")
            assert r.status_code == 200
            assert httpx.get(r.json()["url"], timeout=30).status_code == 200


def test_deleted_media_link_is_404(server: LiveServer, owner: tuple[str, httpx.Client]) -> None:
    _, c = owner
    up = server.upload(c, photo_png())
    keep = server.upload(c, photo_png(32))
    row = media_row(server, up["id"])
    assert row is not None
    file = server.services.media.store.path(row.storage_key)
    assert file.exists()
    assert httpx.get(up["url"], timeout=30).status_code == 200

    r = c.delete(f"/v1/media/{up['id']}")
    assert r.status_code == 204 and r.content == b""

    assert_error(httpx.get(up["url"], timeout=30), 404, "not_found")
    assert_error(c.get(f"/v1/media/{up['id']}"), 404, "not_found")
    assert_error(c.delete(f"/v1/media/{up['id']}"), 404, "not_found")
    assert not file.exists()
    assert media_row(server, up["id"]) is None
    # Jobs can no longer use it either.
    r = c.post("/v1/jobs", json={"pipeline": "convert", "params": {"image": up["id"]}})
    assert_error(r, 404, "not_found")
    # Other items are untouched.
    assert httpx.get(keep["url"], timeout=30).status_code == 200


def test_retention_and_sweep(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data",
        upload_retention_s=2,
        result_retention_s=777,
        sweep_interval_s=3600,  # only the explicit sweep() below runs
    )
    with LiveServer(settings) as srv:
        _, key = srv.account(credits=5)
        with srv.client(key) as c:
            up = srv.upload(c, photo_png())
            assert up["expires_at"] - up["created_at"] == pytest.approx(2)
            assert up["url_expires_at"] <= up["expires_at"]
            r = c.post(
                "/v1/jobs",
                json={"pipeline": "convert", "params": {"image": up["id"], "format": "jpg"}},
                headers={"Prefer": "wait=30"},
            )
            assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
            [result] = r.json()["outputs"]
            assert result["kind"] == "result" and result["job_id"] == r.json()["id"]
            assert result["expires_at"] - result["created_at"] == pytest.approx(777)
            assert result["content_type"] == "image/jpeg"

            up_row = media_row(srv, up["id"])
            assert up_row is not None
            up_file = srv.services.media.store.path(up_row.storage_key)
            assert up_file.exists()

            deadline = time.monotonic() + 5
            while c.get(f"/v1/media/{up['id']}").status_code != 404:
                assert time.monotonic() < deadline, "upload did not expire"
                time.sleep(0.1)
            assert time.time() >= up["expires_at"]
            assert_error(c.get(f"/v1/media/{up['id']}"), 404, "not_found")
            assert_error(c.delete(f"/v1/media/{up['id']}"), 404, "not_found")
            # The link handed out before expiry is dead as well.
            assert httpx.get(up["url"], timeout=30).status_code in (404, 410)
            # An expired upload cannot feed a new job.
            r = c.post("/v1/jobs", json={"pipeline": "convert", "params": {"image": up["id"]}})
            assert_error(r, 404, "not_found")
            # Not yet swept: the row and the file are still there.
            assert media_row(srv, up["id"]) is not None and up_file.exists()

            assert srv.services.media.sweep() == 1
            assert media_row(srv, up["id"]) is None
            assert not up_file.exists()
            assert srv.services.media.sweep() == 0

            # The result, kept for result_retention_s, survives the sweep.
            got = c.get(f"/v1/media/{result['id']}")
            assert got.status_code == 200
            download = httpx.get(got.json()["url"], timeout=30)
            assert download.status_code == 200
            assert hashlib.sha256(download.content).hexdigest() == result["sha256"]
            job = c.get(f"/v1/jobs/{result['job_id']}").json()
            assert [o["id"] for o in job["outputs"]] == [result["id"]]
