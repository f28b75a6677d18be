"""AliveAI's vision endpoints: Create Vision, Update Vision (a character card from an image),
Generate Vision Prompt and Get Clothes Description; each one `describe_image` job, waited for.

Rate limited per user as the seed says (`vision_rate_limit`, 10 a minute unless configured);
1 credit each (the pipeline's cost), charged only when the model answered. The readings of the
seed are in docs/dialects/aliveai.md ("Vision").
"""

from __future__ import annotations

import math
from contextlib import suppress
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.dialects.aliveai import examples as ex
from pixelforge.dialects.aliveai import store
from pixelforge.dialects.aliveai import visions as vs
from pixelforge.dialects.aliveai.settings import options_of
from pixelforge.dialects.common import ingest_image, job_error, submit, wait
from pixelforge.errors import ErrorCode, PixelForgeError, not_found
from pixelforge.jobs.status import JobStatus
from pixelforge.models.base import VISION
from pixelforge.services import Services
from pixelforge.settings import parse_rate
from pixelforge.store.tables import Account, Job
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix="/aliveai", tags=["aliveai"])

VISION_ID = "vis_Qm2pL8xT1zR9wYc4AVb3k0"
CARD = {
    "name": "Mira",
    "description": "A young woman with short red hair in a blue denim jacket, in a park.",
    "personality": "Curious, warm and a little shy.",
    "scenario": "You meet Mira on a bench in the park on a sunny afternoon.",
    "first_mes": "Oh, hello! Is this seat taken?",
    "tags": ["female", "casual", "outdoors"],
    "visionId": VISION_ID,
}
_ERRORS = (
    ex.error(402, "insufficient_credits", "this job costs 1 credits but only 0 are available"),
    ex.error(429, "rate_limited", "vision requests are limited to 10 a minute; retry after 6 s"),
    ex.error(
        503,
        "model_unavailable",
        "model 'smolvlm-256m-instruct' is not on this machine; run `pixelforge models pull "
        "smolvlm-256m-instruct` on a machine with internet access",
    ),
)
_TEXT = {"promptText": "a young woman with short red hair, blue denim jacket, city park"}


class VisionCard(BaseModel):
    """CreateChatCharacterFromImageResponse as it comes back (every field optional)."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, max_length=15000)
    description: str | None = Field(default=None, max_length=15000)
    personality: str | None = Field(default=None, max_length=15000)
    scenario: str | None = Field(default=None, max_length=15000)
    first_mes: str | None = Field(default=None, max_length=15000)
    tags: list[str] | str | None = None
    visionId: str | None = Field(default=None, max_length=40)


class CreateVisionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    imageUrl: str = Field(min_length=1, max_length=4096, description="Public URL of the image.")
    characterName: str = Field(min_length=1, max_length=100, pattern=r"\S")


class UpdateVisionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    chatCharacterFromImageResponse: VisionCard
    updatePrompt: str = Field(min_length=1, max_length=2000, pattern=r"\S")


class VisionPromptRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    mediaId: str = Field(min_length=1, max_length=100)


@dataclass(frozen=True)
class VisionCall:
    """The caller and the services; runs one vision-model job for an endpoint."""

    account: Account
    services: Services

    async def ready(self) -> str:
        """The vision model (503 model_unavailable when not installed), then the caller's
        rate limit (429): checked before anything is fetched or held."""
        opts = options_of(self.services)
        profile = await run_in_threadpool(
            lambda: self.services.models.profile(opts.vision_model, task=VISION)
        )
        if opts.vision_rate_limit:
            limit, window = parse_rate(opts.vision_rate_limit)
            retry = await run_in_threadpool(
                lambda: self.services.limiter.hit(
                    f"aliveai:vision:{self.account.id}", limit=limit, window_s=window
                )
            )
            if retry > 0:
                seconds = max(1, math.ceil(retry))
                raise PixelForgeError(
                    ErrorCode.rate_limited,
                    f"vision requests are limited to {opts.vision_rate_limit} per user; "
                    f"retry after {seconds} s",
                    headers={"Retry-After": str(seconds)},
                )
        return profile.id

    async def run(
        self, model: str, endpoint: str, prompt: str, *, image: str | None, card: bool
    ) -> tuple[str, Job]:
        """The model's text (and its job) for `prompt` about `image`."""
        opts = options_of(self.services)
        params: dict[str, Any] = {
            "model": model,
            "prompt": prompt,
            "max_tokens": opts.vision_max_tokens,
            "temperature": 0.7,
        }
        if card:
            params["system"] = vs.SYSTEM
        if image:
            params["image"] = image
        submitted = await submit(
            self.services,
            self.account,
            "describe_image",
            params,
            meta={"aliveai": {"vision": endpoint}},
        )
        job = await wait(self.services, submitted.job, opts.max_blocking_s)
        if job.status in (JobStatus.FAILED, JobStatus.CANCELED):
            raise job_error(job, fallback="the vision model failed")
        if job.status != JobStatus.SUCCEEDED:
            job = await run_in_threadpool(self._give_up, job.id, opts.max_blocking_s)
        return str((job.result or {}).get("text", "")), job

    def _give_up(self, job_id: str, waited_s: float) -> Job:
        """Cancel a job that outlived the wait (504), unless it has just succeeded."""
        jobs, account_id = self.services.jobs, self.account.id
        with suppress(PixelForgeError):  # it may have ended meanwhile
            jobs.cancel(account_id=account_id, job_id=job_id)
        job = jobs.get(account_id=account_id, job_id=job_id)
        if job.status == JobStatus.SUCCEEDED:
            return job
        raise PixelForgeError(
            ErrorCode.timeout,
            f"the vision model did not answer within {waited_s:g} s; job {job_id} was "
            "canceled and nothing was charged",
            status=504,
        )


