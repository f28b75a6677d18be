"""AliveAI prompts on core jobs, and their views (prompt container, queue item, medias).

A prompt is a core job. What the seed keeps with a prompt that the pipeline's params cannot hold
(its type; name, appearance, ...: the request as sent) is the job's metadata under `aliveai`,
`{"promptType", "request"}`, accepted in the same transaction as the job. A job without it
(one made through the native API) is no prompt. Deleting a prompt deletes its results and
marks its metadata `deletedAt`: it is gone from every listing, the job row stays (the ledger
refers to it). Prompts are listed for the results' retention from their creation.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import HTTPConnection

from pixelforge.clock import now
from pixelforge.dialects.aliveai.errors import error_type
from pixelforge.dialects.common import media_url
from pixelforge.errors import PixelForgeError, not_found
from pixelforge.jobs.status import JobStatus
from pixelforge.services import Services
from pixelforge.store.tables import Job, Media

META = "aliveai"
_TYPE = (META, "promptType")
_DELETED = (META, "deletedAt")

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
    JobStatus.QUEUED: "PENDING",
    JobStatus.RUNNING: "PROCESSING",
    JobStatus.SUCCEEDED: "COMPLETED",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELED: "CANCELED",
}
PENDING = (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass(frozen=True)
class Prompt:
    job: Job

    @property
    def fields(self) -> dict[str, Any]:
        """The dialect's part of the job's metadata: promptType, request (, deletedAt)."""
        ours: dict[str, Any] = (self.job.meta or {})[META]
        return ours

    @property
    def prompt_type(self) -> str:
        return str(self.fields["promptType"])

    @property
    def request(self) -> dict[str, Any]:
        """The request as sent, with the seed actually used."""
        return {**self.fields.get("request", {}), "seed": str(self.job.seed)}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


# -- persistence -------------------------------------------------------------------------------
def meta(prompt_type: str, request: dict[str, Any]) -> dict[str, Any]:
    """The job metadata that makes a core job this prompt (submitted with the job)."""
    return {META: {"promptType": prompt_type, "request": request}}


def is_prompt(job: Job) -> bool:
    """A live AliveAI prompt: made by this dialect, not deleted (retention aside)."""
    ours = (job.meta or {}).get(META)
    return isinstance(ours, dict) and "promptType" in ours and ours.get("deletedAt") is None


def _oldest(services: Services) -> float:
    return now() - services.media.limits.result_retention_s


def find(services: Services, account_id: str, prompt_id: str) -> Prompt:
    """The account's prompt; anyone else's, a deleted or an expired one is 404."""
    try:
        job = services.jobs.get(account_id=account_id, job_id=prompt_id)
    except PixelForgeError:
        job = None
    if job is None or not is_prompt(job) or job.created_at <= _oldest(services):
        raise not_found(f"prompt {prompt_id!r}")
    return Prompt(job)


def listing(
    services: Services,
    account_id: str,
    *,
    statuses: tuple[str, ...],
    types: list[str] | None = None,
    offset: int = 0,
    limit: int | None = None,
) -> tuple[list[Prompt], int]:
    """The account's prompts in these statuses, newest first (a page of them), and the total."""
    jobs, total = services.jobs.search(
        account_id=account_id,
        statuses=statuses,
        meta={_TYPE: types or None},
        meta_unset=[_DELETED],
        created_after=_oldest(services),
        offset=offset,
        limit=limit,
    )
    return [Prompt(job) for job in jobs], total


def delete(services: Services, prompt: Prompt) -> None:
    """Mark the prompt deleted (gone from every listing) and delete its results."""
    job = prompt.job
    marked = {**prompt.fields, "deletedAt": now()}
    services.jobs.update_meta(account_id=job.account_id, job_id=job.id, changes={META: marked})
    for row in services.jobs.outputs(job.id):
        with suppress(PixelForgeError):  # already expired and swept
            services.media.delete(account_id=job.account_id, media_id=row.id)


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
    request = prompt.request
    out: dict[str, Any] = {"promptId": job.id}
    for key in REQUEST_KEYS.values():
        out[key] = request if REQUEST_KEYS.get(ptype) == key else None
    outputs = services.jobs.outputs(job.id) if job.status == JobStatus.SUCCEEDED else []
    out["isFavorite"] = False
    out["medias"] = [media_view(services, conn, m) for m in outputs]
    out.update(
        promptType=ptype,
        status=_STATUS[JobStatus(job.status)],
        progress=percent(job.progress),
        queuePosition=services.jobs.position(job),
        isComplete=job.status == JobStatus.SUCCEEDED,
        isError=job.status in (JobStatus.FAILED, JobStatus.CANCELED),
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
        "status": _STATUS[JobStatus(job.status)],
        "queuePosition": positions.get(job.id),
        "progress": percent(job.progress),
        "created": iso(job.created_at),
    }


def queue(services: Services, account_id: str) -> list[dict[str, Any]]:
    """The account's pending prompts, oldest first, with their places in the queue."""
    prompts, _ = listing(services, account_id, statuses=PENDING)
    positions = services.jobs.positions() if prompts else {}
    return [queue_item(p, positions) for p in reversed(prompts)]


def queue_after(services: Services, account_id: str, job_id: str) -> list[dict[str, Any]] | None:
    """The queue after an event of this job; None when the job is not one of the account's
    prompts (a native job's events change no AliveAI queue)."""
    try:
        job = services.jobs.get(account_id=account_id, job_id=job_id)
    except PixelForgeError:
        return None
    return queue(services, account_id) if is_prompt(job) else None


def percent(progress: float) -> int:
    return max(0, min(100, round(progress * 100)))
