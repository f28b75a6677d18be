"""Prompt helpers: a chat model writes an image or video prompt, as one `chat` job waited for.

`POST /v1/prompts/{kind}` for kind character-builder, character, prompt, update and video;
the templates are `chat/prompts.py`, the job `chat/prompt_jobs.py`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pixelforge.chat import prompts
from pixelforge.chat.prompt_jobs import Answer, client_left, describe_media, run_template
from pixelforge.services import Services
from pixelforge.store.tables import Account
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix="/v1/prompts", tags=["prompts"])

Text = Annotated[str, StringConstraints(min_length=1, max_length=1000, pattern=r"\S")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=250, pattern=r"\S")]
Value = Annotated[str, StringConstraints(max_length=1000)]
Attributes = Annotated[dict[Name, Value], Field(max_length=50)]


class HelperIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        None,
        max_length=200,
        description="A chat model id (GET /v1/models); the default chat model if absent.",
        examples=["smollm2-135m-instruct"],
    )
    max_tokens: int | None = Field(
        None, ge=16, le=1000, description="At most this many answer tokens (default 160-200)."
    )


class CharacterBuilderIn(HelperIn):
    attributes: Attributes = Field(
        description="The character's attributes, name -> value (none: the model invents one).",
        examples=[{"hairColor": "blonde", "bodyShape": "athletic", "age": "30"}],
    )
    style: str | None = Field(None, max_length=200, examples=["anime illustration"])


class CharacterIn(HelperIn):
    character: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"\S")] = (
        Field(description="Who: name and look.", examples=["Mara, a woman, short black hair"])
    )
    theme: Text = Field(examples=["winter market"])
    outfit: Text = Field(examples=["red wool coat"])
    details: str | None = Field(None, max_length=1000)


class PromptIn(HelperIn):
    input: Annotated[str, StringConstraints(min_length=5, max_length=1000, pattern=r"\S")] = Field(
        description="The idea to extend.", examples=["a knight in the rain"]
    )
    style: str | None = Field(None, max_length=200, examples=["photorealistic photograph"])


class UpdateIn(HelperIn):
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"\S")] = Field(
        description="The prompt to update.", examples=["a woman with blonde hair"]
    )
    changes: Attributes = Field(
        description="Attributes to change or add, name -> value.",
        examples=[{"hairColor": "black"}],
    )


class VideoIn(HelperIn):
    input: Annotated[str, StringConstraints(min_length=5, max_length=500, pattern=r"\S")] = Field(
        description="What should happen.", examples=["she turns and smiles"]
    )
    image: str | None = Field(
        None, max_length=64, description="Media id of the still to animate (yours)."
    )
    frames: int | None = Field(None, ge=0, le=10_000, description="Clip length, at 24 fps.")
    speech: bool = Field(False, description="The video has sound: allow a line of speech.")


class PromptOut(BaseModel):
    kind: str = Field(examples=["prompt"])
    text: str = Field(
        description="The prompt the model wrote (or one built from the input "
        "when its answer held none)."
    )
    negative_prompt: str | None = Field(None, description="video only: what to avoid")
    job_id: str = Field(examples=["job_a8Zr0cK1d2Q9xw3mP0vUoQ"])
    model: str = Field(examples=["smollm2-135m-instruct"])
    usage: dict[str, int] = Field(
        examples=[{"prompt_tokens": 212, "completion_tokens": 64, "total_tokens": 276}]
    )


async def _run(
    request: Request,
    account: Account,
    services: Services,
    template: prompts.Template,
    body: HelperIn,
) -> PromptOut:
    answer: Answer = await run_template(
        services,
        account,
        template,
        model=body.model,
        wait_s=services.settings.max_wait_s,
        max_tokens=body.max_tokens,
        disconnected=client_left(request),
    )
    out: dict[str, Any] = {}
    if template.kind == "video":
        out["negative_prompt"] = answer.reading.negative
    return PromptOut(
        kind=template.kind,
        text=answer.reading.text,
        job_id=answer.job_id,
        model=answer.model,
        usage=answer.usage,
        **out,
    )


_DOC = "Runs one `chat` job (1 credit per started 1,000 answer tokens) and waits for it; "
_DOC += "a wait past max_wait_s cancels it (504, nothing charged)."


@router.post("/character-builder", summary="A character prompt from attributes", description=_DOC)
@answers(402, 503, 504)
async def character_builder(
    body: CharacterBuilderIn, request: Request, account: CurrentAccount, services: ServicesDep
) -> PromptOut:
    template = prompts.character_builder(body.attributes, style=body.style)
    return await _run(request, account, services, template, body)


@router.post("/character", summary="A known character in a theme and outfit", description=_DOC)
@answers(402, 503, 504)
async def character(
    body: CharacterIn, request: Request, account: CurrentAccount, services: ServicesDep
) -> PromptOut:
    template = prompts.character(
        body.character, theme=body.theme, outfit=body.outfit, details=body.details
    )
    return await _run(request, account, services, template, body)


@router.post("/prompt", summary="An extended image prompt from an idea", description=_DOC)
@answers(402, 503, 504)
async def image_prompt(
    body: PromptIn, request: Request, account: CurrentAccount, services: ServicesDep
) -> PromptOut:
    template = prompts.image_prompt(body.input, style=body.style)
    return await _run(request, account, services, template, body)


@router.post("/update", summary="A prompt updated with changed attributes", description=_DOC)
@answers(402, 503, 504)
async def update(
    body: UpdateIn, request: Request, account: CurrentAccount, services: ServicesDep
) -> PromptOut:
    template = prompts.update(body.prompt, body.changes)
    return await _run(request, account, services, template, body)


@router.post("/video", summary="A video prompt and a negative prompt for a still", description=_DOC)
@answers(402, 404, 503, 504)
async def video(
    body: VideoIn, request: Request, account: CurrentAccount, services: ServicesDep
) -> PromptOut:
    image = None
    if body.image:
        image = await run_in_threadpool(describe_media, services, account.id, body.image)
    template = prompts.video(body.input, image=image, frames=body.frames, speech=body.speech)
    return await _run(request, account, services, template, body)
