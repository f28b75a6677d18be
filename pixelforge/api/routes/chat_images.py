"""In-chat images (`chat/images.py`): an image of the character in the chat's current scene,
appended as an image message; regenerate adds a candidate to such a message."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from pixelforge.api.routes.chats import MessageOut
from pixelforge.chat.images import MAX_HINT, ChatImages
from pixelforge.chat.prompt_jobs import client_left
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix="/v1/chats", tags=["chats"])

ChatId = Annotated[str, Path(max_length=64, examples=["cht_k0Qm2pL8xT1zR9wYc4AVb3"])]
MessageId = Annotated[str, Path(max_length=64, examples=["msg_R9wYc4AVb3k0Qm2pL8xT1z"])]


class ImageIn(BaseModel):
    prompt_hint: str | None = Field(
        None, max_length=MAX_HINT, description="what the picture should show, beside the chat"
    )
    model: str | None = Field(
        None, max_length=100, description="the image model; default: the task's default"
    )


@router.post(
    "/{chat_id}/images",
    response_model=MessageOut,
    summary="An image of the character in the chat's current scene, appended as a message",
)
@answers(402, 404, 409, 504)
async def create_image(
    chat_id: ChatId,
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
    body: ImageIn | None = None,
) -> MessageOut:
    body = body or ImageIn()
    message = await ChatImages(services).create_image(
        account,
        chat_id,
        hint=body.prompt_hint,
        model=body.model,
        wait_s=services.settings.max_wait_s,
        disconnected=client_left(request),
    )
    return MessageOut.model_validate(message.to_dict())


@router.post(
    "/{chat_id}/messages/{message_id}/images/regenerate",
    response_model=MessageOut,
    summary="A new image candidate for an image message",
)
@answers(402, 404, 409, 504)
async def regenerate_image(
    chat_id: ChatId,
    message_id: MessageId,
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
    body: ImageIn | None = None,
) -> MessageOut:
    body = body or ImageIn()
    message = await ChatImages(services).regenerate_image(
        account,
        chat_id,
        message_id,
        hint=body.prompt_hint,
        model=body.model,
        wait_s=services.settings.max_wait_s,
        disconnected=client_left(request),
    )
    return MessageOut.model_validate(message.to_dict())
