"""AliveAI's Chat Resource under /aliveai/chats: the native chats (`chat/service.py`,
`chat/replies.py`), their replies streamed as the seed's NDJSON events (`chat/streaming.py`)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from pixelforge.chat.images import ChatImages
from pixelforge.chat.messages import Message
from pixelforge.chat.prompt_jobs import client_left
from pixelforge.chat.replies import Generation, ReplyService
from pixelforge.chat.streaming import ReplyStream
from pixelforge.dialects.aliveai import chat_views as views
from pixelforge.dialects.aliveai import examples as ex
from pixelforge.dialects.aliveai import examples_chat as exc
from pixelforge.dialects.aliveai.errors import error_type
from pixelforge.dialects.aliveai.schemas_chat import (
    CreateChatRequest,
    SendMessageRequest,
    UpdateCandidateRequest,
)
from pixelforge.dialects.aliveai.settings import options_of
from pixelforge.errors import ErrorCode, PixelForgeError, not_found
from pixelforge.store.tables import CharacterRow
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix="/aliveai/chats", tags=["aliveai"])

Id = Annotated[str, Path(max_length=64)]
CandidateId = Annotated[str, Path(max_length=80, description="<messageId>:<index>")]
PAGE = 100


# -- chats -----------------------------------------------------------------------------------
@router.get("", summary="Get Chats (newest first)", responses=ex.responses([exc.CHAT_ITEM]))
def get_chats(
    request: Request, account: CurrentAccount, services: ServicesDep
) -> list[dict[str, Any]]:
    chats = ReplyService(services)
    characters: dict[str, CharacterRow | None] = {}
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        rows, cursor = chats.list_chats(account.id, limit=PAGE, cursor=cursor)
        for row in rows:
            if row.character_id not in characters:
                try:
                    characters[row.character_id] = chats.characters.get(
                        account.id, row.character_id, deleted=True
                    )
                except PixelForgeError:
                    characters[row.character_id] = None
            out.append(views.chat_item(services, request, row, characters[row.character_id]))
        if cursor is None:
            return out


@router.post(
    "",
    summary="Create Chat With Custom First Message",
    responses=ex.responses(exc.CHAT, exc.CHARACTER_NOT_FOUND),
)
@answers(404, 409)
def create_chat(
    body: CreateChatRequest, account: CurrentAccount, services: ServicesDep
) -> dict[str, Any]:
    opts = options_of(services)
    view = ReplyService(services).create(
        account.id,
        character_id=body.chatCharacterId,
        persona_id=body.personaId or None,
        model=opts.chat_reply_model,
        sampling=opts.chat_sampling(),
        first_message=body.firstMessage if body.firstMessage.strip() else None,
    )
    return views.chat(view)


@router.get(
    "/{chatId}",
    summary="Get Chat (every message with all its candidates, the selected one marked)",
    responses=ex.responses(exc.CHAT, exc.CHAT_NOT_FOUND),
)
def get_chat(
    chatId: Id, request: Request, account: CurrentAccount, services: ServicesDep
) -> dict[str, Any]:
    view = ReplyService(services).get(account.id, chatId)
    return views.chat(view, views.media_of(services, request, account.id))


@router.delete(
    "/{chatId}",
    status_code=204,
    summary="Delete Chat (a reply being generated is canceled)",
    responses=ex.responses(None, exc.CHAT_NOT_FOUND),
)
def delete_chat(chatId: Id, account: CurrentAccount, services: ServicesDep) -> Response:
    ReplyService(services).delete(account.id, chatId)
    return Response(status_code=204)


# -- messages --------------------------------------------------------------------------------
class _ClosingStream(StreamingResponse):
    """Closes the reply stream whatever ends the response: a reader that left cancels the
    generation (the candidate keeps its text so far, nothing is charged)."""

    def __init__(self, content: AsyncIterator[str], reply: ReplyStream) -> None:
        super().__init__(
            content, media_type="application/x-ndjson", headers={"Cache-Control": "no-store"}
        )
        self._reply = reply

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._reply.close()


def _user_turn(replies: ReplyService, account_id: str, gen: Generation) -> Message | None:
    """The user message the generation answers (the one before its message), if any."""
    try:
        messages = replies.get(account_id, gen.chat_id).messages
    except PixelForgeError:  # deleted meanwhile: the stream reports it
        return None
    ids = [m.id for m in messages]
    at = ids.index(gen.message_id) if gen.message_id in ids else 0
    before = messages[at - 1] if at > 0 else None
    return before if before is not None and before.row.role == "user" else None


def _event(ev: dict[str, Any], gen: Generation, user: Message | None) -> dict[str, Any]:
    """A native stream event in the seed's NDJSON shape (docs/dialects/aliveai.md, Chat)."""
    kind = ev["type"]
    if kind == "init":
        return {
            "type": "init",
            "chatId": gen.chat_id,
            "userMessageId": user.id if user else None,
            "userCandidateId": views.candidate_id(user.id, user.chosen.idx) if user else None,
            "assistantMessageId": gen.message_id,
            "assistantCandidateId": views.candidate_id(gen.message_id, gen.offset),
        }
    if kind == "token":
        return {"type": "token", "token": ev["delta"]}
    if kind == "complete":
        return {"type": "complete", "chatId": gen.chat_id, "message": views.message(ev["message"])}
    code = str(ev.get("code") or "")
    try:
        status = PixelForgeError(ErrorCode(code), "").status
    except ValueError:  # a code this version does not know
        status = 500
    return {
        "type": "error",
        "chatId": gen.chat_id,
        "status": status,
        "errorType": error_type(code),
        "code": code,
        "message": ev.get("message") or "the generation failed",
    }


