"""Fetch a user-supplied URL without letting it reach private networks (SSRF)."""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpcore
import httpx

from pixelforge.errors import ErrorCode, PixelForgeError, too_large
from pixelforge.safety.addresses import Address, Network, refusal

Resolver = Callable[[str, int], list[str]]

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Underscores are not legal in host names but do occur in real DNS records.
_DNS_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
# WHATWG URL rule: a host whose last label is a number is an IPv4 address, however written.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
# Reject anything parsers disagree on: whitespace, control characters, backslashes.
_UNSAFE_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_PATH_SAFE_CHARS = "/%:@!$&'()*+,;=-._~?"


@dataclass(frozen=True)
class FetchPolicy:
    timeout_s: float = 10.0
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 3
    # CIDRs an operator explicitly trusts (e.g. their intranet); empty by default.
    allow_networks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A typo in operator config should fail at startup, not on a user's request.
        _allowed_networks(self.allow_networks)


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str | None
    final_url: str


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str  # IDNA-encoded name, or the IP literal without brackets
    port: int
    path: str
    host_header: str
    literal: Address | None


def fetch_url(url: str, *, policy: FetchPolicy, resolve: Resolver | None = None) -> Fetched:
    """GET a public http(s) URL, pinning each hop to the address that passed the checks.

    Only PixelForgeError escapes: url_not_allowed for anything the policy refuses,
    exceed_max_filesize for oversized bodies, error_download_image for everything else.
    """
    resolver = resolve or _resolve_all
    allowed = _allowed_networks(policy.allow_networks)
    deadline = time.monotonic() + policy.timeout_s
    current = url
    try:
        for _hop in range(policy.max_redirects + 1):
            target = _parse(current)
            addresses = _checked_addresses(target, resolver, allowed)
            result = _get(target, addresses, policy=policy, deadline=deadline)
            if isinstance(result, Fetched):
                return result
            current = urljoin(current, result)
    except PixelForgeError:
        raise
    except Exception as exc:  # the caller is promised PixelForgeError and nothing else
        raise _download_error(f"could not download {_short(current)} ({exc})") from exc
    raise _not_allowed(f"url redirected more than {policy.max_redirects} times")


