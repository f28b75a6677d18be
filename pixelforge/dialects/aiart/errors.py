"""AiArt's error shape (`{"error": message}`) and its readings of core errors."""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from pixelforge.dialects import common
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.store.tables import Job


class AiArtError(BaseModel):
    """AiArt's error shape, for the OpenAPI document."""

    error: str


def format_error(err: PixelForgeError) -> Response:
    """The seed's error shape: {"error": "<message>"} with the HTTP status (and headers)."""
    return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)


def invalid(message: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.invalid_parameter, message)


def job_error(job: Job) -> PixelForgeError:
    err = common.job_error(job, fallback="generation failed")
    # A refused result is about the request, not a server fault.
    if err.code == ErrorCode.error_nsfw_content_detected:
        return PixelForgeError(err.code, err.message, status=400)
    return err
