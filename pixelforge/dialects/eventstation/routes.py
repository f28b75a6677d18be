"""The Eventstation.AI dialect: filter ids, self prompting and photo tools, polled by job id.

Every request becomes one core job; `POST /v2/status/{job_id}` reads it back with the image
as base64. See docs/dialects/eventstation.md for the endpoint map and the readings chosen.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from pydantic import BaseModel, Field

from pixelforge.accounts.service import parse_api_key
from pixelforge.api.deps import ServicesDep, authenticate, get_services
from pixelforge.dialects.common import get_job, ingest_image, outputs, submit
from pixelforge.dialects.eventstation.filters import (
    DEFAULT_GENDER_WORDS,
    Filter,
    filters_of,
    public_id,
)
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import ModelProfile
from pixelforge.services import Services
from pixelforge.store.tables import Account

PREFIX = "/eventstation"
router = APIRouter(prefix=PREFIX, tags=["eventstation"])
IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="a retry with the same key (and the same photo) returns the same job",
    ),
]

# Swagger's Authorize button logs in here (username: account email, password: API key).
_scheme = OAuth2PasswordBearer(tokenUrl=f"{PREFIX}/token", auto_error=False)

RATIOS = {"portrait": (768, 1152), "landscape": (1152, 768), "square": (1024, 1024)}
MAX_SIDE = 2048  # the core's largest side


@dataclass(frozen=True)
class Tier:
    """A capture mode: a multiple of the model's steps, a size scale, the fast decoder."""

    name: str
    steps: float
    scale: float = 1.0
    fast_decode: bool = False


TIERS = {
    1: Tier("Single Person Quick V4", steps=0.5, fast_decode=True),
    3: Tier("Single Person High Quality V4", steps=1.0),
    4: Tier("Single Person 4k V4", steps=1.0, scale=2.0),
    5: Tier("Single Person High Quality V5", steps=1.5),
}

# style_id -> the core's style preset (GET /v1/styles) and its title.
STYLES: tuple[tuple[str, str], ...] = (
    ("photographic", "Photographic"),
    ("analog-film", "Analog film"),
    ("cinematic", "Cinematic"),
    ("enhance", "Enhance"),
    ("anime", "Anime"),
    ("comic-book", "Comic book"),
    ("digital-art", "Digital art"),
    ("fantasy-art", "Fantasy art"),
    ("line-art", "Line art"),
    ("pixel-art", "Pixel art"),
    ("neon-punk", "Neon punk"),
    ("3d-model", "3D model"),
    ("isometric", "Isometric"),
    ("low-poly", "Low poly"),
    ("modeling-compound", "Modeling compound"),
    ("origami", "Origami"),
    ("tile-texture", "Tile texture"),
)


@dataclass(frozen=True)
class Workflow:
    name: str
    description: str
    pipeline: str
    params: dict[str, Any] = field(default_factory=dict)


WORKFLOWS = {
    0: Workflow(
        "Lazy Pose",
        "Your photo redrawn from your prompt; keeps its composition and colours.",
        "image_to_image",
        {"strength": 0.75},
    ),
    1: Workflow("Prompt only", "An image from the prompt alone; no photo needed.", "text_to_image"),
    2: Workflow(
        "Pose Transfer",
        "A new image from your prompt, in the pose of the person in the photo.",
        "pose_transfer",
    ),
}
PROMPTED = ("text_to_image", "image_to_image", "pose_transfer")
_PHOTO_FIELD = {"image_to_image": "image", "pose_transfer": "pose_image"}
Endpoint = TypeVar("Endpoint", bound=Callable[..., Coroutine[Any, Any, Any]])
_STATUS = {
    "queued": "IN_QUEUE",
    "running": "IN_PROGRESS",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "canceled": "CANCELLED",
}


# -- auth and errors -----------------------------------------------------------------------


def _account(request: Request, _: Annotated[str | None, Depends(_scheme)]) -> Account:
    return authenticate(get_services(request), request).account


EsAccount = Annotated[Account, Depends(_account)]


# -- request and response shapes -------------------------------------------------------------

ImageText = Field(
    None, description="a base64-encoded image (bare or data URI) or a public image URL"
)
Gender = Field(0, ge=0, le=3, description="0 male, 1 female, 2 boy, 3 girl")


class PhotoIn(BaseModel):
    base64: str | None = ImageText
    input_image: str | None = Field(None, description="the same as base64; give one of them")


class GenerateIn(PhotoIn):
    ratio: Literal["portrait", "landscape", "square"] = Field(
        "portrait", description="portrait 768x1152, landscape 1152x768, square 1024x1024"
    )
    capture_mode: Literal[1, 3, 4, 5] = Field(
        3, description="1 quick, 3 high quality, 4 4k, 5 high quality V5"
    )
    gender: int = Gender
    positive_prompt: str | None = Field(None, max_length=2000)
    negative_prompt: str | None = Field(None, max_length=2000)
    workflow_id: int | None = Field(None, description="GET /v1/workflows/")
    style_id: int | None = Field(None, ge=0, le=16, description="GET /v1/lazy_pose_styles/")


