"""Character cards in and out: import a V1/V2/V3 card (JSON, PNG, CHARX) as a character,
export a character as a card file."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from pixelforge.api.routes.characters import (
    CharacterId,
    CharacterOut,
    CharactersDep,
    character_out,
)
from pixelforge.chat.cards import (
    MAX_CARD_FILE_BYTES,
    Card,
    CardData,
    ParsedCard,
    export_charx,
    export_json,
    export_png,
    parse_card,
)
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix="/v1/characters", tags=["characters"])

_RAW_TYPES = {"image/png", "application/zip", "application/octet-stream", "application/json"}

_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "application/json": {"schema": {"type": "object", "description": "a card"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


async def _card_bytes(request: Request) -> tuple[bytes, str | None]:
    """The card file from a multipart `file` field or the raw body, and its name."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limit = MAX_CARD_FILE_BYTES
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        try:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise PixelForgeError(
                    ErrorCode.invalid_parameter, "file: a multipart field 'file' is required"
                )
            return await file.read(limit + 1), file.filename
        finally:
            await form.close()
    if ctype in _RAW_TYPES:
        return await request.body(), None
    raise PixelForgeError(
        ErrorCode.unsupported_media_type,
        "send the card as multipart/form-data with a 'file' field, or as the body "
        "(application/json, image/png or application/zip)",
    )


@router.post(
    "/import",
    response_model=CharacterOut,
    status_code=status.HTTP_201_CREATED,
    summary="Import a character card (V1/V2/V3; JSON, PNG or CHARX)",
    openapi_extra=_IMPORT_BODY,
)
@answers(413, 415)
async def import_card(
    request: Request, account: CurrentAccount, services: ServicesDep, characters: CharactersDep
) -> CharacterOut:
    data, filename = await _card_bytes(request)
    parsed: ParsedCard = await run_in_threadpool(parse_card, data, filename)
    card = parsed.card

    def store() -> CharacterOut:
        # The avatar first, then the character; if the character cannot be stored, the
        # avatar goes too, so nothing is left half-way.
        avatar = None
        if parsed.avatar is not None:
            avatar = services.media.ingest_upload(account_id=account.id, data=parsed.avatar)
        try:
            row = characters.create_from_card(
                account.id,
                card.data.to_dict(),
                avatar.id if avatar is not None else None,
                card_meta={
                    "spec": card.spec,
                    "spec_version": card.spec_version,
                    "extra_top": card.extra_top,
                },
            )
        except Exception:
            if avatar is not None:
                services.media.delete(account_id=account.id, media_id=avatar.id)
            raise
        return character_out(row)

    return await run_in_threadpool(store)


_TYPES = {"json": "application/json", "png": "image/png", "charx": "application/zip"}


@router.get(
    "/{character_id}/card",
    summary="Export a character as a card file (JSON, PNG or CHARX; V2 or V3)",
    response_class=Response,
    responses={
        200: {
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in _TYPES.values()
            },
            "description": "the card file",
        }
    },
)
@answers(404)
async def export_card(
    character_id: CharacterId,
    account: CurrentAccount,
    services: ServicesDep,
    characters: CharactersDep,
    format: Annotated[Literal["json", "png", "charx"], Query()] = "png",
    spec: Annotated[Literal["v2", "v3"], Query()] = "v3",
) -> Response:
    def build() -> bytes:
        row = characters.get(account.id, character_id)
        meta = row.card_meta or {}
        card = Card(
            CardData(row.data),
            meta.get("spec", "chara_card_v3"),
            meta.get("spec_version", "3.0"),
            meta.get("extra_top") or {},
        )
        avatar = None
        if row.avatar_media_id is not None:
            try:
                media = services.media.get(account_id=account.id, media_id=row.avatar_media_id)
                avatar = services.media.read_bytes(media)
            except PixelForgeError:  # the avatar expired or was deleted: export without it
                avatar = None
        if format == "json":
            return export_json(card, spec)
        if format == "png":
            return export_png(card, avatar, spec)
        if spec != "v3":
            raise PixelForgeError(ErrorCode.invalid_parameter, "spec: CHARX is a V3 format")
        return export_charx(card, avatar=avatar)

    body = await run_in_threadpool(build)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", character_id)
    return Response(
        body,
        media_type=_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}.{format}"'},
    )
