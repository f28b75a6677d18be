"""Administration: accounts, keys and credit grants (admin keys only)."""

from __future__ import annotations

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from pixelforge.accounts.ledger import MAX_GRANT
from pixelforge.api.routes.me import KeyOut, NewKeyIn, NewKeyOut, key_out
from pixelforge.api.schemas import AccountRef, KeyId
from pixelforge.web.deps import AdminAccount, ServicesDep
from pixelforge.web.errors import ErrorOut

router = APIRouter(prefix="/v1/admin", tags=["admin"])
MAX_OFFSET = 2**31 - 1  # past any real table, and inside every database's integer range


class AccountIn(BaseModel):
    email: str = Field(examples=["ada@example.com"])
    password: str | None = Field(None, min_length=8)
    credits: int = Field(0, ge=0, le=MAX_GRANT, examples=[100])
    is_admin: bool = False
    block_explicit: bool = Field(False, description="refuse explicit outputs by default")


class AccountPatch(BaseModel):
    block_explicit: bool | None = Field(None, examples=[True])
    disabled: bool | None = Field(None, examples=[False])


class AccountOut(BaseModel):
    id: str = Field(examples=["acc_k2xZvWrhyYjf0k1RfHKoMw"])
    email: str = Field(examples=["ada@example.com"])
    is_admin: bool = Field(examples=[False])
    disabled: bool = Field(examples=[False])
    block_explicit: bool = Field(examples=[False])
    credits_available: int = Field(examples=[100])
    credits_held: int = Field(examples=[0])
    created_at: float = Field(examples=[1795303728.73])


class NewAccountOut(AccountOut):
    api_key: str = Field(
        description="the account's first API key; shown only this once",
        examples=["pf_c64c698a_RNjyYiXn5i2Bk0PyAnNhlxxEazAl_6hg0VbC9_60NS4"],
    )


class GrantIn(BaseModel):
    amount: int = Field(gt=0, le=MAX_GRANT, examples=[50])
    note: str = Field("", max_length=200)


def _account_out(services: ServicesDep, account_id: str) -> AccountOut:
    acc = services.accounts.find(account_id)
    bal = services.accounts.balance(acc.id)
    return AccountOut(
        id=acc.id,
        email=acc.email,
        is_admin=acc.is_admin,
        disabled=acc.disabled,
        block_explicit=acc.block_explicit,
        credits_available=bal.available,
        credits_held=bal.held,
        created_at=acc.created_at,
    )


@router.post(
    "/accounts",
    response_model=NewAccountOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create an account with credits and a first API key",
)
def create_account(body: AccountIn, _: AdminAccount, services: ServicesDep) -> NewAccountOut:
    acc, key = services.accounts.create_account(
        email=body.email,
        password=body.password,
        credits=body.credits,
        is_admin=body.is_admin,
        block_explicit=body.block_explicit,
    )
    return NewAccountOut(**_account_out(services, acc.id).model_dump(), api_key=key.plaintext)


@router.get("/accounts", response_model=list[AccountOut], summary="List accounts")
def list_accounts(
    _: AdminAccount,
    services: ServicesDep,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> list[AccountOut]:
    return [
        _account_out(services, a.id)
        for a in services.accounts.list_accounts(limit=limit, offset=offset)
    ]


@router.get("/accounts/{account_id}", response_model=AccountOut, summary="One account")
def get_account(account_id: AccountRef, _: AdminAccount, services: ServicesDep) -> AccountOut:
    return _account_out(services, account_id)


@router.patch(
    "/accounts/{account_id}", response_model=AccountOut, summary="Change an account's flags"
)
def patch_account(
    account_id: AccountRef, body: AccountPatch, _: AdminAccount, services: ServicesDep
) -> AccountOut:
    acc = services.accounts.find(account_id)
    services.accounts.update(acc.id, block_explicit=body.block_explicit, disabled=body.disabled)
    return _account_out(services, acc.id)


@router.post(
    "/accounts/{account_id}/credits",
    response_model=AccountOut,
    summary="Grant credits to an account",
)
def grant(
    account_id: AccountRef, body: GrantIn, _: AdminAccount, services: ServicesDep
) -> AccountOut:
    acc = services.accounts.find(account_id)
    services.accounts.grant_credits(account_id=acc.id, amount=body.amount, note=body.note)
    return _account_out(services, acc.id)


@router.post(
    "/accounts/{account_id}/keys",
    response_model=NewKeyOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key for an account",
)
def create_key(
    account_id: AccountRef, body: NewKeyIn, _: AdminAccount, services: ServicesDep
) -> NewKeyOut:
    acc = services.accounts.find(account_id)
    new = services.accounts.create_key(account_id=acc.id, name=body.name)
    row = next(k for k in services.accounts.list_keys(acc.id) if k.id == new.id)
    return NewKeyOut(**key_out(row).model_dump(), key=new.plaintext)


@router.get("/accounts/{account_id}/keys", response_model=list[KeyOut], summary="An account's keys")
def list_keys(account_id: AccountRef, _: AdminAccount, services: ServicesDep) -> list[KeyOut]:
    acc = services.accounts.find(account_id)
    return [key_out(k) for k in services.accounts.list_keys(acc.id)]


@router.delete(
    "/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke any key",
    description="An admin account's last active key cannot be revoked (409).",
    responses={409: {"model": ErrorOut}},
)
def revoke_key(key_id: KeyId, _: AdminAccount, services: ServicesDep) -> None:
    services.accounts.revoke_key(key_id=key_id)
