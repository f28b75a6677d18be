"""Typed dependencies: the services, the authenticated account, the admin check."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.services import Services
from pixelforge.store.tables import Account
from pixelforge.web.openapi import authenticates


@dataclass(frozen=True)
class Principal:
    account: Account
    key_id: str | None  # None when authenticated by an access token


def get_services(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services


def credential(conn: HTTPConnection, *, allow_query: bool = False) -> tuple[str, str] | None:
    """(kind, value) with kind 'key' or 'token', from the headers (or ?token= for browsers)."""
    auth = conn.headers.get("authorization", "").strip()
    if auth:
        scheme, _, value = auth.partition(" ")
        value = value.strip()
        if scheme.lower() == "key" and value:
            return "key", value
        if scheme.lower() == "bearer" and value:
            return ("key" if value.startswith("pf_") else "token"), value
        raise PixelForgeError(
            ErrorCode.unauthorized, "Authorization must be 'Bearer <key or token>' or 'Key <key>'"
        )
    if key := conn.headers.get("x-api-key", "").strip():
        return "key", key
    if allow_query and (value := conn.query_params.get("token", "").strip()):
        return ("key" if value.startswith("pf_") else "token"), value
    return None


def authenticate(
    services: Services, conn: HTTPConnection, *, allow_query: bool = False
) -> Principal:
    cred = credential(conn, allow_query=allow_query)
    if cred is None:
        raise PixelForgeError(
            ErrorCode.unauthorized,
            "authentication required: send 'Authorization: Bearer <API key>' or 'X-API-Key'",
        )
    kind, value = cred
    if kind == "key":
        account, key_id = services.accounts.authenticate_key(value)
        principal = Principal(account=account, key_id=key_id)
    else:
        principal = Principal(account=services.accounts.authenticate_token(value), key_id=None)
    if services.settings.rate_limit_enabled:
        limit, window = services.rate_per_key
        who = principal.key_id or principal.account.id
        retry = services.limiter.hit(f"key:{who}", limit=limit, window_s=window)
        if retry > 0:
            raise rate_limited(retry, "API key")
    return principal


def rate_limited(retry_after_s: float, scope: str) -> PixelForgeError:
    seconds = max(1, math.ceil(retry_after_s))
    return PixelForgeError(
        ErrorCode.rate_limited,
        f"too many requests for this {scope}; retry after {seconds} s",
        headers={"Retry-After": str(seconds)},
    )


@authenticates
def current_principal(request: Request) -> Principal:
    return authenticate(get_services(request), request)


def current_account(principal: Annotated[Principal, Depends(current_principal)]) -> Account:
    return principal.account


def admin_account(account: Annotated[Account, Depends(current_account)]) -> Account:
    if not account.is_admin:
        raise PixelForgeError(ErrorCode.forbidden, "this endpoint needs an administrator key")
    return account


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
CurrentAccount = Annotated[Account, Depends(current_account)]
AdminAccount = Annotated[Account, Depends(admin_account)]
