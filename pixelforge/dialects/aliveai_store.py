"""AliveAI prompts on core jobs, and their views (prompt container, queue item, medias).

A prompt is a core job. What the seed keeps with a prompt that the pipeline's params cannot hold
(name, appearance, the request as sent) is kept beside the job as one small JSON media item of
kind `aliveai` in the core's media store, with the same retention as the job's results; its
content type names the prompt type (`application/vnd.aliveai.image_default+json`). No table of
our own: deleting a prompt deletes its results and this item.
"""

from __future__ import annotations

import json
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select
from starlette.requests import HTTPConnection

from pixelforge.clock import now
from pixelforge.dialects.aliveai_errors import error_type
from pixelforge.dialects.common import media_url
from pixelforge.errors import PixelForgeError, not_found
from pixelforge.services import Services
from pixelforge.store.tables import Job, Media

KIND = "aliveai"
_CTYPE = "application/vnd.aliveai.{}+json"

# Get Prompt's request fields, in the seed's order, by the prompt type that fills each.
REQUEST_KEYS = {
    "IMAGE_DEFAULT": "originalPrompt",
    "VIDEO_EXPRESSION": "originalVideoExpressionPrompt",
    "FACE_IMPROVE": "faceImprovePrompt",
    "AFTER_FACE_SWAP": "afterFaceSwapPrompt",
    "EDIT_BREASTS": "editBreastsRequest",
    "PORTRAIT": "createPortraitRequest",
    "IMAGE_TO_VIDEO": "imageToVideoRequest",
    "INPAINT": "inpaintRequest",
    "IMPROVE_EYES": "eyeImproveRequest",
    "GOOGLE_INPAINT": "googleInpaintRequest",
    "EDIT_VIDEO_INCREASE_FPS": "editVideoIncreaseFpsRequest",
    "EXTEND_VIDEO": "createExtendVideoRequest",
    "EDIT_IMAGE": "createEditImageRequest",
    "EDIT_UPSCALE_IMAGE": "createUpscaleImageRequest",
    "UPSCALE_VIDEO": "createUpscaleVideoRequest",
    "CHARACTER_IMAGE": "createCharacterImageRequest",
    "EDIT_IMPROVE_FACE": "createEditImproveFaceRequest",
    "CREATE_FACE": "createFaceRequest",
    "EDIT_ENHANCE": "createEnhanceImageRequest",
    "EDIT_VAGINA": "createEditVaginaRequest",
    "CHARACTER_TRAINING_DATA": "createCharacterTrainingDataRequest",
    "CREATE_CLOTHES": "createClothesImageRequest",
}
_STATUS = {
    "queued": "PENDING",
    "running": "PROCESSING",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "canceled": "CANCELED",
}
PENDING = ("queued", "running")


# The prompt type of a job made some other way (the native API), by its pipeline.
_TYPES = {
    "text_to_image": "IMAGE_DEFAULT",
    "pose_transfer": "IMAGE_DEFAULT",
    "edit": "EDIT_IMAGE",
    "image_to_video": "IMAGE_TO_VIDEO",
    "inpaint": "INPAINT",
    "upscale": "EDIT_UPSCALE_IMAGE",
    "enhance": "FACE_IMPROVE",
    "face_swap": "AFTER_FACE_SWAP",
    "extract_clothes": "CREATE_CLOTHES",
}


@dataclass(frozen=True)
class Prompt:
    job: Job
    sidecar: Media | None  # None only for a pending job made by other means (see `queue`)

    @property
    def prompt_type(self) -> str:
        if self.sidecar is None:
            return _TYPES.get(self.job.pipeline, self.job.pipeline.upper())
        ctype = self.sidecar.content_type
        return ctype.removeprefix("application/vnd.aliveai.").removesuffix("+json").upper()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


# -- persistence -------------------------------------------------------------------------------
def save(services: Services, job: Job, prompt_type: str, request: dict[str, Any]) -> None:
    """Keep the request beside its job (once: an idempotent replay keeps the first)."""
    data = json.dumps(request, separators=(",", ":")).encode()
    key = services.media.store.put(data, ext="json")
    row = services.media.new_row(
        account_id=job.account_id,
        storage_key=key,
        content_type=_CTYPE.format(prompt_type.lower()),
        data=data,
        width=None,
        height=None,
        kind=KIND,
        job_id=job.id,
    )
    with services.db.write() as s:
        have = s.scalar(select(Media.id).where(Media.job_id == job.id, Media.kind == KIND))
        if have is None:
            s.add(row)
    if have is not None:
        services.media.store.delete(key)


