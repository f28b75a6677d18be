"""Tests for pixelforge.safety.fetch against real sockets: hostile URLs, redirects, limits."""

from __future__ import annotations

import contextlib
import io
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image
from skimage import data

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.safety.fetch import FetchPolicy, fetch_url

SERVER_HOST = "127.0.0.2"  # Linux routes all of 127/8 to loopback
ALLOW_SERVER = FetchPolicy(timeout_s=2.0, max_bytes=1024 * 1024, allow_networks=("127.0.0.2/32",))


class Canary:
    """TCP listeners on 127.0.0.1 (and ::1 where possible) that count every connection."""

    def __init__(self) -> None:
        self.connections = 0
        self._stop = threading.Event()
        self._sockets = [self._listen(socket.AF_INET, "127.0.0.1", 0)]
        self.port = self._sockets[0].getsockname()[1]
        with contextlib.suppress(OSError):
            self._sockets.append(self._listen(socket.AF_INET6, "::1", self.port))
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @staticmethod
    def _listen(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen()
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        return sock

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self._sockets:
                selector.register(sock, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.02):
                    with contextlib.suppress(BlockingIOError):
                        conn, _ = key.fileobj.accept()  # type: ignore[union-attr]
                        conn.close()
                        self.connections += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self._sockets:
            sock.close()


@pytest.fixture(scope="module")
def canary() -> Iterator[Canary]:
    watcher = Canary()
    # Prove the canary counts before trusting its silence.
    socket.create_connection(("127.0.0.1", watcher.port), timeout=1).close()
    deadline = time.monotonic() + 2
    while watcher.connections == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watcher.connections == 1
    watcher.connections = 0
    yield watcher
    watcher.close()


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((64, 64)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png_bytes()


# Slow handlers give up after this long, so a broken deadline fails a test instead of hanging it.
SLOW_HANDLER_CAP_S = 3.0


class _Handler(BaseHTTPRequestHandler):
    canary_port = 0
    release = threading.Event()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path
        try:
            if path == "/image.png":
                self._send(200, PNG, "image/png")
            elif path == "/to-canary":
                self._redirect(f"http://127.0.0.1:{self.canary_port}/")
            elif path == "/to-canary-v6":
                self._redirect(f"http://[::1]:{self.canary_port}/")
            elif path == "/to-file":
                self._redirect("file:///etc/passwd")
            elif path.startswith("/hops/"):
                left = int(path.removeprefix("/hops/"))
                if left == 0:
                    self._send(200, PNG, "image/png")
                else:
                    self._redirect(str(left - 1), status=307)  # relative Location
            elif path == "/echo-host":
                self._send(200, self.headers["Host"].encode(), "text/plain")
            elif path == "/big-declared":
                self._send(200, b"\x00" * (2 * 1024 * 1024), "image/png")
            elif path == "/big-undeclared":
                self._send_undeclared(b"\x00" * (64 * 1024), chunks=40)
            elif path == "/stall":
                self.release.wait(timeout=SLOW_HANDLER_CAP_S)
            elif path == "/drip":
                self._drip()
            elif path == "/drip-headers":
                self._drip_headers()
            else:
                self._send(404, b"no such image", "text/plain")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up on purpose

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_undeclared(self, chunk: bytes, *, chunks: int) -> None:
        # HTTP/1.0 without Content-Length: the body ends when the connection closes.
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()
        for _ in range(chunks):
            self.wfile.write(chunk)

    def _redirect(self, location: str, status: int = 302) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _drip(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        give_up = time.monotonic() + SLOW_HANDLER_CAP_S
        while not self.release.wait(timeout=0.2) and time.monotonic() < give_up:
            self.wfile.write(b"\x00")
            self.wfile.flush()

    def _drip_headers(self) -> None:
        # Slowloris: a header line that never ends, one byte at a time.
        self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
        give_up = time.monotonic() + SLOW_HANDLER_CAP_S
        while not self.release.wait(timeout=0.2) and time.monotonic() < give_up:
            self.wfile.write(b"a")
            self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: object, client_address: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(canary: Canary) -> Iterator[str]:
    class Handler(_Handler):
        canary_port = canary.port
        release = threading.Event()

    httpd = _Server((SERVER_HOST, 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://{SERVER_HOST}:{httpd.server_address[1]}"
    Handler.release.set()
    httpd.shutdown()
    thread.join()
    httpd.server_close()


def _refused(url: str, *, policy: FetchPolicy = ALLOW_SERVER, **kwargs: object) -> PixelForgeError:
    with pytest.raises(PixelForgeError) as info:
        fetch_url(url, policy=policy, **kwargs)  # type: ignore[arg-type]
    return info.value


HOSTILE_URLS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://localhost.:{port}/",
    "http://images.localhost:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://0x7f.1:{port}/",
    "http://127.1:{port}/",
    "http://127.0.0.1.:{port}/",
    "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[0:0:0:0:0:ffff:7f00:1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    "http://[64:ff9b::7f00:1]:{port}/",
    "http://[2002:7f00:1::]:{port}/",
    "http://[fe80::1%25lo]:{port}/",
    "http://0.0.0.0:{port}/",
    "http://0:{port}/",
    "http://[::]:{port}/",
    "http://%31%32%37.0.0.1:{port}/",
    "http://127.0.0.1:{port}\\@example.com/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fec0::1]/",
    "http://[2001::1]/",
    "http://[64:ff9b:1::a00:1]/",
    "http://[ff02::1]/",
    "http://user:pw@example.com/",
    "http://user@127.0.0.1:{port}/",
    "file:///etc/passwd",
    "ftp://example.com/x",
    "gopher://127.0.0.1:{port}/",
    "//127.0.0.1:{port}/",
    "http:///path-only",
]


@pytest.mark.parametrize("template", HOSTILE_URLS)
def test_hostile_urls_are_refused_without_connecting(canary: Canary, template: str) -> None:
    url = template.format(port=canary.port)
    error = _refused(url, policy=FetchPolicy(timeout_s=1.0))
    assert error.code is ErrorCode.url_not_allowed
    assert error.status == 400
    assert canary.connections == 0


def test_numeric_hosts_are_refused_even_if_a_resolver_maps_them(canary: Canary) -> None:
    # getaddrinfo turns these into 127.0.0.1; the address check must refuse that too.
    for host in ("2130706433", "0x7f000001", "127.1"):
        error = _refused(f"http://{host}:{canary.port}/", policy=FetchPolicy(timeout_s=1.0))
        assert error.code is ErrorCode.url_not_allowed
    assert canary.connections == 0


def test_error_names_the_address() -> None:
    error = _refused("http://127.0.0.1/", policy=FetchPolicy())
    assert "non-public address (127.0.0.1" in error.message


def test_every_resolved_address_must_be_public(canary: Canary) -> None:
    def resolve(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.1"]

    error = _refused("http://mixed.example/", policy=FetchPolicy(), resolve=resolve)
    assert error.code is ErrorCode.url_not_allowed
    assert "10.0.0.1" in error.message


def test_resolver_failures_are_download_errors() -> None:
    def broken(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    assert _refused("http://x.example/", resolve=broken).code is ErrorCode.error_download_image
    empty = _refused("http://x.example/", resolve=lambda host, port: [])
    assert empty.code is ErrorCode.error_download_image


def test_allowed_server_serves_a_real_png(server: str) -> None:
    fetched = fetch_url(f"{server}/image.png", policy=ALLOW_SERVER)
    assert fetched.data == PNG
    assert fetched.content_type == "image/png"
    assert fetched.final_url == f"{server}/image.png"
    assert Image.open(io.BytesIO(fetched.data)).size == (64, 64)


def test_connects_to_the_checked_address_with_the_original_host(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    lookups: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return [SERVER_HOST]

    fetched = fetch_url(
        f"http://images.example:{port}/echo-host", policy=ALLOW_SERVER, resolve=resolve
    )
    assert fetched.data == f"images.example:{port}".encode()
    assert lookups == ["images.example"]


def test_each_hop_is_resolved_and_checked_again(server: str, canary: Canary) -> None:
    port = server.rsplit(":", 1)[1]
    answers = iter([[SERVER_HOST], ["127.0.0.1"]])  # DNS rebinding between hops

    error = _refused(
        f"http://rebind.example:{port}/hops/1", resolve=lambda host, port: next(answers)
    )
    assert error.code is ErrorCode.url_not_allowed
    assert "127.0.0.1" in error.message
    assert canary.connections == 0


@pytest.mark.parametrize("path", ["/to-canary", "/to-canary-v6", "/to-file"])
def test_redirect_to_a_refused_url_is_refused(server: str, canary: Canary, path: str) -> None:
    error = _refused(f"{server}{path}")
    assert error.code is ErrorCode.url_not_allowed
    assert canary.connections == 0


def test_redirects_up_to_the_limit_are_followed(server: str) -> None:
    fetched = fetch_url(f"{server}/hops/3", policy=ALLOW_SERVER)
    assert fetched.data == PNG
    assert fetched.final_url == f"{server}/hops/0"


def test_redirect_chain_longer_than_the_limit_is_refused(server: str) -> None:
    error = _refused(f"{server}/hops/4")
    assert error.code is ErrorCode.url_not_allowed
    assert "more than 3" in error.message


@pytest.mark.parametrize("path", ["/big-declared", "/big-undeclared"])
def test_body_over_max_bytes_is_refused(server: str, path: str) -> None:
    error = _refused(f"{server}{path}")
    assert error.code is ErrorCode.exceed_max_filesize
    assert error.status == 413


@pytest.mark.parametrize("path", ["/stall", "/drip", "/drip-headers"])
def test_slow_server_times_out_within_the_budget(server: str, path: str) -> None:
    policy = FetchPolicy(timeout_s=1.0, allow_networks=("127.0.0.2/32",))
    started = time.monotonic()
    error = _refused(f"{server}{path}", policy=policy)
    elapsed = time.monotonic() - started
    assert error.code is ErrorCode.error_download_image
    assert "1 s" in error.message
    assert elapsed < 1.0 + 0.5  # the deadline holds even when bytes keep trickling in


def test_not_found_is_a_download_error(server: str) -> None:
    error = _refused(f"{server}/missing.png")
    assert error.code is ErrorCode.error_download_image
    assert "404" in error.message


def test_connection_refused_is_a_download_error() -> None:
    with socket.socket() as probe:
        probe.bind((SERVER_HOST, 0))
        closed_port = probe.getsockname()[1]
    error = _refused(f"http://{SERVER_HOST}:{closed_port}/x.png")
    assert error.code is ErrorCode.error_download_image


def test_invalid_allow_network_fails_at_configuration() -> None:
    with pytest.raises(ValueError):
        FetchPolicy(allow_networks=("not-a-cidr",))


def test_canary_saw_nothing(canary: Canary) -> None:
    assert canary.connections == 0
