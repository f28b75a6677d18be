"""OpenAI's readings: size, model, quality, style -> core params; running a job, blocking."""

from __future__ import annotations

import base64
import io
import re
import time
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from PIL import Image

from pixelforge.dialects import common
from pixelforge.dialects.openai.errors import OpenAIError, bad
from pixelforge.dialects.openai.schemas import CommonIn, ImageOut, ImagesOut, PromptedIn
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.status import TERMINAL_STATUSES, JobStatus
from pixelforge.models.base import ModelProfile
from pixelforge.services import Services
from pixelforge.store.tables import Account

OPENAI_MODELS = ("dall-e-", "gpt-image-", "chatgpt-image-")  # read as "the server's default"
# Steps as a multiple of the model's default.
QUALITY_STEPS = {"low": 0.5, "standard": 1, "medium": 1, "auto": 1, "hd": 2, "high": 2}
QUALITY_STEPS |= {"xhigh": 3, "max": 4}
STYLES = {
    "vivid": (", vivid colors, dramatic lighting, hyper-detailed", ""),
    "natural": ("", "oversaturated, hyperreal, dramatic lighting"),
}
VARIATION_PROMPT = "a high quality image"
VARIATION_STRENGTH = 0.6
_SIZE_RE = re.compile(r"(\d{1,5})x(\d{1,5})")


# -- readings --------------------------------------------------------------------------------


def parse_size(size: str | None) -> tuple[int, int] | None:
    """WIDTHxHEIGHT as asked (multiples of 8, 64 to 2048 px a side); None for auto."""
    if size in (None, "", "auto"):
        return None
    m = _SIZE_RE.fullmatch(size)
    if m is None:
        raise bad("size", f"{size!r} is not a size; use WIDTHxHEIGHT (e.g. 1024x1024) or auto")
    w, h = int(m.group(1)), int(m.group(2))
    if not (64 <= w <= 2048 and 64 <= h <= 2048) or w % 8 or h % 8:
        raise bad("size", f"{size}: each side must be a multiple of 8 from 64 to 2048 px")
    return w, h


def resolve_model(services: Services, name: str | None, task: str) -> ModelProfile:
    if name is None or name.startswith(OPENAI_MODELS):
        return services.models.profile(None, task=task)
    if services.models.catalog.get(name) is None:
        raise OpenAIError(
            ErrorCode.not_found,
            f"The model '{name}' does not exist on this server; see GET /v1/models",
            param="model",
            openai_code="model_not_found",
        )
    try:
        return services.models.profile(name, task=task)
    except PixelForgeError as e:
        if e.code == ErrorCode.invalid_parameter:
            raise OpenAIError(e.code, e.message, param="model") from None
        raise


def core_params(body: CommonIn, profile: ModelProfile, *, quality: str | None) -> dict[str, Any]:
    """The fields every generation pipeline shares, from the OpenAI request."""
    params: dict[str, Any] = {"model": profile.id, "num_images": body.n or 1}
    if body.steps is not None:
        params["steps"] = body.steps
    elif quality is not None:
        params["steps"] = min(150, max(1, round(profile.default_steps * QUALITY_STEPS[quality])))
    if body.seed is not None:
        params["seed"] = body.seed
    if body.negative_prompt:
        params["negative_prompt"] = body.negative_prompt
    if body.output_format is not None:
        params["output_format"] = "jpg" if body.output_format == "jpeg" else body.output_format
    return params


def check_prompted(body: PromptedIn) -> None:
    if body.stream:
        raise bad("stream", "streaming is not supported here; omit stream")
    if body.background == "transparent":
        raise bad("background", "transparent backgrounds are not supported; use opaque or auto")


# -- running ---------------------------------------------------------------------------------


async def run_images(
    services: Services,
    request: Request,
    response: Response,
    account: Account,
    pipeline: str,
    params: dict[str, Any],
    *,
    key: str | None,
    body: CommonIn,
    revised_prompt: str | None = None,
) -> ImagesOut:
    """Submit, block until the job ends, and answer in OpenAI's shape."""
    submitted = await common.submit(services, account, pipeline, params, idempotency_key=key)
    if not submitted.created:
        response.headers["Idempotent-Replayed"] = "true"
    job = await common.wait(services, submitted.job, services.settings.max_wait_s)
    if job.status not in TERMINAL_STATUSES:
        await _time_out(services, account, job.id, key=key)
    if job.status != JobStatus.SUCCEEDED:
        raise common.job_error(job, fallback=f"the job ended {job.status}")
    rows = await common.outputs(services, job)
    b64 = body.response_format == "b64_json" or (
        body.response_format is None and (body.model or "").startswith("gpt-image")
    )
    data = []
    for row in rows:
        out = ImageOut(revised_prompt=revised_prompt)
        if b64:
            raw = await run_in_threadpool(services.media.read_bytes, row)
            out.b64_json = base64.b64encode(raw).decode("ascii")
        else:
            out.url = common.media_url(services, request, row)
        data.append(out)
    first = rows[0] if rows else None
    return ImagesOut(
        created=int(job.finished_at or time.time()),
        data=data,
        output_format=first.content_type.removeprefix("image/") if first else None,
        size=f"{first.width}x{first.height}" if first and first.width else None,
    )


async def _time_out(services: Services, account: Account, job_id: str, *, key: str | None) -> None:
    wait = f"{services.settings.max_wait_s:g} s"
    if key is None:
        # Nothing could pick this job up again through this API: stop it, charge nothing.
        await run_in_threadpool(lambda: services.jobs.cancel(account_id=account.id, job_id=job_id))
        message = (
            f"the image was not ready within {wait}; job {job_id} was canceled and nothing "
            "was charged. Send an Idempotency-Key header to be able to retry and collect it"
        )
        raise PixelForgeError(ErrorCode.timeout, message, status=504)
    message = (
        f"the image was not ready within {wait}; job {job_id} goes on. Retry with the same "
        "Idempotency-Key to collect it"
    )
    raise PixelForgeError(
        ErrorCode.timeout, message, status=504, headers={"x-should-retry": "true"}
    )


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def ingest(services: Services, account: Account, data: bytes, *, reuse: bool) -> str:
    """Store a prepared input PNG; its media id. With an idempotency key an identical earlier
    upload is reused, so a retried request has the same params and maps to the same job."""
    return (await common.ingest_image(services, account, data=data, reuse_identical=reuse)).id
