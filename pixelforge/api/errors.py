"""Every failure leaves as {"error": {"code", "message"}} with a stable code."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from pixelforge.errors import ErrorCode, PixelForgeError

log = logging.getLogger("pixelforge.api")

_HTTP_CODES = {
    400: ErrorCode.invalid_parameter,
    401: ErrorCode.unauthorized,
    403: ErrorCode.forbidden,
    404: ErrorCode.not_found,
    405: ErrorCode.invalid_parameter,
    413: ErrorCode.exceed_max_filesize,
    415: ErrorCode.unsupported_media_type,
}


def error_response(err: PixelForgeError) -> JSONResponse:
    return JSONResponse(err.to_dict(), status_code=err.status, headers=err.headers)


def validation_message(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    return f"{'.'.join(loc) or 'body'}: {first.get('msg', 'invalid')}"


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette reports only the first route)."""
    allowed = []
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        probe = {**request.scope, "method": method}
        if any(r.matches(probe)[0] == Match.FULL for r in request.app.router.routes):
            allowed.append(method)
    return allowed


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PixelForgeError)
    async def _pf(_: Request, exc: PixelForgeError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(PixelForgeError(ErrorCode.invalid_parameter, validation_message(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.internal_error)
        message = exc.detail if isinstance(exc.detail, str) else code.value
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route; see /docs for the API"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return error_response(
            PixelForgeError(code, message, status=exc.status_code, headers=headers)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(
            PixelForgeError(
                ErrorCode.internal_error, "internal error; the server log has the details"
            )
        )
