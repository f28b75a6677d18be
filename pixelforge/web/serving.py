"""How `pixelforge serve` runs uvicorn: an HTTP protocol guarded against slow, greedy clients."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import ASGIApp

    from pixelforge.settings import Settings


class _Conn(Protocol):
    """What the guards use of a uvicorn HTTP protocol (both implementations have these)."""

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    connections: set[Any]
    client: tuple[str, int] | None
    cycle: Any


class _Guard:
    """One connection's header deadline, and the per-address connection cap.

    uvicorn bounds only the idle time between requests (`timeout_keep_alive`), and any byte
    resets it: a client that trickles a request line or headers holds its connection (and a
    file descriptor) for ever. The deadline runs from the connection's start and again after
    each response; it is met once a request's headers are complete."""

    def __init__(self, conn: _Conn, *, header_timeout_s: float, max_per_client: int) -> None:
        self.conn = conn
        self.header_timeout_s = header_timeout_s
        self.max_per_client = max_per_client
        self.timer: asyncio.TimerHandle | None = None

    def admit(self) -> bool:
        """False (and the connection answered 429 and closed) past the per-address cap."""
        conn = self.conn
        if self.max_per_client <= 0 or conn.client is None:
            return True
        address = conn.client[0]
        same = sum(
            1 for c in conn.connections if (getattr(c, "client", None) or ("",))[0] == address
        )
        if same <= self.max_per_client:
            return True
        message = f"too many open connections from your address (at most {self.max_per_client})"
        body = json.dumps({"error": {"code": "rate_limited", "message": message}}).encode()
        head = (
            "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
            f"retry-after: 1\r\nconnection: close\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        conn.transport.write(head.encode() + body)
        conn.transport.close()
        return False

    def arm(self) -> None:
        self.disarm()
        if not self.conn.transport.is_closing():
            self.timer = self.conn.loop.call_later(self.header_timeout_s, self._expire)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self) -> None:
        self.timer = None
        transport = self.conn.transport
        upgraded = transport.get_protocol() is not cast(object, self.conn)
        if transport.is_closing() or upgraded:
            return  # closed already, or upgraded to a websocket (which has its own pings)
        cycle = self.conn.cycle
        if cycle is None or cycle.response_complete:  # no request whose headers are in
            transport.close()


def guarded_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, else h11) with the guards."""
    if importlib.util.find_spec("httptools") is not None:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    else:  # pragma: no cover - httptools comes with uvicorn[standard]
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]

    header_timeout_s = settings.header_timeout_s
    max_per_client = settings.max_connections_per_client

    class Guarded(Base):
        _guard: _Guard

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._guard = _Guard(
                self, header_timeout_s=header_timeout_s, max_per_client=max_per_client
            )
            if self._guard.admit():
                self._guard.arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._guard.disarm()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._guard.arm()

    return Guarded


def uvicorn_config(
    app: ASGIApp, settings: Settings, *, host: str, port: int, **options: Any
) -> uvicorn.Config:
    """The server configuration `pixelforge serve` runs (tests run the same)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, http=guarded_protocol(settings), **options)
