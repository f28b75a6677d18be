"""Eventstation's readings: filters, workflows, tiers, styles -> core job params; status."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from pixelforge.dialects.common import ingest_image, submit
from pixelforge.dialects.eventstation.filters import DEFAULT_GENDER_WORDS, Filter, filters_of
from pixelforge.dialects.eventstation.schemas import EventstationGenerateIn, PhotoIn, RunOut
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.status import JobStatus
from pixelforge.models.base import ModelProfile
from pixelforge.services import Services
from pixelforge.store.tables import Account

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
STATUS = {
    JobStatus.QUEUED: "IN_QUEUE",
    JobStatus.RUNNING: "IN_PROGRESS",
    JobStatus.SUCCEEDED: "COMPLETED",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELED: "CANCELLED",
}


def _profile(services: Services, task: str, model: Any) -> ModelProfile | None:
    catalog = services.models.catalog
    try:
        return catalog.get(model if isinstance(model, str) else catalog.default_for(task))
    except PixelForgeError:
        return None


def _sized(
    services: Services, task: str, body: EventstationGenerateIn, params: dict[str, Any]
) -> None:
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
    assert isinstance(body, EventstationGenerateIn)
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


async def run(
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
    return RunOut(job_id=submitted.job.id, status=STATUS[JobStatus(submitted.job.status)])


def tool(pipeline: str, name: str, **params: Any) -> Filter:
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


def workflow(workflow_id: int | None) -> Workflow:
    wf = WORKFLOWS.get(0 if workflow_id is None else workflow_id)
    if wf is None:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"workflow_id: {workflow_id} is not a workflow; see GET /v1/workflows/",
        )
    return wf


def prompted(wf: Workflow, prompt: str | None, persons: int) -> Filter:
    """A filter made up from the user's own prompt, for one person or two."""
    who = "{gender}" if persons == 1 else "{gender} and a {gender_2}"
    # A prompt that names "{gender}" itself is used as written.
    template = "{prompt}" if prompt and "{gender}" in prompt else f"photo of a {who}, {{prompt}}"
    return replace(tool(wf.pipeline, wf.name, **wf.params), prompt=template)


def find_filter(services: Services, filter_id: int | str, persons: int) -> Filter:
    entry = filters_of(services).require(filter_id)
    if entry.persons != persons:
        where = "POST /v1/run/two_persons/" if entry.persons == 2 else "POST /v2/run/{filter_id}/"
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"filter {filter_id} is a {entry.persons}-person filter; use {where}",
        )
    return entry
