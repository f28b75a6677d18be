"""The one error enum and the exception every layer raises for a user-facing failure."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # The seeds' codes
    invalid_parameter = "invalid_parameter"
    exceed_max_filesize = "exceed_max_filesize"
    error_download_image = "error_download_image"
    error_decode_image = "error_decode_image"
    error_upload = "error_upload"
    error_inference = "error_inference"
    error_no_face = "error_no_face"
    error_multiple_people = "error_multiple_people"
    error_large_face_angle = "error_large_face_angle"
    error_no_shoulder = "error_no_shoulder"
    error_pose = "error_pose"
    error_face_parsing = "error_face_parsing"
    error_nsfw_content_detected = "error_nsfw_content_detected"
    # Ours
    unauthorized = "unauthorized"
    forbidden = "forbidden"
    not_found = "not_found"
    insufficient_credits = "insufficient_credits"
    rate_limited = "rate_limited"
    unsupported_media_type = "unsupported_media_type"
    image_too_large = "image_too_large"
    url_not_allowed = "url_not_allowed"
    idempotency_mismatch = "idempotency_mismatch"
    context_length_exceeded = "context_length_exceeded"  # prompt + max_tokens > the window
    conflict = "conflict"
    expired = "expired"
    signature_invalid = "signature_invalid"
    unknown_pipeline = "unknown_pipeline"
    invalid_card = "invalid_card"  # a character card file that cannot be read as one
    model_unavailable = "model_unavailable"
    not_available = "not_available"  # this server does not offer this feature
    canceled = "canceled"
    task_abandoned = "task_abandoned"  # not polled within its poll timeout
    worker_lost = "worker_lost"
    timeout = "timeout"
    unavailable = "unavailable"  # a service the server needs (its database) is down: retry
    internal_error = "internal_error"


_STATUS = {
    ErrorCode.invalid_parameter: 400,
    ErrorCode.error_download_image: 400,
    ErrorCode.error_decode_image: 400,
    ErrorCode.image_too_large: 400,
    ErrorCode.url_not_allowed: 400,
    ErrorCode.unknown_pipeline: 400,
    ErrorCode.context_length_exceeded: 400,
    ErrorCode.invalid_card: 400,
    ErrorCode.error_no_face: 400,
    ErrorCode.error_multiple_people: 400,
    ErrorCode.error_large_face_angle: 400,
    ErrorCode.error_no_shoulder: 400,
    ErrorCode.error_pose: 400,
    ErrorCode.error_face_parsing: 400,
    ErrorCode.unauthorized: 401,
    ErrorCode.insufficient_credits: 402,
    ErrorCode.forbidden: 403,
    ErrorCode.signature_invalid: 403,
    ErrorCode.not_found: 404,
    ErrorCode.conflict: 409,
    ErrorCode.expired: 410,
    ErrorCode.exceed_max_filesize: 413,
    ErrorCode.unsupported_media_type: 415,
    ErrorCode.idempotency_mismatch: 422,
    ErrorCode.rate_limited: 429,
    ErrorCode.not_available: 501,
    ErrorCode.model_unavailable: 503,
    ErrorCode.unavailable: 503,
}


class PixelForgeError(Exception):
    """A failure with a stable code and a message a person can act on."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS.get(code, 500)
        self.headers = headers or {}

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code.value, "message": self.message}}


def human_size(n: int) -> str:
    """'10 MB', '195.3 KB', '512 bytes': for limits in messages people read."""
    for unit, size in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def too_large(what: str, limit: int) -> PixelForgeError:
    return PixelForgeError(
        ErrorCode.exceed_max_filesize, f"{what} is larger than the {human_size(limit)} limit"
    )


def not_found(what: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.not_found, f"{what} not found")
