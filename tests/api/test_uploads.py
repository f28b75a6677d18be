"""Uploads through the real server: the three body forms, size and type limits, bombs, EXIF."""

from __future__ import annotations

import base64
import gc
import io
import re
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pixelforge.store.tables import Media
from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes

LIMIT = 200_000


def photo(w: int = 64, h: int = 64) -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((w, h), Image.Resampling.LANCZOS)


def encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def noise_png(side: int, seed: int = 0) -> bytes:
    """Random pixels do not compress: the PNG is about side*side*3 bytes."""
    rng = np.random.default_rng(seed)
    return png_bytes(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG of zero rows: tiny on the wire, huge once decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def rss_bytes() -> int:
    """Resident memory of this process (the server runs here, in a thread)."""
    status = Path("/proc/self/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+)\s+kB", status, re.MULTILINE)
    assert m, status
    return int(m.group(1)) * 1024


def multipart_body(data: bytes, boundary: str = "pfBoundary7") -> tuple[bytes, str]:
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="x.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return (
        head + data + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def chunked(payload: bytes, size: int = 32 * 1024) -> Iterator[bytes]:
    """An iterator body: httpx sends it chunked, with no Content-Length."""
    for i in range(0, len(payload), size):
        yield payload[i : i + size]


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"], body


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path / "small", max_upload_bytes=LIMIT)) as srv:
        yield srv


def media_count(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(Media)) or 0)


def stored_bytes(server: LiveServer, media_id: str) -> bytes:
    with server.services.db.read() as s:
        row = s.get(Media, media_id)
    assert row is not None
    return server.services.media.store.path(row.storage_key).read_bytes()


# -- the three body forms ------------------------------------------------------------------


def test_multipart_and_base64_uploads(server: LiveServer) -> None:
    _, key = server.account()
    raw = png_bytes(photo(64, 48))
    b64 = base64.b64encode(raw).decode()
    with server.client(key) as c:
        multipart = c.post("/v1/media", files={"file": ("photo.png", raw, "image/png")})
        bare = c.post("/v1/media", json={"base64": b64})
        # Line-wrapped base64 (as `base64` prints it) is fine too.
        wrapped = c.post("/v1/media", json={"base64": "\n".join(re.findall(".{1,76}", b64))})
        data_uri = c.post("/v1/media", json={"base64": f"data:image/png;base64,{b64}"})
        for r in (multipart, bare, wrapped, data_uri):
            assert r.status_code == 201, r.text
            body = r.json()
            assert (body["width"], body["height"]) == (64, 48)
            assert body["content_type"] == "image/png"
            assert body["kind"] == "upload" and body["object"] == "media"
            assert body["id"].startswith("med_")
            got = c.get(f"/v1/media/{body['id']}")
            assert got.status_code == 200
            assert got.json()["sha256"] == body["sha256"]
        ids = {r.json()["id"] for r in (multipart, bare, wrapped, data_uri)}
        assert len(ids) == 4
        # The same pixels in, the same re-encoded bytes out.
        assert multipart.json()["sha256"] == bare.json()["sha256"] == data_uri.json()["sha256"]


def test_formats_are_kept_or_normalised(server: LiveServer) -> None:
    _, key = server.account()
    img = photo(40, 30)
    cases = {
        "JPEG": ("image/jpeg", encode(img, "JPEG", quality=90)),
        "WEBP": ("image/webp", encode(img, "WEBP", quality=80)),
        "GIF": ("image/png", encode(img.convert("P"), "GIF")),
        "BMP": ("image/png", encode(img, "BMP")),
        "TIFF": ("image/png", encode(img, "TIFF")),
    }
    with server.client(key) as c:
        for fmt, (content_type, raw) in cases.items():
            r = c.post("/v1/media", files={"file": (f"x.{fmt.lower()}", raw, "image/png")})
            assert r.status_code == 201, (fmt, r.text)
            body = r.json()
            assert (body["content_type"], body["width"], body["height"]) == (content_type, 40, 30)
            stored = Image.open(io.BytesIO(stored_bytes(server, body["id"])))
            assert Image.MIME[stored.format or ""] == content_type, fmt


# -- size limits ---------------------------------------------------------------------------


