"""Media: upload (multipart, base64, URL), metadata, signed download, delete."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile

from pixelforge.api.schemas import MediaId, MediaOut, media_out
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.media.service import decode_base64
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.errors import ErrorOut
from pixelforge.web.urls import base_url

router = APIRouter(prefix="/v1/media", tags=["media"])

_UPLOAD_BODY: dict[str, Any] = {
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
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "base64": {"type": "string", "description": "bare base64 or a data URI"},
                        "url": {"type": "string", "description": "public http(s) URL to fetch"},
                    },
                },
                "examples": {
                    "base64": {"value": {"base64": "data:image/png;base64,iVBORw0KGgo..."}},
                    "url": {"value": {"url": "https://example.com/photo.jpg"}},
                },
            },
        },
    }
}


async def _read_upload(request: Request, max_bytes: int) -> tuple[bytes | None, str | None]:
    """(bytes, None) for a file or base64 body, (None, url) for a URL body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=10)
        try:
            file = form.get("file")
            if not isinstance(file, UploadFile):
                raise PixelForgeError(
                    ErrorCode.invalid_parameter, "file: a multipart field 'file' is required"
                )
            return await file.read(max_bytes + 1), None
        finally:
            await form.close()
    if ctype == "application/json":
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise PixelForgeError(ErrorCode.invalid_parameter, "body: not valid JSON") from None
        if not isinstance(body, dict):
            raise PixelForgeError(ErrorCode.invalid_parameter, "body: must be a JSON object")
        if isinstance(body.get("base64"), str):
            return decode_base64(body["base64"], max_bytes=max_bytes), None
        if isinstance(body.get("url"), str):
            return None, body["url"]
        raise PixelForgeError(
            ErrorCode.invalid_parameter, "body: give either 'base64' (string) or 'url' (string)"
        )
    raise PixelForgeError(
        ErrorCode.unsupported_media_type,
        "send multipart/form-data with a 'file' field, or JSON with 'base64' or 'url'",
    )


@router.post(
    "",
    response_model=MediaOut,
    status_code=status.HTTP_201_CREATED,
    summary="Upload an image: multipart file, base64 or URL",
    openapi_extra=_UPLOAD_BODY,
    responses={413: {"model": ErrorOut}, 415: {"model": ErrorOut}, 400: {"model": ErrorOut}},
)
async def upload(request: Request, account: CurrentAccount, services: ServicesDep) -> MediaOut:
    max_bytes = services.settings.max_upload_bytes
    data, url = await _read_upload(request, max_bytes)
    if data is not None:
        row = await run_in_threadpool(
            services.media.ingest_upload, account_id=account.id, data=data
        )
    else:
        assert url is not None
        row = await run_in_threadpool(services.media.ingest_url, account_id=account.id, url=url)
    return media_out(services, row, base_url(services, request))


@router.get(
    "/{media_id}",
    response_model=MediaOut,
    responses={404: {"model": ErrorOut}},
    summary="Media metadata and a fresh signed download URL",
)
def get_media(
    media_id: MediaId, request: Request, account: CurrentAccount, services: ServicesDep
) -> MediaOut:
    row = services.media.get(account_id=account.id, media_id=media_id)
    return media_out(services, row, base_url(services, request))


@router.get(
    "/{media_id}/content",
    response_class=FileResponse,
    summary="Download by signed URL (no auth header)",
    responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 410: {"model": ErrorOut}},
)
def download(
    media_id: MediaId,
    services: ServicesDep,
    exp: int = Query(..., description="expiry (epoch seconds) from the signed URL"),
    sig: str = Query(..., max_length=100, description="signature from the signed URL"),
) -> FileResponse:
    row, path = services.media.open_signed(media_id=media_id, exp=exp, sig=sig)
    return FileResponse(
        path,
        media_type=row.content_type,
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


@router.delete(
    "/{media_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorOut}},
    summary="Delete a media item now",
)
def delete_media(media_id: MediaId, account: CurrentAccount, services: ServicesDep) -> None:
    services.media.delete(account_id=account.id, media_id=media_id)
