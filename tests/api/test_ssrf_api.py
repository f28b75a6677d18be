"""POST /v1/media {url} refuses inside-the-network URLs; the canary sees no connection."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from skimage import data

from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes
from tests.safety.test_fetch import HOSTILE_URLS, Canary

PHOTO = png_bytes(data.astronaut()[:48, :48])


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    watcher = Canary()
    yield watcher
    watcher.close()


def _redirector(target: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/photo.png":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(PHOTO)))
                self.end_headers()
                self.wfile.write(PHOTO)
                return
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    # The operator allows one internal address (127.0.0.2), where the test's web server is;
    # the canary on 127.0.0.1 stays forbidden.
    settings = make_settings(tmp_path, url_fetch_allow_networks=["127.0.0.2/32"])
    with LiveServer(settings) as srv:
        _, key = srv.account()
        yield srv, key


@pytest.mark.parametrize("template", HOSTILE_URLS[:24])
def test_hostile_url_uploads_are_refused(
    api: tuple[LiveServer, str], canary: Canary, template: str
) -> None:
    srv, key = api
    with srv.client(key) as c:
        r = c.post("/v1/media", json={"url": template.format(port=canary.port)})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "url_not_allowed"
    assert canary.connections == 0


def test_redirect_into_the_network_is_refused(api: tuple[LiveServer, str], canary: Canary) -> None:
    srv, key = api
    web = ThreadingHTTPServer(
        ("127.0.0.2", 0), _redirector(f"http://127.0.0.1:{canary.port}/secret")
    )
    threading.Thread(target=web.serve_forever, daemon=True).start()
    base = f"http://127.0.0.2:{web.server_address[1]}"
    try:
        with srv.client(key) as c:
            ok = c.post("/v1/media", json={"url": f"{base}/photo.png"})
            assert ok.status_code == 201 and ok.json()["width"] == 48
            r = c.post("/v1/media", json={"url": f"{base}/go"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "url_not_allowed"
        assert canary.connections == 0
    finally:
        web.shutdown()
        web.server_close()


def test_canary_is_listening(canary: Canary) -> None:
    # Its silence above only counts if it would have heard a connection.
    socket.create_connection(("127.0.0.1", canary.port), timeout=1).close()
    for _ in range(100):
        if canary.connections:
            break
        threading.Event().wait(0.02)
    assert canary.connections == 1
