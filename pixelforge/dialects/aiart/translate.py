"""AiArt's readings: presets, models, uploads and result files <-> core jobs and media."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from pixelforge.dialects import common
from pixelforge.dialects.aiart.auth import Caller
from pixelforge.dialects.aiart.errors import invalid, job_error
from pixelforge.errors import ErrorCode, PixelForgeError, too_large
from pixelforge.jobs.status import TERMINAL_STATUSES, JobStatus
from pixelforge.services import Services
from pixelforge.store.tables import Job, Media

PREFIX = "/aiart"

# The seed's style presets -> catalog styles (text_to_image task); all ship with the catalog.
STYLE_PRESETS: dict[str, str] = {
    name: name
    for name in (
        "3d-model",
        "analog-film",
        "anime",
        "cinematic",
        "digital-art",
        "enhance",
        "fantasy-art",
        "isometric",
        "line-art",
        "low-poly",
        "modeling-compound",
        "neon-punk",
        "origami",
        "photographic",
        "pixel-art",
        "tile-texture",
    )
}
# The hosted models the seed names have no open weights: they run on the server's default
# model for the task (None). Any other value must be one of our model profile ids.
MODEL_ALIASES: dict[str, str | None] = {
    "stable-diffusion-3.5-ultra": None,
    "sd3.5-ultra": None,
    "imagen-4": None,
    "imagen4": None,
}
ASPECT_RATIOS = ("1:1", "4:3", "16:9", "9:16", "3:4")
OUTPUT_FORMATS = ("png", "jpg", "webp")

# Result folders and the file-name stem each uses (the seed's own naming).
FOLDERS = {
    "images": "generated_image",
    "processed_images": "img2img_transform",
    "processed_videos": "video",
}
# The pipeline whose results each folder serves: a result is a file of its own folder only.
FOLDER_PIPELINES = {
    "images": "text_to_image",
    "processed_images": "image_to_image",
    "processed_videos": "image_to_video",
}
EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "video/mp4": "mp4"}
IN_PROGRESS = "Video generation is still in progress. Try again in a few seconds."


def one_of(field: str, value: str, allowed: tuple[str, ...] | list[str]) -> str:
    if value not in allowed:
        raise invalid(f"{field}: {value!r} is not supported; use one of {', '.join(allowed)}")
    return value


def style_of(value: str | None) -> str | None:
    if not value:
        return None
    return STYLE_PRESETS[one_of("style_preset", value, list(STYLE_PRESETS))]


async def model_of(services: Services, value: str | None) -> str | None:
    if not value:
        return None
    if value in MODEL_ALIASES:
        return MODEL_ALIASES[value]
    if await run_in_threadpool(services.models.catalog.get, value) is None:
        raise invalid(
            f"model: {value!r} is not a model; use one of {', '.join(MODEL_ALIASES)} "
            "or a model id from GET /v1/models"
        )
    return value


def _is_supported_image(data: bytes) -> bool:
    return (
        data.startswith(b"\x89PNG\r\n\x1a\n")
        or data.startswith(b"\xff\xd8\xff")
        or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
    )


async def ingest(services: Services, caller: Caller, file: UploadFile, *, reuse: bool) -> Media:
    """The upload stored as an input: 413 over the limit, 415 unless JPG, PNG or WEBP.

    `reuse` (a request with an idempotency key): the same bytes sent again are the earlier
    upload, so a retry is the same job rather than a different request under the same key.
    """
    limit = services.media.limits.max_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise too_large("image", limit)
    if not data:
        raise invalid("image: the file is empty")
    unsupported = PixelForgeError(
        ErrorCode.unsupported_media_type, "image: unsupported file format; use JPG, PNG or WEBP"
    )
    if not _is_supported_image(data):
        raise unsupported
    try:
        return await common.ingest_image(services, caller.account, data=data, reuse_identical=reuse)
    except PixelForgeError as e:  # the core's message names formats this API does not take
        if e.code == ErrorCode.unsupported_media_type:
            raise unsupported from None
        raise


async def run_blocking(
    services: Services,
    caller: Caller,
    pipeline: str,
    params: dict[str, Any],
    idempotency_key: str | None,
) -> tuple[Job, Media]:
    """Submit and wait (bounded): the finished job and its first result, or its error."""
    params = {k: v for k, v in params.items() if v is not None}
    submitted = await common.submit(
        services, caller.account, pipeline, params, idempotency_key=idempotency_key
    )
    job = await common.wait(services, submitted.job, services.settings.max_wait_s)
    if job.status not in TERMINAL_STATUSES:
        # The seed's calls are synchronous: a caller answered with an error must not be
        # charged later, so the job is canceled (a running one stops at its next step).
        await run_in_threadpool(
            lambda: services.jobs.cancel(account_id=caller.account.id, job_id=job.id)
        )
        raise PixelForgeError(
            ErrorCode.timeout,
            "the server is busy and the image was not ready in time; retry later",
            status=503,
            headers={"Retry-After": "10"},
        )
    if job.status != JobStatus.SUCCEEDED:
        raise job_error(job)
    media = await common.outputs(services, job)
    if not media:
        raise PixelForgeError(ErrorCode.internal_error, "the job finished without a result")
    return job, media[0]


def pipeline_of(services: Services, row: Media) -> str | None:
    """The pipeline of the job that made a result (None for an upload or a vanished job)."""
    if row.job_id is None:
        return None
    with services.db.read() as s:
        job = s.get(Job, row.job_id)
    return job.pipeline if job is not None else None


def file_path(services: Services, folder: str, row: Media) -> str:
    """`/<folder>/<stem>_<media id>.<exp>.<sig>.<ext>`: the core's signed link as a file name.

    The signature covers the media id, its owner and the expiry (the item's own retention), so
    names cannot be guessed or enumerated, even by callers sharing the anonymous account.
    """
    query, _ = services.media.signed_query(row, ttl_s=services.settings.result_retention_s)
    signed = dict(parse_qsl(query))
    ext = EXT.get(row.content_type, "bin")
    return f"/{folder}/{FOLDERS[folder]}_{row.id}.{signed['exp']}.{signed['sig']}.{ext}"


def file_url(services: Services, request: Request, folder: str, row: Media) -> str:
    return f"{common.base_url(services, request)}{PREFIX}{file_path(services, folder, row)}"
