"""Who pays for an AiArt call: the caller's key, else the shared anonymous account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool

from pixelforge.dialects.aiart.settings import options_of
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.services import Services
from pixelforge.store.tables import Account
from pixelforge.web.deps import authenticate, credential, get_services
from pixelforge.web.middleware import LimitsMiddleware
from pixelforge.web.openapi import authenticates


# -- who pays --------------------------------------------------------------------------------
def anonymous_account(services: Services) -> Account:
    """The account anonymous use is charged to, created (with its grant) when missing."""
    s = options_of(services)
    try:
        return services.accounts.find(s.anonymous_email)
    except PixelForgeError as e:
        if e.code != ErrorCode.not_found:
            raise
    try:
        account, _ = services.accounts.create_account(
            email=s.anonymous_email, credits=s.anonymous_credits
        )
    except PixelForgeError as err:  # another process created it first
        if err.code != ErrorCode.conflict:
            raise
        account = services.accounts.find(s.anonymous_email)
    return account


@dataclass(frozen=True)
class Caller:
    account: Account
    anonymous: bool
    ip: str


@authenticates
async def current_caller(request: Request) -> Caller:
    """A key's account when one is sent (or required), else the anonymous account."""
    services = get_services(request)
    ip = LimitsMiddleware.client_ip(services, request.scope)
    if options_of(services).require_key or credential(request) is not None:
        principal = await run_in_threadpool(authenticate, services, request)
        return Caller(principal.account, anonymous=False, ip=ip)
    account = await run_in_threadpool(anonymous_account, services)
    if account.disabled:
        raise PixelForgeError(
            ErrorCode.forbidden, "anonymous use is disabled on this server; send an API key"
        )
    return Caller(account, anonymous=True, ip=ip)


CallerDep = Annotated[Caller, Depends(current_caller)]
IdempotencyKey = Annotated[str | None, Header(max_length=128)]


def idempotency(caller: Caller, key: str | None) -> str | None:
    # Anonymous callers share one account: scope their keys by address so two clients that
    # pick the same key never receive each other's job.
    if not key or not caller.anonymous:
        return key
    return f"aiart:{caller.ip}:{key}"
