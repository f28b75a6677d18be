"""Perfect's files: a signed upload URL per file; the PUT stores the bytes as that media id.

Perfect hands out S3 URLs; here the URL points back at this server (`/perfect/upload/...`),
signed and expiring, and the bytes become the media item `file_id` of the caller's account,
validated and re-encoded like any upload.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.clock import now
from pixelforge.dialects.common import base_url
from pixelforge.dialects.perfect.errors import PerfectError, invalid
from pixelforge.dialects.perfect.features import (
    PREFIX,
    Feature,
    Params,
    envelope,
    pipeline_of,
)
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.ids import new_id
from pixelforge.services import Services
from pixelforge.store.tables import Account
from pixelforge.web.deps import ServicesDep
from pixelforge.web.openapi import answers


class FileIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients send file_size and such; unused

    content_type: str = Field(max_length=100, examples=["image/jpeg"])
    file_name: str = Field(min_length=1, max_length=255, examples=["selfie.jpg"])


class FilesIn(BaseModel):
    files: list[FileIn] = Field(min_length=1, max_length=10)


def _upload_sig(services: Services, file_id: str, account_id: str, exp: int) -> str:
    key = hmac.new(services.media.sign_key, b"perfect-upload", hashlib.sha256).digest()
    msg = f"{file_id}:{account_id}:{exp}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def _file_out(services: Services, request: Request, account: Account, f: FileIn) -> Params:
    file_id = new_id("med")
    exp = int(now()) + services.settings.signed_url_ttl_s
    sig = _upload_sig(services, file_id, account.id, exp)
    url = (
        f"{base_url(services, request)}{PREFIX}/upload/{file_id}?a={account.id}&exp={exp}&sig={sig}"
    )
    content_type = "image/jpeg" if f.content_type == "image/jpg" else f.content_type
    return {
        "content_type": f.content_type,
        "file_name": f.file_name,
        "file_id": file_id,
        "requests": [{"headers": {"Content-Type": content_type}, "url": url, "method": "PUT"}],
    }


def store_upload(services: Services, *, file_id: str, account_id: str, data: bytes) -> None:
    """The uploaded bytes as media item `file_id` (validated and re-encoded like any upload;
    a retried PUT of the same bytes is fine, other bytes for the same file are 409)."""
    try:
        services.media.ingest_upload(account_id=account_id, data=data, media_id=file_id)
    except PixelForgeError as e:
        if e.code == ErrorCode.conflict:
            raise PixelForgeError(
                ErrorCode.conflict, f"file {file_id} was already uploaded; create a new file"
            ) from None
        raise


def create_files(
    services: Services, request: Request, account: Account, feature: Feature, body: FilesIn
) -> dict[str, Any]:
    """file/<feature>: a file_id and a signed PUT URL per file."""
    pipeline_of(services, feature)
    for f in body.files:
        if f.content_type not in feature.upload_types:
            raise invalid(f"files.content_type: one of {', '.join(feature.upload_types)}")
    return envelope({"files": [_file_out(services, request, account, f) for f in body.files]})


router = APIRouter()


@router.put(
    f"{PREFIX}/upload/{{file_id}}",
    tags=["perfect"],
    summary="Upload a file's bytes (the signed URL from file/<feature>)",
    response_class=Response,
)
@answers(403, 409, 410, 413, 415)
async def upload_file(
    file_id: Annotated[str, Path(max_length=64)],
    request: Request,
    services: ServicesDep,
    a: Annotated[
        str,
        Query(max_length=64, description="account (from the signed URL)", examples=["acc_x"]),
    ],
    exp: Annotated[
        int,
        Query(description="expiry, epoch seconds (from the signed URL)", examples=[1767225600]),
    ],
    sig: Annotated[
        str,
        Query(max_length=100, description="signature (from the signed URL)", examples=["d8b0"]),
    ],
) -> Response:
    expected = _upload_sig(services, file_id, a, exp)
    if not hmac.compare_digest(expected.encode(), sig.encode()):
        raise PerfectError(
            ErrorCode.signature_invalid,
            "upload URL signature invalid",
            perfect_code="AccessDenied",
            status=403,
        )
    if exp <= now():
        raise PerfectError(
            ErrorCode.expired,
            "upload URL expired; create the file again for a new one",
            perfect_code="AccessDenied",
            status=403,
        )
    data = await request.body()
    if not data:
        raise invalid("the upload body is empty: PUT the file's bytes")
    await run_in_threadpool(
        lambda: store_upload(services, file_id=file_id, account_id=a, data=data)
    )
    return Response(status_code=200)
