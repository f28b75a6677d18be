"""The AiArt dialect: its text-to-image, image-to-image and image-to-video REST API.

Routes live under `/aiart`, so a client swaps `https://aiart-zroo.onrender.com` for
`https://<server>/aiart`. Nothing here decides anything: jobs, credits, idempotency, limits and
storage are the core's; this module only translates requests and responses (docs/dialects/aiart.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, File, Form, Header, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.api.deps import ServicesDep, authenticate, credential, get_services
from pixelforge.api.middleware import LimitsMiddleware
from pixelforge.dialects import common
from pixelforge.dialects.aiart.settings import load, options_of
from pixelforge.errors import ErrorCode, PixelForgeError, not_found, too_large
from pixelforge.jobs.events import TERMINAL
from pixelforge.services import Services
from pixelforge.store.tables import Account, Job, Media

NAME = "aiart"
PREFIX = "/aiart"
router = APIRouter(prefix=PREFIX, tags=["aiart"])

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
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "video/mp4": "mp4"}
_IN_PROGRESS = "Video generation is still in progress. Try again in a few seconds."


def format_error(err: PixelForgeError) -> Response:
    """The seed's error shape: {"error": "<message>"} with the HTTP status (and headers)."""
    return JSONResponse({"error": err.message}, status_code=err.status, headers=err.headers)


# -- who pays --------------------------------------------------------------------------------
def anonymous_account(services: Services) -> Account:
    """The account anonymous use is charged to, created (with its grant) when missing."""
    s = options_of(services)
    try:
        return services.accounts.find(s.anonymous_email)
    except PixelForgeError as e:
        if e.code != ErrorCode.not_found:
            raise
    try:
        account, _ = services.accounts.create_account(
            email=s.anonymous_email, credits=s.anonymous_credits
        )
    except PixelForgeError as err:  # another process created it first
        if err.code != ErrorCode.conflict:
            raise
        account = services.accounts.find(s.anonymous_email)
    return account


def on_startup(services: Services) -> None:
    services.extensions[NAME] = load(services.settings)
    anonymous_account(services)


@dataclass(frozen=True)
class Caller:
    account: Account
    anonymous: bool
    ip: str


async def current_caller(request: Request) -> Caller:
    """A key's account when one is sent (or required), else the anonymous account."""
    services = get_services(request)
    ip = LimitsMiddleware.client_ip(services, request.scope)
    if options_of(services).require_key or credential(request) is not None:
        principal = await run_in_threadpool(authenticate, services, request)
        return Caller(principal.account, anonymous=False, ip=ip)
    account = await run_in_threadpool(anonymous_account, services)
    if account.disabled:
        raise PixelForgeError(
            ErrorCode.forbidden, "anonymous use is disabled on this server; send an API key"
        )
    return Caller(account, anonymous=True, ip=ip)


CallerDep = Annotated[Caller, Depends(current_caller)]
IdempotencyKey = Annotated[str | None, Header(max_length=128)]


def idempotency(caller: Caller, key: str | None) -> str | None:
    # Anonymous callers share one account: scope their keys by address so two clients that
    # pick the same key never receive each other's job.
    if not key or not caller.anonymous:
        return key
    return f"aiart:{caller.ip}:{key}"


# -- translation helpers ---------------------------------------------------------------------
def invalid(message: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.invalid_parameter, message)


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


def job_error(job: Job) -> PixelForgeError:
    err = common.job_error(job, fallback="generation failed")
    # A refused result is about the request, not a server fault.
    if err.code == ErrorCode.error_nsfw_content_detected:
        return PixelForgeError(err.code, err.message, status=400)
    return err


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
    if job.status not in TERMINAL:
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
    if job.status != "succeeded":
        raise job_error(job)
    media = await common.outputs(services, job)
    if not media:
        raise PixelForgeError(ErrorCode.internal_error, "the job finished without a result")
    return job, media[0]


def file_path(services: Services, folder: str, row: Media) -> str:
    """`/<folder>/<stem>_<media id>.<exp>.<sig>.<ext>`: the core's signed link as a file name.

    The signature covers the media id, its owner and the expiry (the item's own retention), so
    names cannot be guessed or enumerated, even by callers sharing the anonymous account.
    """
    query, _ = services.media.signed_query(row, ttl_s=services.settings.result_retention_s)
    signed = dict(parse_qsl(query))
    ext = _EXT.get(row.content_type, "bin")
    return f"/{folder}/{FOLDERS[folder]}_{row.id}.{signed['exp']}.{signed['sig']}.{ext}"


def file_url(services: Services, request: Request, folder: str, row: Media) -> str:
    return f"{common.base_url(services, request)}{PREFIX}{file_path(services, folder, row)}"