class SelfPromptIn(GenerateIn):
    positive_prompt: str = Field(min_length=1, max_length=2000)
    workflow_id: int | None = Field(0, description="GET /v1/workflows/")


class TwoPersonsIn(GenerateIn):
    filter_id: int | str = Field(description="a two-person filter id (GET /v1/filters/)")
    gender_2: int | None = Field(None, ge=0, le=3, description="the second person; default gender")


class TwoPersonsSelfPromptIn(SelfPromptIn):
    gender_2: int | None = Field(None, ge=0, le=3, description="the second person; default gender")


class AnimateIn(PhotoIn):
    base_video: int = Field(0, description="the base video of emotions and mimics; only 0")
    video_name: str = Field(
        "video", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )


class RunOut(BaseModel):
    job_id: str = Field(examples=["job_a8Zr0cK1d2Q9xw3mP0vUoQ"])
    status: str = Field(examples=["IN_QUEUE"])
    video_name: str | None = Field(None, description="animate only: the video's file name")


class StatusOut(BaseModel):
    job_id: str = Field(examples=["job_a8Zr0cK1d2Q9xw3mP0vUoQ"])
    status: str = Field(
        description="IN_QUEUE | IN_PROGRESS | COMPLETED | FAILED | CANCELLED",
        examples=["COMPLETED"],
    )
    image: str | None = Field(None, description="when COMPLETED: the image, base64")
    video: str | None = Field(None, description="when COMPLETED (animate): MP4, base64")
    video_name: str | None = Field(None, description="animate only: the video's file name")
    error: str | None = Field(None, description="when FAILED or CANCELLED")


class FilterItem(BaseModel):
    id: int | str = Field(examples=[1])
    name: str = Field(examples=["Astronaut"])
    description: str
    thumbnail: str | None
    persons: int = Field(examples=[1], description="2: use POST /v1/run/two_persons/")


class NamedItem(BaseModel):
    id: int = Field(examples=[0])
    name: str = Field(examples=["Photographic"])
    description: str = Field("", examples=["a photo of you, restyled from your prompt"])


# -- translation -----------------------------------------------------------------------------


def _profile(services: Services, task: str, model: Any) -> ModelProfile | None:
    catalog = services.models.catalog
    try:
        return catalog.get(model if isinstance(model, str) else catalog.default_for(task))
    except PixelForgeError:
        return None


def _sized(services: Services, task: str, body: GenerateIn, params: dict[str, Any]) -> None:
    """Width, height and steps from the ratio and capture mode, for the model that runs."""
    profile = _profile(services, task, params.get("model"))
    w, h = (float(v) for v in RATIOS[body.ratio])
    if profile is not None and profile.tiny:
        # Random-weight test models work at toy sizes: the ratio at their own short side.
        f = min(profile.default_width, profile.default_height) / min(w, h)
        w, h = w * f, h * f
    tier = TIERS[body.capture_mode]
    f = min(tier.scale, MAX_SIDE / max(w, h))
    params["width"], params["height"] = max(8, int(w * f) // 8 * 8), max(8, int(h * f) // 8 * 8)
    base_steps = params.get("steps") or (profile.default_steps if profile else None)
    if isinstance(base_steps, int):
        params["steps"] = min(150, max(1, math.ceil(base_steps * tier.steps)))
    if tier.fast_decode:
        params["fast_decode"] = True


async def _photo(services: Services, account: Account, body: PhotoIn, *, reuse: bool) -> str:
    if body.base64 and body.input_image and body.base64 != body.input_image:
        raise PixelForgeError(ErrorCode.invalid_parameter, "give base64 or input_image, not both")
    value = (body.base64 or body.input_image or "").strip()
    if not value:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            "base64: give the photo as base64 data or the URL of a public image",
        )
    if value[:8].lower().startswith(("http://", "https://")):
        media = await ingest_image(
            services, account, url=value, field="base64", reuse_identical=reuse
        )
    else:
        media = await ingest_image(
            services, account, b64=value, field="base64", reuse_identical=reuse
        )
    return media.id


