"""OpenAI's error shape (`{"error": {message, type, param, code}}`) and code mapping."""

from __future__ import annotations

import re
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pixelforge.errors import ErrorCode, PixelForgeError

_PARAM_RE = re.compile(r"^([\w./\[\]]+): ")
# Core parameter names -> the OpenAI parameter a client sent.
_PARAMS = {"num_images": "n", "width": "size", "height": "size", "width/height": "size"}
_ERRORS: dict[ErrorCode, tuple[int | None, str, str | None]] = {  # status, type, code
    ErrorCode.unauthorized: (None, "invalid_request_error", "invalid_api_key"),
    ErrorCode.insufficient_credits: (429, "insufficient_quota", "insufficient_quota"),
    ErrorCode.rate_limited: (None, "requests", "rate_limit_exceeded"),
    ErrorCode.error_nsfw_content_detected: (
        400,
        "invalid_request_error",
        "content_policy_violation",
    ),
    ErrorCode.timeout: (504, "server_error", "timeout"),
}
# Retrying these cannot help (or would run the job again); everything else keeps the default.
_NO_RETRY = {ErrorCode.insufficient_credits, ErrorCode.model_unavailable, ErrorCode.timeout}


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorOut(BaseModel):
    """OpenAI's error shape, for the OpenAPI document."""

    error: OpenAIErrorBody


class OpenAIError(PixelForgeError):
    """A PixelForge error that names the OpenAI request parameter at fault (and, where OpenAI
    has its own for the case, OpenAI's error code)."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        param: str | None,
        openai_code: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(code, message, **kw)
        self.param = param
        self.openai_code = openai_code


def _param(err: PixelForgeError) -> str | None:
    if isinstance(err, OpenAIError):
        return err.param
    if err.status >= 500 or err.code in _ERRORS:
        return None
    m = _PARAM_RE.match(err.message)
    if m is None or m.group(1) == "body":
        return None
    name = m.group(1).removeprefix("params.").split(".")[0].split("[")[0]
    return _PARAMS.get(name, name)


def format_error(err: PixelForgeError) -> Response:
    status, kind, code = _ERRORS.get(err.code, (None, "", err.code.value))
    if isinstance(err, OpenAIError) and err.openai_code:
        code = err.openai_code
    status = status or err.status
    if not kind:
        kind = "server_error" if status >= 500 else "invalid_request_error"
    message = err.message.replace("Extra inputs are not permitted", "not supported here")
    headers = dict(err.headers)
    if err.code in _NO_RETRY:
        headers.setdefault("x-should-retry", "false")
    body = {"error": {"message": message, "type": kind, "param": _param(err), "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def bad(param: str, message: str) -> OpenAIError:
    return OpenAIError(ErrorCode.invalid_parameter, f"{param}: {message}", param=param)