# -- OpenAPI examples ------------------------------------------------------------------------
_FILE_TYPES = {
    "images": "image/png",
    "processed_images": "image/png",
    "processed_videos": "video/mp4",
}
_EXAMPLE_FILES = {
    folder: f"{stem}_med_3q2xJ0cQ9h1b7m0PZrUo8A.1735693200.kX2vQ8mZr1T0bYc4LpN7sWfA3eHjU6dG"
    f".{_EXT[_FILE_TYPES[folder]]}"
    for folder, stem in FOLDERS.items()
}


def _examples(
    examples: dict[int, tuple[str, Any]], media_type: str = "application/json"
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: status -> (description, example body)."""
    return {
        status: {"description": text, "content": {media_type: {"example": body}}}
        for status, (text, body) in examples.items()
    }


_BAD_REQUEST = (
    "a missing or invalid field",
    {"error": "prompt: a description of the transformation is required"},
)


# -- routes ----------------------------------------------------------------------------------
class GenerateIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    video_description: str | None = Field(
        None,
        max_length=2000,
        description="text description of the image (required)",
        examples=["A futuristic city skyline at sunset, cyberpunk style"],
    )
    prompt: str | None = Field(
        None, max_length=2000, description="accepted in place of video_description"
    )
    negative_prompt: str | None = Field(None, max_length=2000)
    style_preset: str | None = Field(None, examples=["neon-punk"])
    aspect_ratio: str = Field("16:9", description=" | ".join(ASPECT_RATIOS))
    output_format: str = Field("png", description=" | ".join(OUTPUT_FORMATS))
    seed: int = Field(0, ge=0, le=2**32 - 1, description="0 = random")
    model: str | None = Field(None, description="optional: " + ", ".join(MODEL_ALIASES))


@router.post("/api/generate", summary="Text to image (blocking)")
async def generate(
    body: GenerateIn,
    request: Request,
    caller: CallerDep,
    services: ServicesDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    prompt = (body.video_description or body.prompt or "").strip()
    if not prompt:
        raise invalid("video_description: a text description of the image is required")
    params = {
        "prompt": prompt,
        "negative_prompt": body.negative_prompt or None,
        "style": style_of(body.style_preset),
        "aspect_ratio": one_of("aspect_ratio", body.aspect_ratio, ASPECT_RATIOS),
        "output_format": one_of("output_format", body.output_format, OUTPUT_FORMATS),
        "seed": body.seed,
        "model": await model_of(services, body.model),
    }
    key = idempotency(caller, idempotency_key)
    job, row = await run_blocking(services, caller, "text_to_image", params, key)
    return JSONResponse(
        {
            "success": True,
            "message": "Image generated successfully",
            "image_url": file_url(services, request, "images", row),
            "seed": job.seed,
        }
    )


@router.post(
    "/api/img2img",
    summary="Image to image (blocking, multipart)",
    responses=_examples(
        {
            200: (
                "the transformed image",
                {
                    "success": True,
                    "message": "Image transformed successfully",
                    "image_url": "https://pixelforge.example/aiart/processed_images/"
                    + _EXAMPLE_FILES["processed_images"],
                    "seed": 1234567,
                },
            ),
            400: _BAD_REQUEST,
        }
    ),
)
async def img2img(
    request: Request,
    caller: CallerDep,
    services: ServicesDep,
    image: Annotated[UploadFile, File(description="JPG, PNG or WEBP, at most 10 MB")],
    prompt: Annotated[str, Form(max_length=2000)],
    negative_prompt: Annotated[str | None, Form(max_length=2000)] = None,
    strength: Annotated[float, Form(ge=0.0, le=1.0)] = 0.7,
    style_preset: Annotated[str | None, Form()] = None,
    aspect_ratio: Annotated[str, Form()] = "1:1",
    output_format: Annotated[str, Form()] = "png",
    seed: Annotated[int, Form(ge=0, le=2**32 - 1)] = 0,
    model: Annotated[str | None, Form()] = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    if not prompt.strip():
        raise invalid("prompt: a description of the transformation is required")
    if strength == 0.0:
        raise invalid("strength: must be above 0.0 (0.0 would return the image unchanged)")
    params = {
        "prompt": prompt.strip(),
        "negative_prompt": negative_prompt or None,
        "strength": strength,
        "style": style_of(style_preset),
        "aspect_ratio": one_of("aspect_ratio", aspect_ratio, ASPECT_RATIOS),
        "output_format": one_of("output_format", output_format, OUTPUT_FORMATS),
        "seed": seed,
        "model": await model_of(services, model),
    }
    key = idempotency(caller, idempotency_key)
    params["image"] = (await ingest(services, caller, image, reuse=key is not None)).id
    job, row = await run_blocking(services, caller, "image_to_image", params, key)
    return JSONResponse(
        {
            "success": True,
            "message": "Image transformed successfully",
            "image_url": file_url(services, request, "processed_images", row),
            "seed": job.seed,
        }
    )


@router.post(
    "/api/img2video",
    summary="Image to video: start (multipart)",
    responses=_examples(
        {
            200: (
                "the generation was accepted; poll its id",
                {
                    "success": True,
                    "id": "job_a8Zr0cK1d2Q9xw3mP0vUoQ",
                    "message": "Video generation started. Poll for results using the returned ID.",
                },
            ),
            400: _BAD_REQUEST,
        }
    ),
)
async def img2video(
    caller: CallerDep,
    services: ServicesDep,
    image: Annotated[UploadFile, File(description="the first frame: JPG, PNG or WEBP")],
    seed: Annotated[int, Form(ge=0, le=2**32 - 1)] = 0,
    cfg_scale: Annotated[float, Form(ge=0.0, le=10.0)] = 1.5,
    motion_bucket_id: Annotated[int, Form(ge=1, le=255)] = 127,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    key = idempotency(caller, idempotency_key)
    media = await ingest(services, caller, image, reuse=key is not None)
    params = {
        "image": media.id,
        "seed": seed,
        "cfg_scale": cfg_scale,
        "motion_bucket_id": motion_bucket_id,
    }
    submitted = await common.submit(
        services, caller.account, "image_to_video", params, idempotency_key=key
    )
    return JSONResponse(
        {
            "success": True,
            "id": submitted.job.id,
            "message": "Video generation started. Poll for results using the returned ID.",
        }
    )


@router.get(
    "/api/img2video/result/{generation_id}",
    summary="Image to video: poll",
    responses=_examples(
        {
            200: (
                "the video is ready (its URL is relative to the API's base URL)",
                {
                    "status": "complete",
                    "video_url": "/processed_videos/" + _EXAMPLE_FILES["processed_videos"],
                    "finish_reason": "SUCCESS",
                    "seed": "1234567",
                },
            ),
            202: ("still running", {"status": "in-progress", "message": _IN_PROGRESS}),
            404: ("no such generation", {"error": "job 'job_x' not found"}),
        }
    ),
)
async def img2video_result(
    generation_id: Annotated[str, PathParam(examples=["job_a8Zr0cK1d2Q9xw3mP0vUoQ"])],
    caller: CallerDep,
    services: ServicesDep,
) -> JSONResponse:
    job = await common.get_job(services, caller.account, generation_id)
    if job.pipeline != "image_to_video":
        raise not_found(f"generation {generation_id!r}")
    if job.status not in TERMINAL:
        return JSONResponse({"status": "in-progress", "message": _IN_PROGRESS}, status_code=202)
    if job.status != "succeeded":
        raise job_error(job)
    media = await common.outputs(services, job)
    video_id = (job.result or {}).get("video")
    videos = [m for m in media if m.id == video_id] or [
        m for m in media if m.content_type == "video/mp4"
    ]
    if not videos:
        raise PixelForgeError(ErrorCode.internal_error, "the job finished without a video")
    return JSONResponse(
        {
            "status": "complete",
            # Relative to the API's base URL, as the seed's clients prepend it.
            "video_url": file_path(services, "processed_videos", videos[0]),
            "finish_reason": "SUCCESS",
            "seed": str(job.seed),
        }
    )


def _file_route(folder: str) -> None:
    stem = FOLDERS[folder]

    def serve(name: str, services: ServicesDep) -> FileResponse:
        gone = not_found(f"file {name!r}")
        parts = name.removeprefix(f"{stem}_").split(".") if name.startswith(f"{stem}_") else []
        if len(parts) != 4 or not parts[1].isdigit() or len(parts[1]) > 12:
            raise gone
        media_id, exp, sig, ext = parts
        try:
            row, path = services.media.open_signed(media_id=media_id, exp=int(exp), sig=sig)
        except PixelForgeError:  # bad signature, expired or deleted: all just "not found"
            raise gone from None
        if row.kind != "result" or _EXT.get(row.content_type) != ext:
            raise gone
        return FileResponse(
            path,
            media_type=row.content_type,
            headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    path = f"/{folder}/{{name}}"
    summary = f"Download a result from /{folder}/ (the URL is its own credential)"
    router.add_api_route(
        path,
        serve,
        methods=["GET"],
        response_class=FileResponse,
        summary=summary,
        responses={
            200: {"description": "the file", "content": {_FILE_TYPES[folder]: {}}},
            **_examples({404: ("unknown, expired or deleted", {"error": "file 'x' not found"})}),
        },
    )
    router.add_api_route(path, serve, methods=["HEAD"], include_in_schema=False)


for _folder in FOLDERS:
    _file_route(_folder)
