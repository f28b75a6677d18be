"""Perfect's client routes (auth, credentials), with the per-feature ones of routes_tasks.

A Perfect client changes only its base URL to `<server>/perfect`: `s2s/v1.0/client/auth`
(client_id + RSA id_token -> access token), then per feature `file/<feature>` (signed upload
URLs), `task/style-group/<feature>` and `task/style/<feature>` (the catalog), and
`task/<feature>` (run with request_id, poll with task_id). See docs/dialects/perfect.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from pixelforge.accounts.tokens import issue_access_token
from pixelforge.dialects.common import base_url
from pixelforge.dialects.perfect import features, routes_tasks
from pixelforge.dialects.perfect.auth import (
    read_id_token,
    server_key,
)
from pixelforge.dialects.perfect.errors import PerfectError
from pixelforge.dialects.perfect.schemas import AuthIn
from pixelforge.dialects.perfect.settings import options_of
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.web.deps import PrincipalDep, ServicesDep, credential
from pixelforge.web.openapi import answers

router = APIRouter()

# -- authentication ------------------------------------------------------------------------


@router.post(
    f"{features.API}/client/auth",
    tags=["perfect"],
    summary="Authenticate: client_id + id_token -> access_token (2 hours)",
)
@answers(401)
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
    return features.envelope({"access_token": token})


@router.get(
    f"{features.PREFIX}/client-credentials",
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
        "auth_url": f"{base_url(services, request)}{features.API}/client/auth",
        "api_base": f"{base_url(services, request)}{features.PREFIX}",
        "id_token": "base64(RSA-PKCS#1-v1.5(client_secret, 'client_id=<client_id>&timestamp="
        "<epoch ms>')); the client secret is an X.509 public key in base64",
        "note": "client_id is a PixelForge API key of your account"
        + ("" if client_id else "; call this with an API key, or create one at POST /v1/keys"),
    }


router.include_router(routes_tasks.router)