@answers(402, 404, 503, 504)
def vision_call(account: CurrentAccount, services: ServicesDep) -> VisionCall:
    return VisionCall(account, services)


Call = Annotated[VisionCall, Depends(vision_call)]


def _card(view: dict[str, Any], vision_id: str) -> dict[str, Any]:
    return {**view, "visionId": vision_id}


@router.post(
    "/chat-characters/vision",
    summary="Create Vision (a character card from an image URL)",
    responses=ex.responses(CARD, ex.INVALID, *_ERRORS),
)
async def create_vision(body: CreateVisionRequest, call: Call) -> dict[str, Any]:
    model = await call.ready()
    media = await ingest_image(
        call.services, call.account, url=body.imageUrl, field="imageUrl", reuse_identical=True
    )
    name = body.characterName.strip()
    text, job = await call.run(
        model, "CREATE_VISION", vs.create_prompt(name), image=media.id, card=True
    )
    # The seed: the name is the one asked for, whatever the model wrote.
    card = {**vs.read_card(text, base={}), "name": name}
    vision_id = await run_in_threadpool(
        lambda: vs.save_new(
            call.services.db,
            account_id=call.account.id,
            media_id=media.id,
            card=card,
            job_id=job.id,
        )
    )
    return _card(card, vision_id)


@router.post(
    "/chat-characters/vision/update",
    summary="Update Vision (refine a card from Create Vision)",
    responses=ex.responses(
        CARD, ex.error(404, "not_found", f"vision {VISION_ID!r} not found"), *_ERRORS
    ),
)
async def update_vision(body: UpdateVisionRequest, call: Call) -> dict[str, Any]:
    old = body.chatCharacterFromImageResponse.model_dump(exclude_none=True)
    vision_id = old.pop("visionId", None)
    image = None
    if vision_id is not None:
        row = await run_in_threadpool(
            lambda: vs.find(call.services.db, account_id=call.account.id, vision_id=vision_id)
        )
        image = await run_in_threadpool(_live_media, call.services, call.account, row.media_id)
    model = await call.ready()
    prompt = vs.update_prompt(old, body.updatePrompt, with_image=image is not None)
    text, job = await call.run(model, "UPDATE_VISION", prompt, image=image, card=True)
    card = vs.read_card(text, base=old)
    if vision_id is None:
        vision_id = await run_in_threadpool(
            lambda: vs.save_new(
                call.services.db,
                account_id=call.account.id,
                media_id=None,
                card=card,
                job_id=job.id,
            )
        )
    else:
        await run_in_threadpool(
            lambda: vs.save_update(call.services.db, vision_id=vision_id, card=card, job_id=job.id)
        )
    return _card(card, vision_id)


@router.get(
    "/chat-characters/vision/{visionId}",
    summary="Get Vision (a stored card; not in the seed)",
    responses=ex.responses(CARD, ex.error(404, "not_found", f"vision {VISION_ID!r} not found")),
)
def get_vision(visionId: str, account: CurrentAccount, services: ServicesDep) -> dict[str, Any]:
    row = vs.find(services.db, account_id=account.id, vision_id=visionId)
    return _card(vs.card_view(row.card), row.id)


@router.post(
    "/llm/generate-vision-prompt",
    summary="Generate Vision Prompt",
    responses=ex.responses(
        _TEXT, ex.error(404, "not_found", f"media {ex.MEDIA_ID!r} not found"), *_ERRORS
    ),
)
async def generate_vision_prompt(body: VisionPromptRequest, call: Call) -> dict[str, str]:
    model = await call.ready()
    text, _ = await call.run(
        model, "VISION_PROMPT", vs.VISION_PROMPT, image=body.mediaId, card=False
    )
    return {"promptText": text.strip()}


@router.get(
    "/llm/clothes-description/{clothesId}",
    summary="Get Clothes Description (clothesId: a Create Clothes promptId)",
    responses=ex.responses(
        _TEXT, ex.error(404, "not_found", f"clothes {ex.PROMPT_ID!r} not found"), *_ERRORS
    ),
)
async def clothes_description(clothesId: str, call: Call) -> dict[str, str]:
    image = await run_in_threadpool(_clothes_image, call.services, call.account, clothesId)
    model = await call.ready()
    text, _ = await call.run(model, "CLOTHES", vs.CLOTHES_PROMPT, image=image, card=False)
    return {"promptText": text.strip()}


def _live_media(services: Services, account: Account, media_id: str | None) -> str | None:
    """The vision's source image while it is kept (uploads expire), else None."""
    if media_id is None:
        return None
    try:
        services.media.get(account_id=account.id, media_id=media_id)
    except PixelForgeError:
        return None
    return media_id


def _clothes_image(services: Services, account: Account, clothes_id: str) -> str:
    """The image of the account's custom clothes (a succeeded Create Clothes prompt)."""
    try:
        prompt = store.find(services, account.id, clothes_id)
    except PixelForgeError:
        prompt = None
    if prompt is None or prompt.prompt_type != "CREATE_CLOTHES":
        raise not_found(f"clothes {clothes_id!r}")
    outputs = (
        services.jobs.outputs(prompt.job.id) if prompt.job.status == JobStatus.SUCCEEDED else []
    )
    if not outputs:
        raise not_found(f"clothes {clothes_id!r}")
    return outputs[0].id
