"""The aliveai dialect's error shape, and its "not available on this server" error."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from pixelforge.errors import ErrorCode, PixelForgeError


def not_available(message: str) -> PixelForgeError:
    """A feature of the seed this server does not run (501, errorType NOT_AVAILABLE)."""
    return PixelForgeError(ErrorCode.not_available, message)


def error_type(code: str | None) -> str:
    """The AliveAI `errorType` of a core error code: the code in upper case, or UNKNOWN."""
    return code.upper() if code else "UNKNOWN"


def error_body(err: PixelForgeError, **extra: Any) -> dict[str, Any]:
    """{"status", "errorType", "code", "message"} (plus e.g. promptId for a failed prompt)."""
    code = err.code.value
    return {
        "status": err.status,
        "errorType": error_type(code),
        "code": code,
        "message": err.message,
        **extra,
    }


class AliveAIError(BaseModel):
    """AliveAI's error shape, for the OpenAPI document (a failed prompt adds e.g. promptId)."""

    model_config = ConfigDict(extra="allow")

    status: int
    errorType: str
    code: str
    message: str


def format_error(err: PixelForgeError) -> Response:
    return JSONResponse(error_body(err), status_code=err.status, headers=err.headers)