def test_over_the_limit_is_413(small_server: LiveServer) -> None:
    srv = small_server
    _, key = srv.account()
    big = noise_png(320)  # ~300 KB
    assert 280_000 < len(big) < 330_000
    medium = noise_png(265)  # ~210 KB: its base64 passes the body cap, the decoded size not
    assert LIMIT < len(medium) < 230_000
    fits = noise_png(250)  # ~188 KB
    assert len(fits) < LIMIT
    with srv.client(key) as c:
        assert_error(
            c.post("/v1/media", files={"file": ("noise.png", big, "image/png")}),
            413,
            "exceed_max_filesize",
        )
        b64 = base64.b64encode(big).decode()
        assert_error(c.post("/v1/media", json={"base64": b64}), 413, "exceed_max_filesize")
        assert_error(
            c.post("/v1/media", json={"base64": f"data:image/png;base64,{b64}"}),
            413,
            "exceed_max_filesize",
        )
        medium_b64 = base64.b64encode(medium).decode()
        assert_error(c.post("/v1/media", json={"base64": medium_b64}), 413, "exceed_max_filesize")
        assert_error(
            c.post("/v1/media", files={"file": ("noise.png", medium, "image/png")}),
            413,
            "exceed_max_filesize",
        )
    # Without a Content-Length (chunked), the cap applies while the body streams in.
    huge = noise_png(600)  # ~1 MB
    body, ctype = multipart_body(huge)
    with srv.client(key) as c:
        r = c.post("/v1/media", content=chunked(body), headers={"Content-Type": ctype})
        assert "content-length" not in r.request.headers
        assert_error(r, 413, "exceed_max_filesize")
    with srv.client(key) as c:
        js = b'{"base64": "' + base64.b64encode(huge) + b'"}'
        r = c.post("/v1/media", content=chunked(js), headers={"Content-Type": "application/json"})
        assert_error(r, 413, "exceed_max_filesize")
    # Just under the limit is accepted, and nothing refused was stored.
    with srv.client(key) as c:
        ok = c.post("/v1/media", files={"file": ("noise.png", fits, "image/png")})
        assert ok.status_code == 201, ok.text
    with srv.services.db.read() as s:
        assert media_count(s) == 1
    stored = [p for p in srv.settings.media_dir.rglob("*") if p.is_file()]
    assert len(stored) == 1


