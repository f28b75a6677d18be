"""AliveAI's Chat Character and Chat Persona Resources (/aliveai/chat-characters,
/aliveai/chat-personas): the native characters and personas (`chat/store.py`), in the seed's
fields."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from pixelforge.chat.service import ChatService
from pixelforge.chat.store import CharacterService, PersonaService
from pixelforge.dialects.aliveai import chat_views as views
from pixelforge.dialects.aliveai import examples as ex
from pixelforge.dialects.aliveai import examples_chat as exc
from pixelforge.dialects.aliveai.schemas_chat import CharacterRequest, PersonaRequest
from pixelforge.errors import PixelForgeError
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix="/aliveai", tags=["aliveai"])

Id = Annotated[str, Path(max_length=64)]
PAGE = 100


# -- characters ------------------------------------------------------------------------------
@router.get(
    "/chat-characters",
    summary="Get Characters For User (newest first; deleted ones left out)",
    responses=ex.responses([exc.CHARACTER]),
)
def get_characters(
    request: Request, account: CurrentAccount, services: ServicesDep
) -> list[dict[str, Any]]:
    characters = CharacterService(services.db)
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        rows, cursor = characters.list(account.id, limit=PAGE, cursor=cursor)
        out.extend(views.character(services, request, r) for r in rows)
        if cursor is None:
            return out


@router.post(
    "/chat-characters",
    summary="Submit Character",
    responses=ex.responses(
        {"chatCharacterId": exc.CHARACTER_ID},
        ex.error(404, "not_found", "avatar: media 'med_x' not found"),
    ),
)
@answers(404)
def submit_character(
    body: CharacterRequest, account: CurrentAccount, services: ServicesDep
) -> dict[str, str]:
    row = CharacterService(services.db).create_from_card(
        account.id, views.card_fields(body), body.mediaId
    )
    return {"chatCharacterId": row.id}


@router.get(
    "/chat-characters/{id}",
    summary="Get Character (null when there is no such character of yours)",
    responses=ex.responses(exc.CHARACTER),
)
def get_character(
    id: Id, request: Request, account: CurrentAccount, services: ServicesDep
) -> dict[str, Any] | None:
    try:
        row = CharacterService(services.db).get(account.id, id)
    except PixelForgeError:
        return None  # the seed: "or null if it does not exist"
    return views.character(services, request, row)


@router.put(
    "/chat-characters/{id}",
    summary="Update Character (name, bio, short bio; the first message is replaced)",
    responses=ex.responses(exc.CHARACTER, exc.CHARACTER_NOT_FOUND),
)
def update_character(
    id: Id, body: CharacterRequest, request: Request, account: CurrentAccount, services: ServicesDep
) -> dict[str, Any]:
    characters = CharacterService(services.db)
    current = characters.get(account.id, id)
    row = characters.update(
        account.id,
        id,
        fields=views.card_fields(body, current.data.get("extensions") or {}),
        avatar=body.mediaId,
        set_avatar=body.mediaId is not None,
    )
    return views.character(services, request, row)


@router.delete(
    "/chat-characters/{id}",
    status_code=204,
    summary="Delete Character (hidden from now on; its chats remain)",
    responses=ex.responses(None, exc.CHARACTER_NOT_FOUND),
)
def delete_character(id: Id, account: CurrentAccount, services: ServicesDep) -> Response:
    CharacterService(services.db).delete(account.id, id)
    return Response(status_code=204)


# -- personas --------------------------------------------------------------------------------
@router.get("/chat-personas", summary="Get Personas", responses=ex.responses([exc.PERSONA]))
def get_personas(account: CurrentAccount, services: ServicesDep) -> list[dict[str, Any]]:
    personas = PersonaService(services.db)
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        rows, cursor = personas.list(account.id, limit=PAGE, cursor=cursor)
        out.extend(views.persona(r) for r in rows)
        if cursor is None:
            return out


@router.post("/chat-personas", summary="Create Persona", responses=ex.responses(exc.PERSONA))
def create_persona(
    body: PersonaRequest, account: CurrentAccount, services: ServicesDep
) -> dict[str, Any]:
    row = PersonaService(services.db).create(
        account.id, name=body.name, description=body.bio or "", is_default=body.isDefault
    )
    return views.persona(row)


@router.get(
    "/chat-personas/chats/{chatId}",
    summary="Get Persona For Chat",
    responses=ex.responses(exc.PERSONA, exc.CHAT_NOT_FOUND),
)
def get_persona_for_chat(
    chatId: Id, account: CurrentAccount, services: ServicesDep
) -> dict[str, Any]:
    return views.persona(ChatService(services).get(account.id, chatId).persona)


@router.put(
    "/chat-personas/{id}",
    summary="Update Persona (isDefault true unsets the previous default)",
    responses=ex.responses(
        exc.PERSONA,
        exc.PERSONA_NOT_FOUND,
        ex.error(
            409,
            "conflict",
            "an account always has one default persona: make another persona the default "
            "instead of unsetting this one",
        ),
    ),
)
@answers(409)
def update_persona(
    id: Id, body: PersonaRequest, account: CurrentAccount, services: ServicesDep
) -> dict[str, Any]:
    changes = {"name": body.name, "description": body.bio or "", "is_default": body.isDefault}
    return views.persona(PersonaService(services.db).update(account.id, id, changes))


@router.delete(
    "/chat-personas/{id}",
    status_code=204,
    summary="Delete Persona (refused for your only persona and for one a chat uses)",
    responses=ex.responses(None, exc.PERSONA_NOT_FOUND, exc.PERSONA_IN_USE),
)
@answers(409)
def delete_persona(id: Id, account: CurrentAccount, services: ServicesDep) -> Response:
    PersonaService(services.db).delete(account.id, id)
    return Response(status_code=204)
