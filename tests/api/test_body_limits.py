"""The body cap and read timeout of web.middleware, with real chunked and slow requests."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.live import LiveServer

MB = 1024 * 1024


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path, workers=0)) as server:
        yield server


def _json_stream(total: int) -> Iterator[bytes]:
    """A JSON object of about `total` bytes, in 1 MB chunks (httpx sends it chunked)."""
    yield b'{"pipeline": "convert", "params": {"image": "med_x"}, "metadata": {"k": "'
    for _ in range(total // MB):
        yield b"x" * MB
    yield b'"}}'


def test_chunked_body_over_the_cap_is_413(srv: LiveServer) -> None:
    """A 50 MB JSON body without Content-Length got FastAPI's 400 "error parsing the body"."""
    _, key = srv.account()
    with srv.client(key) as c:
        r = c.post(
            "/v1/jobs", content=_json_stream(50 * MB), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in r.request.headers
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "exceed_max_filesize"
        # Under a dialect's prefix, the 413 comes in that dialect's error shape.
        r = c.post(
            "/v1/images/generations",
            content=_json_stream(50 * MB),
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 413, r.text
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    with srv.client(key) as c:  # the server goes on answering
        assert c.get("/v1/me").status_code == 200


# -- slow clients --------------------------------------------------------------------------


def _connect(srv: LiveServer, timeout: float) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _closed_after(sock: socket.socket) -> tuple[float, bytes]:
    """(seconds until the server closed the connection, what it sent before)."""
    start = time.monotonic()
    got = b""
    while chunk := sock.recv(4096):
        got += chunk
    return time.monotonic() - start, got


@pytest.fixture
def slow_srv(tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path,
        workers=0,
        header_timeout_s=1.0,
        body_timeout_s=1.0,
        max_connections_per_client=8,
    )
    with LiveServer(settings) as server:
        yield server


def test_slow_headers_are_cut_off_while_others_are_served(slow_srv: LiveServer) -> None:
    _, key = slow_srv.account()
    trickling = [_connect(slow_srv, timeout=10) for _ in range(3)]
    start = time.monotonic()
    with slow_srv.client(key) as c:
        # A byte at a time, each before the keep-alive timeout, never finishing the headers.
        for piece in (b"GET /v1/me HT", b"TP/1.1\r\n", b"Host: x\r\n", b"X-Slow: 1\r\n"):
            for sock in trickling:
                with contextlib.suppress(OSError):  # closed by the server already
                    sock.sendall(piece)
            assert c.get("/v1/me").status_code == 200  # everyone else is served meanwhile
            time.sleep(0.4)
        for sock in trickling:
            waited, got = _closed_after(sock)
            assert got == b""
            assert time.monotonic() - start < 3.0, waited  # header timeout 1 s, not never
            sock.close()
        assert c.get("/v1/me").status_code == 200


def test_slow_body_gets_408(slow_srv: LiveServer) -> None:
    _, key = slow_srv.account()
    sock = _connect(slow_srv, timeout=10)
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {key}\r\nContent-Length: 1000\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"pipeline": ')
    start = time.monotonic()
    waited, got = _closed_after(sock)
    sock.close()
    assert got.startswith(b"HTTP/1.1 408 "), got
    assert b'"code":"timeout"' in got, got
    assert waited < 3.0 and time.monotonic() - start < 3.0


def test_connections_per_client_address_are_capped(slow_srv: LiveServer) -> None:
    held = [_connect(slow_srv, timeout=10) for _ in range(8)]
    try:
        extra = _connect(slow_srv, timeout=10)
        _, got = _closed_after(extra)
        extra.close()
        assert got.startswith(b"HTTP/1.1 429 "), got
        assert b"too many open connections" in got
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)  # the server sees those closes
    _, key = slow_srv.account()
    with slow_srv.client(key) as c:
        assert c.get("/v1/me").status_code == 200