async def _params(
    services: Services,
    account: Account,
    entry: Filter,
    body: PhotoIn,
    genders: list[int],
    *,
    reuse: bool = False,
) -> dict[str, Any]:
    """The core params for a filter (stored, or made up for an endpoint) and a request."""
    params = dict(entry.params)
    if entry.pipeline not in PROMPTED:
        params["image"] = await _photo(services, account, body, reuse=reuse)
        return params
    assert isinstance(body, GenerateIn)
    prompt, negative = entry.render(
        genders=genders, prompt=body.positive_prompt, negative=body.negative_prompt
    )
    if not prompt:
        raise PixelForgeError(ErrorCode.invalid_parameter, "positive_prompt: a prompt is needed")
    params["prompt"] = prompt
    if negative:
        params["negative_prompt"] = negative
    if body.style_id is not None:
        params["style"] = STYLES[body.style_id][0]
    if body.workflow_id is not None and body.workflow_id not in WORKFLOWS:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"workflow_id: {body.workflow_id} is not a workflow; see GET /v1/workflows/",
        )
    if photo_field := _PHOTO_FIELD.get(entry.pipeline):
        params[photo_field] = await _photo(services, account, body, reuse=reuse)
    _sized(services, entry.pipeline, body, params)
    return params


async def _run(
    services: Services,
    account: Account,
    entry: Filter,
    body: PhotoIn,
    genders: list[int],
    key: str | None,
    meta: dict[str, Any] | None = None,
) -> RunOut:
    """Submit the job; with an Idempotency-Key a retry (same photo bytes) is the same job."""
    params = await _params(services, account, entry, body, genders, reuse=key is not None)
    submitted = await submit(
        services,
        account,
        entry.pipeline,
        params,
        idempotency_key=f"eventstation:{key}" if key else None,
        meta={"eventstation": meta} if meta else None,
    )
    return RunOut(job_id=submitted.job.id, status=_STATUS[submitted.job.status])


def _tool(pipeline: str, name: str, **params: Any) -> Filter:
    """A filter made up for an endpoint that is not driven by a filter id."""
    return Filter(
        id=name,
        name=name,
        description="",
        thumb=None,
        pipeline=pipeline,
        persons=1,
        prompt="",
        negative_prompt="",
        gender_words=DEFAULT_GENDER_WORDS,
        params=params,
        sort=0,
        created_at=0.0,
        updated_at=0.0,
    )


def _workflow(workflow_id: int | None) -> Workflow:
    wf = WORKFLOWS.get(0 if workflow_id is None else workflow_id)
    if wf is None:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"workflow_id: {workflow_id} is not a workflow; see GET /v1/workflows/",
        )
    return wf


def _prompted(wf: Workflow, prompt: str | None, persons: int) -> Filter:
    """A filter made up from the user's own prompt, for one person or two."""
    who = "{gender}" if persons == 1 else "{gender} and a {gender_2}"
    # A prompt that names "{gender}" itself is used as written.
    template = "{prompt}" if prompt and "{gender}" in prompt else f"photo of a {who}, {{prompt}}"
    return replace(_tool(wf.pipeline, wf.name, **wf.params), prompt=template)


def _filter(services: Services, filter_id: int | str, persons: int) -> Filter:
    entry = filters_of(services).require(filter_id)
    if entry.persons != persons:
        where = "POST /v1/run/two_persons/" if entry.persons == 2 else "POST /v2/run/{filter_id}/"
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"filter {filter_id} is a {entry.persons}-person filter; use {where}",
        )
    return entry


# -- catalog ---------------------------------------------------------------------------------


@router.post(
    "/token",
    summary="Log in (OAuth2 password): username = email, password = API key",
    responses={
        200: {
            "content": {
                "application/json": {
                    "example": {"access_token": "pf_AbCdEf12_...", "token_type": "bearer"}
                }
            }
        }
    },
)
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], services: ServicesDep
) -> dict[str, str]:
    if parse_api_key(form.password) is None:
        access = services.accounts.login(email=form.username, password=form.password)
        return {"access_token": access, "token_type": "bearer"}
    account, _ = services.accounts.authenticate_key(form.password)
    if form.username.strip() != account.id and form.username.strip().lower() != account.email:
        raise PixelForgeError(ErrorCode.unauthorized, "wrong username or password")
    # The API key is the bearer token: revoking the key ends the session at once.
    return {"access_token": form.password, "token_type": "bearer"}


@router.get("/v1/filters/", response_model=list[FilterItem], summary="The curated filter ids")
def list_filters(_: EsAccount, services: ServicesDep) -> list[FilterItem]:
    return [
        FilterItem(
            id=public_id(f.id),
            name=f.name,
            description=f.description,
            thumbnail=f.thumb,
            persons=f.persons,
        )
        for f in filters_of(services).all()
    ]


@router.get("/v1/workflows/", response_model=list[NamedItem], summary="Self-prompting workflows")
def list_workflows(_: EsAccount) -> list[NamedItem]:
    return [NamedItem(id=i, name=w.name, description=w.description) for i, w in WORKFLOWS.items()]


