"""The Perfect AI dialect (Perfect Corp's S2S API v1.0), mounted under /perfect.

A Perfect client changes only its base URL to `<server>/perfect`: `s2s/v1.0/client/auth`
(client_id + RSA id_token -> access token), then per feature `file/<feature>` (signed upload
URLs), `task/style-group/<feature>` and `task/style/<feature>` (the catalog), and
`task/<feature>` (run with request_id, poll with task_id). See docs/dialects/perfect.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from pixelforge.accounts.tokens import issue_access_token
from pixelforge.api.deps import PrincipalDep, ServicesDep, credential
from pixelforge.dialects.common import base_url
from pixelforge.dialects.perfect import features as perfect_features
from pixelforge.dialects.perfect import routes_tasks as perfect_tasks
from pixelforge.dialects.perfect.auth import (
    PerfectError,
    ensure_key,
    read_id_token,
    server_key,
)
from pixelforge.dialects.perfect.settings import key_path, load, options_of
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.services import Services

NAME = "perfect"
PREFIX = perfect_features.PREFIX
router = APIRouter()

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
    elif err.code.value in perfect_tasks.ENGINE_CODES:
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


def on_startup(services: Services) -> None:
    """Generate the server's RSA key pair once (data_dir/perfect_rsa.pem, mode 0600)."""
    options = load(services.settings)
    services.extensions[NAME] = options
    ensure_key(key_path(options))
    server_key(options)


# -- authentication ------------------------------------------------------------------------


class AuthIn(BaseModel):
    client_id: str = Field(
        min_length=1,
        max_length=200,
        description="your PixelForge API key (pf_...)",
        examples=["pf_1b33b34c_bhqHpz_C0CVx51_aYObZvMf3EM97FyuyEZ0NbbTyfp0"],
    )
    id_token: str = Field(
        min_length=1,
        max_length=4096,
        description="base64 of RSA(client secret, 'client_id=<client_id>&timestamp=<ms>')",
        examples=["dMtD+7WpLVe8Z1sdJAQ6GhuJBI+YeR79+FVNspLjEsfMIpfiXmdyskjAPEFgCwseJJozqZ=="],
    )


@router.post(
    f"{perfect_features.API}/client/auth",
    tags=["perfect"],
    summary="Authenticate: client_id + id_token -> access_token (2 hours)",
)
async def client_auth(body: AuthIn, services: ServicesDep) -> dict[str, Any]:
    options = options_of(services)

    def work() -> str:
        read_id_token(options, client_id=body.client_id, id_token=body.id_token)
        try:
            account, _ = services.accounts.authenticate_key(body.client_id)
        except PixelForgeError as e:
            raise PerfectError(
                ErrorCode.unauthorized,
                f"client_id: {e.message}",
                perfect_code="InvalidApiKey",
                status=401,
            ) from None
        return issue_access_token(
            key=services.accounts.token_key,
            account_id=account.id,
            ttl_s=options.token_ttl_s,
        )

    token = await run_in_threadpool(work)
    return perfect_features.envelope({"access_token": token})


@router.get(
    f"{PREFIX}/client-credentials",
    tags=["perfect"],
    summary="My client_id and client secret for Perfect clients (PixelForge auth)",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {
                        "client_id": "pf_1b33b34c_bhqHpz_C0CVx51_aYObZvMf3EM97FyuyEZ0NbbTyfp0",
                        "client_secret": "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAh+yS...",
                        "auth_url": "http://localhost:8000/perfect/s2s/v1.0/client/auth",
                        "api_base": "http://localhost:8000/perfect",
                    }
                }
            }
        }
    },
)
def client_credentials(
    request: Request, principal: PrincipalDep, services: ServicesDep
) -> dict[str, Any]:
    cred = credential(request)
    client_id = cred[1] if cred is not None and cred[0] == "key" else None
    return {
        "client_id": client_id,
        "client_secret": server_key(options_of(services)).client_secret,
        "auth_url": f"{base_url(services, request)}{perfect_features.API}/client/auth",
        "api_base": f"{base_url(services, request)}{PREFIX}",
        "id_token": "base64(RSA-PKCS#1-v1.5(client_secret, 'client_id=<client_id>&timestamp="
        "<epoch ms>')); the client secret is an X.509 public key in base64",
        "note": "client_id is a PixelForge API key of your account"
        + ("" if client_id else "; call this with an API key, or create one at POST /v1/keys"),
    }


router.include_router(perfect_tasks.router)
