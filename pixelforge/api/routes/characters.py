"""Characters: create from card fields, list, read, update, soft delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.chat.store import CharacterService
from pixelforge.store.tables import CharacterRow
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix="/v1/characters", tags=["characters"])

CharacterId = Annotated[str, Path(max_length=64, examples=["chr_Qm2pL8xT1zR9wYc4AVb3k0"])]


def character_service(services: ServicesDep) -> CharacterService:
    return CharacterService(services.db)


CharactersDep = Annotated[CharacterService, Depends(character_service)]


class CardFields(BaseModel):
    """The Character Card V2/V3 `data` fields. Fields not named here are kept as sent."""

    model_config = ConfigDict(extra="allow")

    description: str | None = None
    personality: str | None = None
    scenario: str | None = None
    first_mes: str | None = Field(None, description="the greeting; {{char}} and {{user}} work")
    mes_example: str | None = None
    creator_notes: str | None = None
    system_prompt: str | None = None
    post_history_instructions: str | None = None
    alternate_greetings: list[str] | None = None
    character_book: dict[str, Any] | None = Field(None, description="the lorebook")
    tags: list[str] | None = None
    creator: str | None = None
    character_version: str | None = None
    extensions: dict[str, Any] | None = None
    # V3
    nickname: str | None = None
    creator_notes_multilingual: dict[str, str] | None = None
    source: list[str] | None = None
    group_only_greetings: list[str] | None = None
    creation_date: int | None = None
    modification_date: int | None = None
    assets: list[dict[str, Any]] | None = None


class CharacterIn(CardFields):
    name: str = Field(min_length=1, max_length=200, examples=["Seraphina"])
    avatar: str | None = Field(None, max_length=64, description="a media id you own")


class CharacterPatch(CardFields):
    name: str | None = Field(None, min_length=1, max_length=200)
    avatar: str | None = Field(None, max_length=64, description="a media id you own; null: none")


class CharacterOut(BaseModel):
    object: str = "character"
    id: str
    name: str
    avatar: str | None
    data: dict[str, Any] = Field(description="the card's V3 `data` object, as sent")
    created_at: float
    updated_at: float


class CharacterList(BaseModel):
    object: str = "list"
    data: list[CharacterOut]
    next_cursor: str | None


def character_out(row: CharacterRow) -> CharacterOut:
    return CharacterOut(
        id=row.id,
        name=row.name,
        avatar=row.avatar_media_id,
        data=row.data,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _card(body: BaseModel) -> dict[str, Any]:
    """The fields the client sent, extras included, without `avatar`."""
    return body.model_dump(mode="json", exclude_unset=True, exclude={"avatar"})


@router.post("", response_model=CharacterOut, status_code=status.HTTP_201_CREATED, summary="Create")
@answers(404)
def create_character(
    body: CharacterIn, account: CurrentAccount, characters: CharactersDep
) -> CharacterOut:
    return character_out(characters.create_from_card(account.id, _card(body), body.avatar))


@router.get("", response_model=CharacterList, summary="List my characters, newest first")
def list_characters(
    account: CurrentAccount,
    characters: CharactersDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> CharacterList:
    rows, nxt = characters.list(account.id, limit=limit, cursor=cursor)
    return CharacterList(data=[character_out(r) for r in rows], next_cursor=nxt)


@router.get("/{character_id}", response_model=CharacterOut, summary="Read a character")
def get_character(
    character_id: CharacterId, account: CurrentAccount, characters: CharactersDep
) -> CharacterOut:
    return character_out(characters.get(account.id, character_id))


@router.patch("/{character_id}", response_model=CharacterOut, summary="Change card fields")
def update_character(
    character_id: CharacterId,
    body: CharacterPatch,
    account: CurrentAccount,
    characters: CharactersDep,
) -> CharacterOut:
    row = characters.update(
        account.id,
        character_id,
        fields=_card(body),
        avatar=body.avatar,
        set_avatar="avatar" in body.model_fields_set,
    )
    return character_out(row)


@router.delete(
    "/{character_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete: hidden from now on; its chats stay readable but take no new messages",
)
def delete_character(
    character_id: CharacterId, account: CurrentAccount, characters: CharactersDep
) -> None:
    characters.delete(account.id, character_id)