@router.get("/v1/lazy_pose_styles/", response_model=list[NamedItem], summary="Styles 0-16")
def list_styles(_: EsAccount) -> list[NamedItem]:
    return [NamedItem(id=i, name=title) for i, (_name, title) in enumerate(STYLES)]


# -- generation (the named endpoints first: /v2/run/{filter_id}/ would take their names) ------


def _post(name: str, summary: str) -> Callable[[Endpoint], Endpoint]:
    """POST /v1/run/<name>/, also answered at /v2/run/<name>/ (not listed)."""

    def wrap(fn: Endpoint) -> Endpoint:
        router.post(f"/v2/run/{name}/", response_model=RunOut, include_in_schema=False)(fn)
        return router.post(f"/v1/run/{name}/", response_model=RunOut, summary=summary)(fn)

    return wrap


@_post("two_persons", "Lazy Pose Two Person: a two-person filter on a photo of two")
async def two_persons(
    body: TwoPersonsIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = await run_in_threadpool(_filter, services, body.filter_id, 2)
    genders = [body.gender, body.gender if body.gender_2 is None else body.gender_2]
    return await _run(services, account, entry, body, genders, idempotency_key)


@_post("self_prompting", "Lazy Pose Self Prompting: your prompt, a workflow, a style")
async def self_prompting(
    body: SelfPromptIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = _prompted(_workflow(body.workflow_id), body.positive_prompt, 1)
    return await _run(services, account, entry, body, [body.gender], idempotency_key)


@_post("two_persons_self_prompting", "Lazy Pose Two Persons Self Prompting")
async def two_persons_self_prompting(
    body: TwoPersonsSelfPromptIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = _prompted(_workflow(body.workflow_id), body.positive_prompt, 2)
    genders = [body.gender, body.gender if body.gender_2 is None else body.gender_2]
    return await _run(services, account, entry, body, genders, idempotency_key)


@_post("pose_transfer", "Pose Transfer: a new image in the pose of the person in the photo")
async def pose_transfer(
    body: GenerateIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = _prompted(WORKFLOWS[2], body.positive_prompt, 1)
    return await _run(services, account, entry, body, [body.gender], idempotency_key)


@_post("animate_image", "Lazy Pose Animate Image: a short video from the photo")
async def animate_image(
    body: AnimateIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    if body.base_video != 0:
        raise PixelForgeError(
            ErrorCode.invalid_parameter, "base_video: only 0 is available for now"
        )
    entry = _tool("image_to_video", "animate")
    meta = {"video_name": body.video_name}
    out = await _run(services, account, entry, body, [0], idempotency_key, meta)
    out.video_name = f"{body.video_name}_{out.job_id}.mp4"
    return out


@_post("background_remover", "Background Remover: the person cut out, transparent PNG")
async def background_remover(
    body: PhotoIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = _tool("remove_background", "background_remover")
    return await _run(services, account, entry, body, [0], idempotency_key)


@_post("comic", "Lazy Pose Comic: the photo as a comic panel")
async def comic(
    body: PhotoIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = _tool("stylize", "comic", filter="comic")
    return await _run(services, account, entry, body, [0], idempotency_key)


@_post("skin_refiner", "Skin Refiner: smoother skin, texture kept")
async def skin_refiner(
    body: PhotoIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = _tool("refine_skin", "skin_refiner")
    return await _run(services, account, entry, body, [0], idempotency_key)


@router.post("/v2/run/{filter_id}/", response_model=RunOut, summary="Lazy Pose Standard Filter")
async def run_filter(
    filter_id: Annotated[str, Path(max_length=64, description="integer or custom UUID")],
    body: GenerateIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = await run_in_threadpool(_filter, services, filter_id, 1)
    return await _run(services, account, entry, body, [body.gender], idempotency_key)


# -- receiving -------------------------------------------------------------------------------


@router.post(
    "/v2/status/{job_id}",
    response_model=StatusOut,
    response_model_exclude_none=True,
    summary="A job's status; when COMPLETED, its image as base64",
)
async def job_status(
    job_id: Annotated[str, Path(max_length=64)], account: EsAccount, services: ServicesDep
) -> StatusOut:
    job = await get_job(services, account, job_id)
    out = StatusOut(job_id=job.id, status=_STATUS[job.status])
    video_name = ((job.meta or {}).get("eventstation") or {}).get("video_name")
    if isinstance(video_name, str):
        out.video_name = f"{video_name}_{job.id}.mp4"
    if job.status == "succeeded":
        rows = await outputs(services, job)
        if rows:
            data = await run_in_threadpool(services.media.read_bytes, rows[0])
            text = base64.b64encode(data).decode("ascii")
            if rows[0].content_type.startswith("video/"):
                out.video = text
            else:
                out.image = text
    elif job.status in ("failed", "canceled"):
        out.error = job.error_message or job.error_code or job.status
    return out
