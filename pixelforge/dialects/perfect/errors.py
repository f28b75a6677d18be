"""Perfect's error shape (`{status, error, error_code}`) and its error-code names."""

from __future__ import annotations

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from pixelforge.errors import ErrorCode, PixelForgeError


class PerfectErrorOut(BaseModel):
    """Perfect's error shape, for the OpenAPI document."""

    status: int
    error: str
    error_code: str


class PerfectError(PixelForgeError):
    """An error with Perfect's own `error_code` (a name outside PixelForge's enum)."""

    def __init__(self, code: ErrorCode, message: str, *, perfect_code: str, status: int) -> None:
        super().__init__(code, message, status=status)
        self.perfect_code = perfect_code


def invalid(message: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.invalid_parameter, message)


# The engine error codes of the seed (a task's `error`): PixelForge raises most as they are.
ENGINE_CODES = frozenset(
    {
        "exceed_max_filesize",
        "invalid_parameter",
        "error_download_image",
        "error_download_mask",
        "error_decode_image",
        "error_decode_mask",
        "error_nsfw_content_detected",
        "error_no_face",
        "error_pose",
        "error_face_parsing",
        "error_inference",
        "exceed_nsfw_retry_limits",
        "error_upload",
        "error_multiple_people",
        "error_no_shoulder",
        "error_large_face_angle",
        "unknown_internal_error",
    }
)
_ENGINE_ALIASES = {
    "image_too_large": "invalid_parameter",
    "unsupported_media_type": "error_decode_image",
    "url_not_allowed": "error_download_image",
    "not_found": "error_download_image",
}


def engine_code(code: str | None) -> str:
    """A core error code as one of the seed's engine error codes."""
    if code in ENGINE_CODES:
        return code
    return _ENGINE_ALIASES.get(code or "", "unknown_internal_error")


def invalid_task(task_id: str, why: str) -> PerfectError:
    return PerfectError(
        ErrorCode.not_found,
        f"task {task_id!r} {why}",
        perfect_code="InvalidTaskId",
        status=400,
    )


# Request-level failures outside the seed's engine codes: Perfect's own names.
_REQUEST_CODES: dict[ErrorCode, tuple[int, str]] = {
    ErrorCode.unauthorized: (401, "InvalidAccessToken"),
    ErrorCode.insufficient_credits: (400, "CreditInsufficiency"),
    ErrorCode.rate_limited: (429, "TooManyRequests"),
    ErrorCode.idempotency_mismatch: (400, "invalid_parameter"),
    ErrorCode.not_found: (404, "NotFound"),
    ErrorCode.forbidden: (403, "AccessDenied"),
    ErrorCode.unsupported_media_type: (415, "error_decode_image"),
}


def format_error(err: PixelForgeError) -> Response:
    """`{"status", "error", "error_code"}`, status mirroring the HTTP status (as Perfect)."""
    if isinstance(err, PerfectError):
        status, code = err.status, err.perfect_code
    elif err.code.value in ENGINE_CODES:
        status, code = err.status, err.code.value
    elif err.code in _REQUEST_CODES:
        status, code = _REQUEST_CODES[err.code]
        # A route that does not exist stays 404; a missing resource is a bad parameter.
        if err.code == ErrorCode.not_found and not err.message.startswith("no such route"):
            status, code = 400, "invalid_parameter"
    else:
        status = err.status
        code = "invalid_parameter" if status < 500 else "unknown_internal_error"
    body = {"status": status, "error": err.message, "error_code": code}
    return JSONResponse(body, status_code=status, headers=err.headers)
