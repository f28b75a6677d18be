"""Every failure leaves as {"error": {"code", "message"}} with a stable code."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
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


ErrorFormat = Callable[[PixelForgeError], Response]


class ErrorBody(BaseModel):
    code: str = Field(examples=["invalid_parameter"])
    message: str = Field(examples=["params.scale: Input should be 1, 2 or 4"])


class ErrorOut(BaseModel):
    """The native error shape, for the OpenAPI document."""

    error: ErrorBody


def error_response(err: PixelForgeError) -> JSONResponse:
    return JSONResponse(err.to_dict(), status_code=err.status, headers=err.headers)


def register_error_format(
    app: FastAPI, prefix: str, render: ErrorFormat, model: type[BaseModel]
) -> None:
    """Errors on paths under `prefix` leave in a dialect's own shape (longest prefix wins);
    `model` is that shape for the OpenAPI document."""
    formats: list[tuple[str, ErrorFormat]] = getattr(app.state, "error_formats", [])
    formats.append((prefix.rstrip("/"), render))
    formats.sort(key=lambda f: len(f[0]), reverse=True)
    app.state.error_formats = formats
    models: dict[str, type[BaseModel]] = getattr(app.state, "error_models", {})
    models[prefix.rstrip("/")] = model
    app.state.error_models = models


def error_model(app: FastAPI, path: str) -> type[BaseModel]:
    """The error shape documented for a path: its dialect's, else the native ErrorOut."""
    models: dict[str, type[BaseModel]] = getattr(app.state, "error_models", {})
    for prefix in sorted(models, key=len, reverse=True):
        if path == prefix or path.startswith(prefix + "/"):
            return models[prefix]
    return ErrorOut


def render_error(app: object, path: str, err: PixelForgeError) -> Response:
    """The error in the shape of the API the path belongs to (native by default)."""
    state = getattr(app, "state", None)
    for prefix, render in getattr(state, "error_formats", ()):
        if path == prefix or path.startswith(prefix + "/"):
            response: Response = render(err)
            return response
    return error_response(err)


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
    async def _pf(request: Request, exc: PixelForgeError) -> Response:
        return render_error(app, request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        err = PixelForgeError(ErrorCode.invalid_parameter, validation_message(exc))
        return render_error(app, request.url.path, err)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.internal_error)
        message = exc.detail if isinstance(exc.detail, str) else code.value
        if exc.status_code == 404 and message == "Not Found":
            message = "no such route; see /docs for the API"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        err = PixelForgeError(code, message, status=exc.status_code, headers=headers)
        return render_error(app, request.url.path, err)

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError) -> Response:
        # The database restarting or unreachable (or SQLite locked past its busy timeout):
        # nothing was changed, so the client may simply retry; a 500 would say "our bug".
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        err = PixelForgeError(
            ErrorCode.unavailable,
            "the database is unavailable for a moment; retry shortly",
            headers={"Retry-After": "5"},
        )
        return render_error(app, request.url.path, err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        err = PixelForgeError(
            ErrorCode.internal_error, "internal error; the server log has the details"
        )
        return render_error(app, request.url.path, err)