async def _stream(
    replies: ReplyService, account_id: str, submit: Callable[[], Generation]
) -> Response:
    """Submit (in a worker thread, subscribed first) and stream the reply as NDJSON."""
    turn: list[Message | None] = [None]

    def prepare() -> Generation:
        gen = submit()
        turn[0] = _user_turn(replies, account_id, gen)
        return gen

    reply = await ReplyStream.open(replies, account_id, prepare)

    async def lines() -> AsyncIterator[str]:
        async for ev in reply.events(replies, account_id):
            out = _event(ev, reply.gen, turn[0])
            yield json.dumps(out, separators=(",", ":")) + "\n"

    return _ClosingStream(lines(), reply)


_STREAMED = exc.ndjson_responses(exc.CHAT_NOT_FOUND, exc.BUSY, exc.INSUFFICIENT)


@router.post(
    "/{chatId}/messages",
    summary="Send Message (the reply streams as NDJSON)",
    responses=_STREAMED,
)
@answers(402, 409, 503)
async def send_message(
    chatId: Id, body: SendMessageRequest, account: CurrentAccount, services: ServicesDep
) -> Response:
    replies = ReplyService(services)

    def submit() -> Generation:
        return replies.post_message(account.id, chatId, content=body.userMessage, n=1, sampling={})

    return await _stream(replies, account.id, submit)


@router.post(
    "/{chatId}/messages/{messageId}/regenerate",
    summary="Regenerate Message (the chat's last character message; a new candidate, "
    "streamed as NDJSON)",
    responses=_STREAMED,
)
@answers(402, 409, 503)
async def regenerate_message(
    chatId: Id, messageId: Id, account: CurrentAccount, services: ServicesDep
) -> Response:
    replies = ReplyService(services)

    def submit() -> Generation:
        return replies.regenerate(account.id, chatId, messageId, n=1, sampling={})

    return await _stream(replies, account.id, submit)


@router.put(
    "/{chatId}/messages/{messageId}/selected-candidate",
    summary="Update Selected Candidate",
    responses=ex.responses(exc.MESSAGE, exc.CHAT_NOT_FOUND),
)
def update_selected_candidate(
    chatId: Id,
    messageId: Id,
    candidateId: Annotated[str, Query(max_length=80, description="<messageId>:<index>")],
    account: CurrentAccount,
    services: ServicesDep,
) -> dict[str, Any]:
    chats = ReplyService(services)
    index = views.candidate_index(messageId, candidateId)
    if index >= len(chats.message(account.id, chatId, messageId).candidates):
        raise not_found(f"candidate {candidateId!r} of message {messageId!r}")
    return views.message(chats.select(account.id, chatId, messageId, index).to_dict())


@router.delete(
    "/{chatId}/messages/{messageId}",
    status_code=204,
    summary="Delete Messages (this message and every later one)",
    responses=ex.responses(None, exc.CHAT_NOT_FOUND),
)
def delete_messages(
    chatId: Id, messageId: Id, account: CurrentAccount, services: ServicesDep
) -> Response:
    ReplyService(services).delete_from(account.id, chatId, messageId)
    return Response(status_code=204)


@router.put(
    "/{chatId}/messages/{messageId}/candidates/{candidateId}",
    summary="Update Candidate Message (replaces its text)",
    responses=ex.responses(exc.MESSAGE, exc.CHAT_NOT_FOUND),
)
@answers(409)
def update_candidate_message(
    chatId: Id,
    messageId: Id,
    candidateId: CandidateId,
    body: UpdateCandidateRequest,
    account: CurrentAccount,
    services: ServicesDep,
) -> dict[str, Any]:
    index = views.candidate_index(messageId, candidateId)
    edited = ReplyService(services).edit(account.id, chatId, messageId, index, body.message)
    return views.message(edited.to_dict())


# -- in-chat images (chat/images.py) ---------------------------------------------------------
ServerId = Annotated[
    str | None, Query(max_length=64, description="Accepted and ignored (one server here).")
]


@router.post(
    "/{chatId}/image",
    summary="Create Chat Image (the character in the chat's current scene, appended as an "
    "image message)",
    responses=ex.responses(exc.MESSAGE, exc.CHAT_NOT_FOUND),
)
@answers(402, 409, 504)
async def create_chat_image(
    chatId: Id,
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
    serverId: ServerId = None,
) -> dict[str, Any]:
    msg = await ChatImages(services).create_image(
        account,
        chatId,
        hint=None,
        model=None,
        wait_s=options_of(services).max_blocking_s,
        disconnected=client_left(request),
    )
    return views.message(msg.to_dict(), views.media_of(services, request, account.id))


@router.post(
    "/{chatId}/messages/{messageId}/regenerate-image",
    summary="Regenerate Image (a new candidate of an image message)",
    responses=ex.responses(exc.MESSAGE, exc.CHAT_NOT_FOUND),
)
@answers(402, 409, 504)
async def regenerate_image(
    chatId: Id,
    messageId: Id,
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
    serverId: ServerId = None,
) -> dict[str, Any]:
    msg = await ChatImages(services).regenerate_image(
        account,
        chatId,
        messageId,
        hint=None,
        model=None,
        wait_s=options_of(services).max_blocking_s,
        disconnected=client_left(request),
    )
    return views.message(msg.to_dict(), views.media_of(services, request, account.id))
