"""AiArt's routes: text to image, image to image, image to video, result files.

Routes live under `/aiart`, so a client swaps `https://aiart-zroo.onrender.com` for
`https://<server>/aiart`. Nothing here decides anything: jobs, credits, idempotency, limits and
storage are the core's; this package only translates requests and responses
(docs/dialects/aiart.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse

from pixelforge.dialects import common
from pixelforge.dialects.aiart.auth import CallerDep, IdempotencyKey, idempotency
from pixelforge.dialects.aiart.errors import invalid, job_error
from pixelforge.dialects.aiart.schemas import (
    BAD_REQUEST,
    EXAMPLE_FILES,
    FILE_TYPES,
    AiArtGenerateIn,
    response_examples,
)
from pixelforge.dialects.aiart.translate import (
    ASPECT_RATIOS,
    EXT,
    FOLDER_PIPELINES,
    FOLDERS,
    IN_PROGRESS,
    OUTPUT_FORMATS,
    PREFIX,
    file_path,
    file_url,
    ingest,
    model_of,
    one_of,
    pipeline_of,
    run_blocking,
    style_of,
)
from pixelforge.errors import ErrorCode, PixelForgeError, not_found
from pixelforge.jobs.status import TERMINAL_STATUSES, JobStatus
from pixelforge.web.deps import ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix=PREFIX, tags=["aiart"])


@router.post("/api/generate", summary="Text to image (blocking)")
@answers(402, 503)
async def generate(
    body: AiArtGenerateIn,
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
    responses=response_examples(
        {
            200: (
                "the transformed image",
                {
                    "success": True,
                    "message": "Image transformed successfully",
                    "image_url": "https://pixelforge.example/aiart/processed_images/"
                    + EXAMPLE_FILES["processed_images"],
                    "seed": 1234567,
                },
            ),
            400: BAD_REQUEST,
        }
    ),
)
@answers(402, 503)
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
    responses=response_examples(
        {
            200: (
                "the generation was accepted; poll its id",
                {
                    "success": True,
                    "id": "job_a8Zr0cK1d2Q9xw3mP0vUoQ",
                    "message": "Video generation started. Poll for results using the returned ID.",
                },
            ),
            400: BAD_REQUEST,
        }
    ),
)
@answers(402, 503)
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
    responses=response_examples(
        {
            200: (
                "the video is ready (its URL is relative to the API's base URL)",
                {
                    "status": "complete",
                    "video_url": "/processed_videos/" + EXAMPLE_FILES["processed_videos"],
                    "finish_reason": "SUCCESS",
                    "seed": "1234567",
                },
            ),
            202: ("still running", {"status": "in-progress", "message": IN_PROGRESS}),
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
    if job.status not in TERMINAL_STATUSES:
        return JSONResponse({"status": "in-progress", "message": IN_PROGRESS}, status_code=202)
    if job.status != JobStatus.SUCCEEDED:
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
        if row.kind != "result" or EXT.get(row.content_type) != ext:
            raise gone
        if pipeline_of(services, row) != FOLDER_PIPELINES[folder]:
            raise gone  # another kind's result, renamed into this folder
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
            200: {"description": "the file", "content": {FILE_TYPES[folder]: {}}},
            **response_examples(
                {404: ("unknown, expired or deleted", {"error": "file 'x' not found"})}
            ),
        },
    )
    router.add_api_route(path, serve, methods=["HEAD"], include_in_schema=False)


for _folder in FOLDERS:
    _file_route(_folder)