def test_413_message_states_the_limit(small_server: LiveServer) -> None:
    _, key = small_server.account()
    b64 = base64.b64encode(noise_png(320)).decode()
    with small_server.client(key) as c:
        for r in (
            c.post("/v1/media", json={"base64": b64}),  # refused by the middleware
            c.post("/v1/media", json={"base64": b64[: 270_000 // 4 * 4]}),  # by decode_base64
        ):
            assert r.status_code == 413, r.text
            message = r.json()["error"]["message"]
            assert not re.search(r"\b0 MB", message), message


def test_multipart_without_file_field_closes_the_form(server: LiveServer) -> None:
    _, key = server.account()
    leaked: list[str] = []
    hook = sys.unraisablehook
    sys.unraisablehook = lambda u: leaked.append(repr(u.exc_value))
    try:
        with server.client(key) as c:
            r = c.post("/v1/media", files={"image": ("x.png", png_bytes(photo(8, 8)))})
            assert_error(r, 400, "invalid_parameter")
            assert "file" in r.json()["error"]["message"]
        time.sleep(0.2)  # the server thread lets go of the request
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert not [m for m in leaked if "Unclosed file" in m], leaked


# -- types, decoding, bombs ----------------------------------------------------------------


def test_non_images_and_bad_bodies(server: LiveServer) -> None:
    _, key = server.account()
    html = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
    truncated_jpeg = encode(photo(), "JPEG", quality=90)
    truncated_jpeg = truncated_jpeg[: len(truncated_jpeg) // 2]
    truncated_png = png_bytes(photo())
    truncated_png = truncated_png[: len(truncated_png) // 2]
    with server.client(key) as c:
        r = c.post("/v1/media", files={"file": ("photo.png", html, "image/png")})
        assert_error(r, 415, "unsupported_media_type")
        r = c.post("/v1/media", json={"base64": base64.b64encode(html).decode()})
        assert_error(r, 415, "unsupported_media_type")
        r = c.post("/v1/media", files={"file": ("photo.jpg", truncated_jpeg, "image/jpeg")})
        assert_error(r, 400, "error_decode_image")
        r = c.post("/v1/media", files={"file": ("photo.png", truncated_png, "image/png")})
        assert_error(r, 400, "error_decode_image")

        assert_error(
            c.post("/v1/media", json={"base64": "this is *not* base64!!"}), 400, "invalid_parameter"
        )
        assert_error(
            c.post("/v1/media", json={"base64": "data:image/png,iVBORw0KGgo"}),
            400,
            "invalid_parameter",
        )
        assert_error(c.post("/v1/media", json={}), 400, "invalid_parameter")
        assert_error(c.post("/v1/media", json={"base64": 12}), 400, "invalid_parameter")
        assert_error(c.post("/v1/media", json=["base64"]), 400, "invalid_parameter")
        assert_error(
            c.post("/v1/media", content=b"{not json", headers={"Content-Type": "application/json"}),
            400,
            "invalid_parameter",
        )
        assert_error(
            c.post("/v1/media", content=b"hello", headers={"Content-Type": "text/plain"}),
            415,
            "unsupported_media_type",
        )
        assert_error(c.post("/v1/media", content=b""), 415, "unsupported_media_type")
        # An empty file is a client error, not a crash.
        r = c.post("/v1/media", files={"file": ("x.png", b"", "image/png")})
        assert r.status_code in (400, 415), r.text
    with server.services.db.read() as s:
        assert media_count(s) == 0


def test_decompression_bombs_refused_with_steady_memory(server: LiveServer) -> None:
    _, key = server.account()
    bomb = png_bomb(20_000, 20_000)  # 400 Mpx: past Pillow's own hard limit
    assert len(bomb) < 100_000
    under_pillow = png_bomb(8_000, 6_000)  # 48 Mpx: over our 40 Mpx limit, under Pillow's
    pillow_warns = png_bomb(10_000, 10_000)  # 100 Mpx: Pillow warns, we refuse
    with server.client(key) as c:
        for b in (under_pillow, pillow_warns, bomb):
            r = c.post("/v1/media", files={"file": ("bomb.png", b, "image/png")})
            assert_error(r, 400, "image_too_large")
        r = c.post("/v1/media", json={"base64": base64.b64encode(bomb).decode()})
        assert_error(r, 400, "image_too_large")

        before = rss_bytes()
        for _ in range(5):
            r = c.post("/v1/media", files={"file": ("bomb.png", bomb, "image/png")})
            assert_error(r, 400, "image_too_large")
        after = rss_bytes()
        # The server still answers, and took no memory for pixels it never decoded.
        assert c.get("/v1/me").status_code == 200
    assert after - before < 100 * 1024 * 1024, (before, after)
    with server.services.db.read() as s:
        assert media_count(s) == 0


# -- metadata ------------------------------------------------------------------------------


def test_exif_and_text_chunks_are_stripped(server: LiveServer) -> None:
    _, key = server.account()
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0131] = "TrackingSoftware 1.0"  # Software
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    jpeg = encode(photo(64, 32), "JPEG", quality=90, exif=exif.tobytes())
    assert Image.open(io.BytesIO(jpeg)).getexif()[0x010F] == "SecretCam"

    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "GPS 51.5N 0.1W home")
    png = encode(photo(32, 32), "PNG", pnginfo=info)
    assert b"GPS 51.5N" in png

    with server.client(key) as c:
        r = c.post("/v1/media", files={"file": ("exif.jpg", jpeg, "image/jpeg")})
        assert r.status_code == 201, r.text
        body = r.json()
        # The orientation was applied to the pixels, then dropped with the rest.
        assert (body["content_type"], body["width"], body["height"]) == ("image/jpeg", 32, 64)
        stored = stored_bytes(server, body["id"])
        downloaded = httpx.get(body["url"], timeout=30).content
        assert downloaded == stored
        assert b"Exif" not in stored and b"SecretCam" not in stored
        assert b"TrackingSoftware" not in stored
        img = Image.open(io.BytesIO(stored))
        assert len(img.getexif()) == 0 and "exif" not in img.info

        r = c.post("/v1/media", files={"file": ("text.png", png, "image/png")})
        assert r.status_code == 201, r.text
        stored = stored_bytes(server, r.json()["id"])
        assert b"GPS 51.5N" not in stored and b"tEXt" not in stored
        assert Image.open(io.BytesIO(stored)).info.get("Comment") is None
