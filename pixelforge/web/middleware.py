"""ASGI middleware: request body size cap and read deadline, per-client-IP rate limit."""

from __future__ import annotations

import contextlib
from typing import NoReturn

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixelforge.accounts.ratelimit import MemoryRateLimiter
from pixelforge.errors import ErrorCode, PixelForgeError, too_large
from pixelforge.services import Services
from pixelforge.web.deps import rate_limited
from pixelforge.web.errors import render_error

_EXEMPT = ("/docs", "/redoc", "/openapi.json", "/healthz")


async def _send_error(scope: Scope, receive: Receive, send: Send, err: PixelForgeError) -> None:
    """The error in the shape of the API the path belongs to (a dialect's or the native)."""
    response = render_error(scope.get("app"), scope.get("path", ""), err)
    await response(scope, receive, send)


class _BodyRefused(Exception):
    """Raised into the app's body read: the body is over the cap or late."""


class LimitsMiddleware:
    """Refuses oversize bodies early (413) and applies the per-IP rate limit (429)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def client_ip(services: Services, scope: Scope) -> str:
        if services.settings.trust_forwarded_for:
            for name, value in scope.get("headers", []):
                if name == b"x-forwarded-for":
                    return str(value.decode().split(",")[0].strip())
        client = scope.get("client")
        return str(client[0]) if client else "unknown"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        s: Services | None = (
            getattr(scope["app"].state, "services", None) if "app" in scope else None
        )
        if (
            s is None
            or scope["type"] not in ("http", "websocket")
            or scope["path"].startswith(_EXEMPT)
        ):
            await self.app(scope, receive, send)
            return
        if s.settings.rate_limit_enabled:
            limit, window = s.rate_per_ip
            ip = self.client_ip(s, scope)
            if isinstance(s.limiter, MemoryRateLimiter):
                retry = s.limiter.hit(f"ip:{ip}", limit=limit, window_s=window)
            else:
                import anyio.to_thread

                retry = await anyio.to_thread.run_sync(
                    lambda: s.limiter.hit(f"ip:{ip}", limit=limit, window_s=window)
                )
            if retry > 0 and scope["type"] == "http":
                await _send_error(scope, receive, send, rate_limited(retry, "client address"))
                return
            if retry > 0:
                await send({"type": "websocket.close", "code": 1008})
                return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self._limit_body(s, scope, receive, send)

    async def _limit_body(self, s: Services, scope: Scope, receive: Receive, send: Send) -> None:
        limit = s.settings.max_upload_bytes
        # Base64 inflates by 4/3; leave room for multipart framing and other fields.
        max_body = limit * 4 // 3 + 64 * 1024
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > max_body:
                await _send_error(scope, receive, send, too_large("the request body", max_body))
                return
        body = _BodyGuard(receive, max_body=max_body, timeout_s=s.settings.body_timeout_s)
        with contextlib.suppress(_BodyRefused):
            await self.app(scope, body.receive, body.send_through(send))
        if body.refusal is not None and not body.started:
            await _send_error(scope, receive, send, body.refusal)


class _BodyGuard:
    """Counts and times the request body as the app reads it. Past the cap or the deadline
    the app's reads fail; whatever the app answers then (FastAPI turns any failure while it
    parses a body into a 400) is dropped, and the middleware answers 413 or 408 instead."""

    def __init__(self, receive: Receive, *, max_body: int, timeout_s: float) -> None:
        self._receive = receive
        self._max_body = max_body
        self._timeout_s = timeout_s
        self._deadline = anyio.current_time() + timeout_s
        self._seen = 0
        self._done = False
        self.refusal: PixelForgeError | None = None
        self.started = False

    def _refuse(self, err: PixelForgeError) -> NoReturn:
        self.refusal = self.refusal or err
        raise _BodyRefused()

    async def receive(self) -> Message:
        if self.refusal is not None:
            raise _BodyRefused()
        if self._done:  # the body is in; later reads wait for a disconnect, untimed
            return await self._receive()
        try:
            with anyio.fail_after(max(self._deadline - anyio.current_time(), 0)):
                msg = await self._receive()
        except TimeoutError:
            self._refuse(
                PixelForgeError(
                    ErrorCode.timeout,
                    f"the request body did not arrive within {self._timeout_s:g} s",
                    status=408,
                    headers={"Connection": "close"},
                )
            )
        if msg["type"] == "http.request":
            self._seen += len(msg.get("body", b""))
            self._done = not msg.get("more_body", False)
            if self._seen > self._max_body:
                self._refuse(too_large("the request body", self._max_body))
        return msg

    def send_through(self, send: Send) -> Send:
        async def guarded(msg: Message) -> None:
            if self.refusal is not None and not self.started:
                return  # the app's answer to a body it could not read; ours replaces it
            if msg["type"] == "http.response.start":
                self.started = True
            await send(msg)

        return guarded
