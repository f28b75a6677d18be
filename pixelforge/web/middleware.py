"""ASGI middleware: request body size cap and per-client-IP rate limit."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixelforge.accounts.ratelimit import MemoryRateLimiter
from pixelforge.errors import PixelForgeError, too_large
from pixelforge.services import Services
from pixelforge.web.deps import rate_limited
from pixelforge.web.errors import render_error

_EXEMPT = ("/docs", "/redoc", "/openapi.json", "/healthz")


async def _send_error(scope: Scope, receive: Receive, send: Send, err: PixelForgeError) -> None:
    """The error in the shape of the API the path belongs to (a dialect's or the native)."""
    response = render_error(scope.get("app"), scope.get("path", ""), err)
    await response(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


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
        too_big = too_large("the request body", max_body)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > max_body:
                await _send_error(scope, receive, send, too_big)
                return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > max_body:
                    raise _BodyTooLarge()
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_error(scope, receive, send, too_big)