def find(services: Services, account_id: str, prompt_id: str) -> Prompt:
    """The account's prompt; anyone else's, a deleted or an expired one is 404."""
    with services.db.read() as s:
        job = s.get(Job, prompt_id)
        side = s.scalar(_sidecars(account_id).where(Media.job_id == prompt_id))
    if job is None or side is None or job.account_id != account_id:
        raise not_found(f"prompt {prompt_id!r}")
    return Prompt(job, side)


def request_of(services: Services, prompt: Prompt) -> dict[str, Any]:
    if prompt.sidecar is None:
        return {}
    data: dict[str, Any] = json.loads(services.media.read_bytes(prompt.sidecar))
    return data


def _sidecars(account_id: str) -> Any:
    return select(Media).where(
        Media.account_id == account_id, Media.kind == KIND, Media.expires_at > now()
    )


def listing(
    services: Services,
    account_id: str,
    *,
    statuses: tuple[str, ...],
    types: list[str] | None = None,
    offset: int = 0,
    limit: int | None = None,
    every_job: bool = False,
) -> tuple[list[Prompt], int]:
    """The account's prompts in these statuses, newest first (a page of them), and the total.

    `every_job`: also the account's jobs without a stored request (made by the native API, or
    an AliveAI prompt in the instant between its acceptance and its request being stored)."""
    on = and_(
        Media.job_id == Job.id,
        Media.account_id == account_id,
        Media.kind == KIND,
        Media.expires_at > now(),
    )
    q = (
        select(Job, Media)
        .join(Media, on, isouter=every_job)
        .where(Job.account_id == account_id, Job.status.in_(statuses))
    )
    if types:
        q = q.where(Media.content_type.in_([_CTYPE.format(t.lower()) for t in types]))
    with services.db.read() as s:
        total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
        q = q.order_by(Job.created_at.desc(), Job.id.desc()).offset(offset)
        rows = s.execute(q if limit is None else q.limit(limit)).all()
    return [Prompt(job, side) for job, side in rows], int(total)


def delete(services: Services, prompt: Prompt) -> None:
    """Delete the prompt's results and its request: it is gone from every listing."""
    rows = services.jobs.outputs(prompt.job.id)
    for row in [*rows, prompt.sidecar] if prompt.sidecar is not None else rows:
        with suppress(PixelForgeError):  # already expired and swept
            services.media.delete(account_id=prompt.job.account_id, media_id=row.id)


# -- views -------------------------------------------------------------------------------------
def media_view(services: Services, conn: HTTPConnection, row: Media) -> dict[str, Any]:
    return {
        "id": row.id,
        "mediaUrl": media_url(services, conn, row),
        "mediaType": "VIDEO" if row.content_type.startswith("video/") else "IMAGE",
        "width": row.width,
        "height": row.height,
    }


def container(services: Services, conn: HTTPConnection, prompt: Prompt) -> dict[str, Any]:
    """Get Prompt's object: the request under its type's key, the medias, and the state."""
    job, ptype = prompt.job, prompt.prompt_type
    request = request_of(services, prompt)
    out: dict[str, Any] = {"promptId": job.id}
    for key in REQUEST_KEYS.values():
        out[key] = request if REQUEST_KEYS.get(ptype) == key else None
    outputs = services.jobs.outputs(job.id) if job.status == "succeeded" else []
    out["isFavorite"] = False
    out["medias"] = [media_view(services, conn, m) for m in outputs]
    out.update(
        promptType=ptype,
        status=_STATUS.get(job.status, job.status.upper()),
        progress=percent(job.progress),
        queuePosition=services.jobs.position(job),
        isComplete=job.status == "succeeded",
        isError=job.status in ("failed", "canceled"),
        errorType=error_type(job.error_code) if job.error_code else None,
        message=job.error_message,
        created=iso(job.created_at),
    )
    return out


def queue_item(prompt: Prompt, positions: dict[str, int]) -> dict[str, Any]:
    job = prompt.job
    return {
        "promptId": job.id,
        "promptType": prompt.prompt_type,
        "status": _STATUS.get(job.status, job.status.upper()),
        "queuePosition": positions.get(job.id),
        "progress": percent(job.progress),
        "created": iso(job.created_at),
    }


def queue(services: Services, account_id: str) -> list[dict[str, Any]]:
    """The account's pending prompts, oldest first, with their places in the queue."""
    # All of the account's pending jobs: they are its queue, however they were made.
    prompts, _ = listing(services, account_id, statuses=PENDING, every_job=True)
    positions = services.jobs.positions() if prompts else {}
    return [queue_item(p, positions) for p in reversed(prompts)]


def percent(progress: float) -> int:
    return max(0, min(100, round(progress * 100)))