def _parse(url: str) -> _Target:
    if _UNSAFE_URL_CHARS.search(url):
        raise _not_allowed("url contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _not_allowed(f"url is malformed ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise _not_allowed(f"only http and https urls are allowed, not {scheme or 'no scheme'!r}")
    if "@" in parts.netloc:
        raise _not_allowed("urls with a user name or password are not allowed")
    if not parts.hostname:
        raise _not_allowed("url has no host")
    if port == 0:
        raise _not_allowed("url has an invalid port 0")
    host, literal = _parse_host(parts.hostname, bracketed="[" in parts.netloc)
    port = port or _DEFAULT_PORTS[scheme]
    # SNI and the Host header never carry the root dot, which certificates do not match.
    bare = host.removesuffix(".")
    shown = f"[{bare}]" if isinstance(literal, ipaddress.IPv6Address) else bare
    host_header = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return _Target(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        path=quote(path, safe=_PATH_SAFE_CHARS),
        host_header=host_header,
        literal=literal,
    )


def _parse_host(hostname: str, *, bracketed: bool) -> tuple[str, Address | None]:
    """Accept a canonical IP literal or a DNS name; refuse 127.1, 0x7f.1, 2130706433 and kin."""
    invalid = _not_allowed(f"url host {hostname!r} is not a valid hostname or IP address")
    if bracketed:
        try:
            v6 = ipaddress.IPv6Address(hostname)
        except ValueError:
            raise invalid from None
        if v6.scope_id is not None:
            raise invalid
        return hostname, v6
    last_label = hostname.removesuffix(".").rsplit(".", 1)[-1]
    if _NUMERIC_LABEL.fullmatch(last_label):
        try:
            return hostname, ipaddress.IPv4Address(hostname)
        except ValueError:
            raise invalid from None
    try:
        ascii_host = hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise invalid from None
    labels = ascii_host.removesuffix(".").split(".")
    if len(ascii_host) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise invalid
    return ascii_host, None


def _checked_addresses(
    target: _Target, resolver: Resolver, allowed: list[Network]
) -> list[Address]:
    if target.literal is not None:
        candidates = [target.literal]
        verb = "points"
    else:
        candidates = _resolve(target, resolver)
        verb = "resolves"
    # Every address must pass: the connection may use any of them.
    for address in candidates:
        reason = refusal(address, allowed)
        if reason:
            raise _not_allowed(f"url {verb} to a non-public address ({address}: {reason})")
    return candidates


def _resolve(target: _Target, resolver: Resolver) -> list[Address]:
    name = target.host.removesuffix(".")
    if name == "localhost" or name.endswith(".localhost"):
        # RFC 6761: these names are loopback whatever DNS says (and "localhost." fails DNS).
        raw = ["127.0.0.1", "::1"]
    else:
        raw = _lookup(target, resolver)
    addresses: list[Address] = []
    for text in raw:
        try:
            # getaddrinfo appends %zone to link-local IPv6; the zone does not change the verdict.
            addresses.append(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError:
            raise _not_allowed(f"host {target.host!r} resolved to {text!r}, not an IP") from None
    return addresses


def _lookup(target: _Target, resolver: Resolver) -> list[str]:
    try:
        raw = resolver(target.host, target.port)
    except Exception as exc:
        raise _download_error(f"could not resolve host {target.host!r} ({exc})") from exc
    if not raw:
        raise _download_error(f"host {target.host!r} has no addresses")
    return raw


def _get(
    target: _Target, addresses: list[Address], *, policy: FetchPolicy, deadline: float
) -> Fetched | str:
    """One request; a Fetched body, or the Location of a redirect to check next."""
    backend = _PinnedBackend(host=target.host, addresses=addresses, deadline=deadline)
    url = httpcore.URL(scheme=target.scheme, host=target.host, port=target.port, target=target.path)
    headers = [
        ("Host", target.host_header),
        ("User-Agent", "PixelForge"),
        ("Accept", "image/*"),
        ("Accept-Encoding", "identity"),
    ]
    limit = policy.timeout_s
    timeouts = {"connect": limit, "read": limit, "write": limit, "pool": limit}
    where = _short(target.url)
    try:
        with (
            httpcore.ConnectionPool(
                ssl_context=_ssl_context(), network_backend=backend, max_connections=1
            ) as pool,
            pool.stream("GET", url, headers=headers, extensions={"timeout": timeouts}) as resp,
        ):
            header = _header_lookup(resp.headers)
            if resp.status in _REDIRECT_STATUSES:
                location = header("location")
                if not location:
                    raise _download_error(f"{where} redirected without a Location header")
                return location
            if not 200 <= resp.status < 300:
                raise _download_error(f"{where} answered HTTP {resp.status}")
            data = _read_body(resp, header("content-length"), policy=policy, deadline=deadline)
            return Fetched(data=data, content_type=header("content-type"), final_url=target.url)
    except httpcore.TimeoutException as exc:
        raise _download_error(f"{where} did not answer within {policy.timeout_s:g} s") from exc
    except httpcore.ConnectError as exc:
        raise _download_error(f"could not connect to {target.host_header} ({exc})") from exc
    except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
        raise _download_error(f"download from {where} failed ({exc})") from exc


def _read_body(
    resp: httpcore.Response, length: str | None, *, policy: FetchPolicy, deadline: float
) -> bytes:
    too_big = too_large("the file at the url", policy.max_bytes)
    if length is not None and length.strip().isdigit() and int(length) > policy.max_bytes:
        raise too_big
    body = bytearray()
    for chunk in resp.iter_stream():
        body += chunk
        if len(body) > policy.max_bytes:
            raise too_big
        if time.monotonic() > deadline:
            raise httpcore.ReadTimeout("overall deadline passed")
    return bytes(body)


def _header_lookup(headers: list[tuple[bytes, bytes]]) -> Callable[[str], str | None]:
    found = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in headers}
    return found.get


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects only to addresses that passed the policy, and never past the deadline.

    httpcore asks to connect to the URL's host; we answer with the checked addresses, so
    the name is not looked up a second time (DNS rebinding cannot swap it) while TLS still
    verifies the certificate against the real host name.
    """

    def __init__(self, *, host: str, addresses: list[Address], deadline: float) -> None:
        self._host = host
        self._addresses = addresses
        self._deadline = deadline
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        if host != self._host:
            raise httpcore.ConnectError(f"refusing to connect to unchecked host {host!r}")
        failure: Exception = httpcore.ConnectError("no address to connect to")
        for address in self._addresses:
            try:
                stream = self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=_budget(timeout, self._deadline, httpcore.ConnectTimeout),
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are never fetched")


class _DeadlineStream(httpcore.NetworkStream):
    """Clamps every socket operation to the fetch's overall deadline (no slow-drip stalls)."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(
            max_bytes, timeout=_budget(timeout, self._deadline, httpcore.ReadTimeout)
        )

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout=_budget(timeout, self._deadline, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        budget = _budget(timeout, self._deadline, httpcore.ConnectTimeout)
        tls = self._inner.start_tls(ssl_context, server_hostname, timeout=budget)
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


def _budget(timeout: float | None, deadline: float, timeout_error: type[Exception]) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise timeout_error("overall deadline passed")
    return remaining if timeout is None else min(timeout, remaining)


def _resolve_all(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # certifi's bundle, as httpx uses; built once on first use rather than at import.
    return httpx.create_ssl_context(trust_env=False)


def _allowed_networks(cidrs: tuple[str, ...]) -> list[Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def _not_allowed(message: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.url_not_allowed, message)


def _download_error(message: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.error_download_image, message)


def _short(url: str) -> str:
    return url if len(url) <= 120 else url[:117] + "..."
