"""Personas: who the user plays in a chat; one default per account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, Field

from pixelforge.chat.store import MAX_DESCRIPTION, PersonaService
from pixelforge.store.tables import PersonaRow
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix="/v1/personas", tags=["personas"])

PersonaId = Annotated[str, Path(max_length=64, examples=["prs_Vb3k0Qm2pL8xT1zR9wYc4A"])]


def persona_service(services: ServicesDep) -> PersonaService:
    return PersonaService(services.db)


PersonasDep = Annotated[PersonaService, Depends(persona_service)]


class PersonaIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["Ada"])
    description: str = Field("", max_length=MAX_DESCRIPTION)
    avatar: str | None = Field(None, max_length=64, description="a media id you own")
    is_default: bool = Field(False, description="the account's first persona is always default")


class PersonaPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=MAX_DESCRIPTION)
    avatar: str | None = Field(None, max_length=64, description="a media id you own; null: none")
    is_default: bool | None = Field(None, description="true makes this the default (only)")


class PersonaOut(BaseModel):
    object: str = "persona"
    id: str
    name: str
    description: str
    avatar: str | None
    is_default: bool
    created_at: float
    updated_at: float


class PersonaList(BaseModel):
    object: str = "list"
    data: list[PersonaOut]
    next_cursor: str | None


def persona_out(row: PersonaRow) -> PersonaOut:
    return PersonaOut(
        id=row.id,
        name=row.name,
        description=row.description,
        avatar=row.avatar_media_id,
        is_default=row.is_default,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.post("", response_model=PersonaOut, status_code=status.HTTP_201_CREATED, summary="Create")
@answers(404)
def create_persona(body: PersonaIn, account: CurrentAccount, personas: PersonasDep) -> PersonaOut:
    row = personas.create(
        account.id,
        name=body.name,
        description=body.description,
        avatar=body.avatar,
        is_default=body.is_default,
    )
    return persona_out(row)


@router.get("", response_model=PersonaList, summary="List my personas, newest first")
def list_personas(
    account: CurrentAccount,
    personas: PersonasDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> PersonaList:
    rows, nxt = personas.list(account.id, limit=limit, cursor=cursor)
    return PersonaList(data=[persona_out(r) for r in rows], next_cursor=nxt)


@router.get("/{persona_id}", response_model=PersonaOut, summary="Read a persona")
def get_persona(
    persona_id: PersonaId, account: CurrentAccount, personas: PersonasDep
) -> PersonaOut:
    return persona_out(personas.get(account.id, persona_id))


@router.patch(
    "/{persona_id}",
    response_model=PersonaOut,
    summary="Change a persona; is_default=true unsets the previous default in the same step",
)
@answers(409)
def update_persona(
    persona_id: PersonaId, body: PersonaPatch, account: CurrentAccount, personas: PersonasDep
) -> PersonaOut:
    changes = body.model_dump(exclude_unset=True)
    return persona_out(personas.update(account.id, persona_id, changes))


@router.delete(
    "/{persona_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete (409 for the last persona or one a chat uses)",
)
@answers(409)
def delete_persona(persona_id: PersonaId, account: CurrentAccount, personas: PersonasDep) -> None:
    personas.delete(account.id, persona_id)
