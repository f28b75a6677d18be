"""Eventstation's error shape: FastAPI's own `{"detail": message}`."""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from pixelforge.errors import PixelForgeError


class EventstationError(BaseModel):
    """Eventstation's error shape, for the OpenAPI document."""

    detail: str


def format_error(err: PixelForgeError) -> Response:
    """FastAPI's shape: {"detail": message}; a 401 names the Bearer scheme."""
    headers = dict(err.headers)
    if err.status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse({"detail": err.message}, status_code=err.status, headers=headers)
