"""The caller's own account and API keys."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.api.schemas import KeyId
from pixelforge.store.tables import ApiKey
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.errors import ErrorOut

router = APIRouter(prefix="/v1", tags=["account"])


class MeOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "acc_k2xZvWrhyYjf0k1RfHKoMw",
                    "object": "account",
                    "email": "ada@example.com",
                    "is_admin": False,
                    "credits_available": 97,
                    "credits_held": 2,
                    "created_at": 1795303728.73,
                }
            ]
        }
    )
    id: str
    object: str = "account"
    email: str
    is_admin: bool
    credits_available: int
    credits_held: int
    created_at: float


class KeyOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "key_Vb3k0Qm2pL8xT1zR9wYc4A",
                    "prefix": "c64c698a",
                    "name": "laptop",
                    "created_at": 1795303728.73,
                    "revoked_at": None,
                }
            ]
        }
    )
    id: str
    prefix: str
    name: str
    created_at: float
    revoked_at: float | None


class NewKeyOut(KeyOut):
    key: str = Field(
        description="the full key; shown only this once",
        examples=["pf_c64c698a_RNjyYiXn5i2Bk0PyAnNhlxxEazAl_6hg0VbC9_60NS4"],
    )


class NewKeyIn(BaseModel):
    name: str = Field("", max_length=100, examples=["laptop"])


def key_out(row: ApiKey) -> KeyOut:
    return KeyOut(
        id=row.id,
        prefix=row.prefix,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


@router.get("/me", response_model=MeOut, summary="Who am I, and my credits")
def me(account: CurrentAccount, services: ServicesDep) -> MeOut:
    bal = services.accounts.balance(account.id)
    return MeOut(
        id=account.id,
        email=account.email,
        is_admin=account.is_admin,
        credits_available=bal.available,
        credits_held=bal.held,
        created_at=account.created_at,
    )


@router.get("/keys", response_model=list[KeyOut], summary="List my API keys")
def list_keys(account: CurrentAccount, services: ServicesDep) -> list[KeyOut]:
    return [key_out(k) for k in services.accounts.list_keys(account.id)]


@router.post(
    "/keys",
    response_model=NewKeyOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create an API key (shown once)",
)
def create_key(body: NewKeyIn, account: CurrentAccount, services: ServicesDep) -> NewKeyOut:
    new = services.accounts.create_key(account_id=account.id, name=body.name)
    row = next(k for k in services.accounts.list_keys(account.id) if k.id == new.id)
    return NewKeyOut(**key_out(row).model_dump(), key=new.plaintext)


@router.delete(
    "/keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one of my API keys",
    description="An admin account's last active key cannot be revoked (409).",
    responses={409: {"model": ErrorOut}},
)
def revoke_key(key_id: KeyId, account: CurrentAccount, services: ServicesDep) -> None:
    services.accounts.revoke_key(key_id=key_id, account_id=account.id)
