"""AliveAI's LLM Resource under /aliveai/llm: prompt helpers, each one `chat` job waited for.

The templates are the core's (`chat/prompts.py`, also `POST /v1/prompts/{kind}`); here the
seed's fields go in, `{"promptText"}` (video: and `negPrompt`) comes out. LlmModel names pick
a chat model through the dialect's options (`llm_models`, `llm_model`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from pixelforge.chat import prompts
from pixelforge.dialects.aliveai import examples as ex
from pixelforge.dialects.aliveai import schemas as sc
from pixelforge.dialects.aliveai import store
from pixelforge.dialects.aliveai import translate as tr
from pixelforge.dialects.aliveai.settings import options_of
from pixelforge.dialects.common import client_left, describe_media, run_template
from pixelforge.errors import PixelForgeError, not_found
from pixelforge.services import Services
from pixelforge.store.tables import Account
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix="/aliveai/llm", tags=["aliveai"])

# The image model a Generate Prompt is written for -> the style its prompt asks for.
STYLES: dict[str, str | None] = {
    "DEFAULT": None,
    "REALISM": "photorealistic photograph, natural skin texture, fine detail",
    "ANIME": "anime and cartoon illustration, clean line art, vivid colours",
    "TEMPORARY": "dreamy realistic photograph, soft light",
    "CHARACTER_CREATOR": None,
    "ANIMA": "anime and manga artwork",
    "GROK": "realistic photograph",
}
_INSUFFICIENT = ex.error(
    402,
    "insufficient_credits",
    "this job costs 1 credits but only 0 are available; ask an administrator for more "
    "credits or cancel queued jobs",
)
_TIMEOUT = ex.error(
    504,
    "timeout",
    f"the model did not answer within 40 s; job {ex.PROMPT_ID} was canceled and nothing "
    "was charged",
)
_INVALID_MODEL = ex.error(
    400,
    "invalid_parameter",
    "model: Input should be 'QWEN3_235B', 'QWEN3_8B', 'GROK', 'MISTRAL' or 'RAW'",
)
_TEXT = ex.responses(ex.PROMPT_TEXT, _INVALID_MODEL, _INSUFFICIENT, _TIMEOUT)


async def _run(
    request: Request,
    account: Account,
    services: Services,
    template: prompts.Template,
    *,
    endpoint: str,
    llm: sc.LlmModel | None = None,
) -> prompts.Reading:
    opts = options_of(services)
    answer = await run_template(
        services,
        account,
        template,
        model=opts.llm_model_for(llm),
        wait_s=opts.max_blocking_s,
        max_tokens=opts.llm_max_tokens,
        meta={"aliveai": {"llmHelper": endpoint}},
        disconnected=client_left(request),
    )
    return answer.reading


def _attributes(values: dict[str, Any]) -> dict[str, str]:
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


@router.post(
    "/generate-character-builder-prompt",
    summary="Generate Character Builder Prompt",
    responses=_TEXT,
)
@answers(402, 503, 504)
async def character_builder(
    body: sc.LlmBuilderPromptRequest,
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
) -> dict[str, str]:
    template = prompts.character_builder(_attributes(body.attributes))
    reading = await _run(
        request, account, services, template, endpoint="CHARACTER_BUILDER", llm=body.model
    )
    return {"promptText": reading.text}


def _profile(services: Services, account_id: str, profile_id: str) -> str:
    """The character a profile (here: a Create Prompt's promptId) describes."""
    try:
        prompt = store.find(services, account_id, profile_id)
    except PixelForgeError:
        raise not_found(f"profile {profile_id!r}") from None
    described = tr.character_of(prompt.request) or str(prompt.job.params.get("prompt") or "")
    if not described.strip():
        raise tr.invalid(
            f"profileId: prompt {profile_id!r} describes no character; give the promptId of a "
            "Create Prompt"
        )
    return described


@router.post(
    "/generate-character-prompt",
    summary="Generate Character Prompt (profileId: a Create Prompt's promptId)",
    responses=ex.responses(
        ex.PROMPT_TEXT, ex.error(404, "not_found", "profile 'string' not found"), _TIMEOUT
    ),
)
@answers(402, 404, 503, 504)
async def character(
    body: sc.CharacterPromptRequest,
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
) -> dict[str, str]:
    described = await run_in_threadpool(_profile, services, account.id, body.profileId)
    template = prompts.character(
        described, theme=body.theme, outfit=body.outfit, details=body.additionalDetails
    )
    reading = await _run(request, account, services, template, endpoint="CHARACTER")
    return {"promptText": reading.text}


@router.post("/generate-prompt", summary="Generate Prompt", responses=_TEXT)
@answers(402, 503, 504)
async def generate_prompt(
    body: sc.GeneratePromptRequest,
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
) -> dict[str, str]:
    template = prompts.image_prompt(body.inputPrompt, style=STYLES.get(body.model))
    reading = await _run(request, account, services, template, endpoint="PROMPT")
    return {"promptText": reading.text}


@router.post("/generate-update-prompt", summary="Generate Update Prompt", responses=_TEXT)
@answers(402, 503, 504)
async def update_prompt(
    body: sc.UpdatePromptRequest,
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
) -> dict[str, str]:
    template = prompts.update(body.oldRequest, _attributes(body.newRequest.attributes))
    reading = await _run(request, account, services, template, endpoint="UPDATE", llm=body.model)
    return {"promptText": reading.text}


@router.post(
    "/generate-video-prompt",
    summary="Generate Video Prompt",
    responses=ex.responses(
        ex.VIDEO_PROMPT, ex.error(404, "not_found", "media 'string' not found"), _TIMEOUT
    ),
)
@answers(402, 404, 503, 504)
async def video_prompt(
    body: sc.VideoPromptRequest,
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
) -> dict[str, str | None]:
    image = await run_in_threadpool(describe_media, services, account.id, body.mediaId)
    template = prompts.video(
        body.userInput,
        image=image,
        frames=body.frameCount or None,
        speech=body.model in ("AUDIO", "GROK", "SEEDANCE"),
    )
    reading = await _run(request, account, services, template, endpoint="VIDEO")
    return {"promptText": reading.text, "negPrompt": reading.negative}
