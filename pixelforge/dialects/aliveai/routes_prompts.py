"""AliveAI prompts: create (one route per seed endpoint), read, list, delete, queue."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pixelforge.dialects.aliveai import examples as ex
from pixelforge.dialects.aliveai import schemas as sc
from pixelforge.dialects.aliveai import store
from pixelforge.dialects.aliveai import translate as tr
from pixelforge.dialects.aliveai.errors import error_body, not_available
from pixelforge.dialects.aliveai.settings import options_of
from pixelforge.dialects.common import job_error, submit, wait
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.status import JobStatus
from pixelforge.services import Services
from pixelforge.store.tables import Account
from pixelforge.web.deps import CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix="/aliveai", tags=["aliveai"])

Blocking = Annotated[
    bool | None,
    Header(
        alias="x-aliveai-request-blocking",
        description="true: answer when the generation is done (at most 40 s)",
    ),
]
IdempotencyKey = Annotated[str | None, Header(alias="idempotency-key", max_length=200)]
_CREATED = ex.responses(
    ex.CREATE,
    ex.INVALID,
    ex.error(
        402,
        "insufficient_credits",
        "this job costs 1 credits but only 0 are available; ask an administrator for more "
        "credits or cancel queued jobs",
    ),
)


@dataclass(frozen=True)
class CreateCall:
    """What every create endpoint shares: the caller, the services and the two headers."""

    request: Request
    account: Account
    services: Services
    blocking: bool | None
    idempotency_key: str | None

    async def create(self, body: BaseModel, plan: tr.Plan) -> Response:
        """Submit the core job with the request as its metadata (one transaction); answer
        at once, or after it ends when blocking."""
        services, account = self.services, self.account
        submitted = await submit(
            services,
            account,
            plan.pipeline,
            plan.params,
            idempotency_key=self.idempotency_key,
            block_explicit=plan.block_explicit,
            meta=store.meta(plan.prompt_type, body.model_dump(mode="json", exclude_none=True)),
        )
        job = submitted.job
        if self.blocking:
            job = await wait(services, job, options_of(services).max_blocking_s)
            if job.status in (JobStatus.FAILED, JobStatus.CANCELED):
                err = job_error(job, fallback="the generation failed")
                return JSONResponse(error_body(err, promptId=job.id), status_code=err.status)
        prompt = await run_in_threadpool(store.find, services, account.id, job.id)
        container = await run_in_threadpool(store.container, services, self.request, prompt)
        return JSONResponse(
            {"promptId": job.id, "seed": str(job.seed), "promptContainer": container}
        )


@answers(404, 501, 503)  # 503: a blocking prompt whose model is not installed
def create_call(
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
    blocking: Blocking = None,
    idempotency_key: IdempotencyKey = None,
) -> CreateCall:
    return CreateCall(request, account, services, blocking, idempotency_key)


Call = Annotated[CreateCall, Depends(create_call)]


@router.post("/prompts", summary="Create Prompt (text to image)", responses=_CREATED)
async def create_prompt(body: sc.CreatePromptRequest, call: Call) -> Response:
    return await call.create(body, await run_in_threadpool(tr.create_prompt, call.services, body))


@router.post("/prompts/edit-image", summary="Edit Image", responses=_CREATED)
async def edit_image(body: sc.EditImageRequest, call: Call) -> Response:
    return await call.create(body, await run_in_threadpool(tr.edit_image, call.services, body))


@router.post("/prompts/image-to-video", summary="Create Image To Video", responses=_CREATED)
async def image_to_video(body: sc.ImageToVideoRequest, call: Call) -> Response:
    return await call.create(body, await run_in_threadpool(tr.image_to_video, call.services, body))


@router.post("/prompts/inpaint", summary="Inpaint", responses=_CREATED)
async def inpaint(body: sc.InpaintRequest, call: Call) -> Response:
    return await call.create(body, tr.inpaint(body))


@router.post("/prompts/upscale-image", summary="Upscale Image", responses=_CREATED)
async def upscale_image(body: sc.UpscaleImageRequest, call: Call) -> Response:
    return await call.create(body, tr.upscale_image(body))


@router.post("/prompts/face-improve", summary="Create Face Improve Prompt", responses=_CREATED)
async def face_improve(body: sc.FaceImproveRequest, call: Call) -> Response:
    return await call.create(body, tr.face_improve(body))


@router.post("/prompts/after-face-swap", summary="Create After Face Swap", responses=_CREATED)
async def after_face_swap(body: sc.AfterFaceSwapRequest, call: Call) -> Response:
    return await call.create(body, tr.after_face_swap(body))


@router.post("/prompts/clothes", summary="Create Clothes", responses=_CREATED)
async def create_clothes(body: sc.CreateClothesRequest, call: Call) -> Response:
    return await call.create(body, tr.create_clothes(call.services, body))


@router.post(
    "/prompts/upscale-video",
    summary="Upscale Video (not available)",
    responses=ex.responses(
        None,
        ex.error(
            501,
            "not_available",
            "Upscale Video (DEFAULT): this server has no video upscaler; upscale images with "
            "Upscale Image",
        ),
    ),
)
def upscale_video(body: sc.UpscaleVideoRequest, _: CurrentAccount) -> Response:
    raise not_available(
        f"Upscale Video ({body.videoUpscaleModel}): this server has no video upscaler; "
        "upscale images with Upscale Image"
    )


# -- the queue -------------------------------------------------------------------------------
@router.get("/prompts/queue", summary="Get Pending", responses=ex.responses(ex.QUEUE))
def get_pending(account: CurrentAccount, services: ServicesDep) -> dict[str, Any]:
    return {"queue": store.queue(services, account.id)}


@router.delete(
    "/prompts/queue",
    status_code=204,
    summary="Delete From Queue",
    responses=ex.responses(
        None,
        ex.NOT_FOUND,
        ex.error(
            400,
            "invalid_parameter",
            f"promptId: prompt {ex.PROMPT_ID!r} is no longer in the queue (succeeded)",
        ),
    ),
)
def delete_from_queue(
    promptId: Annotated[str, Query(max_length=64)],
    account: CurrentAccount,
    services: ServicesDep,
) -> Response:
    prompt = store.find(services, account.id, promptId)
    if prompt.job.status not in store.PENDING:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"promptId: prompt {promptId!r} is no longer in the queue ({prompt.job.status})",
        )
    services.jobs.cancel(account_id=account.id, job_id=promptId)
    return Response(status_code=204)


# -- the prompts manager ---------------------------------------------------------------------
@router.get(
    "/prompts",
    summary="Get Prompts (completed prompts, newest first)",
    responses=ex.responses(ex.PROMPTS),
)
def get_prompts(
    request: Request,
    account: CurrentAccount,
    services: ServicesDep,
    page: Annotated[int, Query(ge=0, le=2**31 - 1)],
    pageSize: Annotated[int, Query(ge=1, le=20)] = 20,
    promptType: Annotated[list[str] | None, Query()] = None,
    query: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    unknown = sorted(set(promptType or []) - set(sc.PROMPT_TYPES))
    if unknown:
        raise PixelForgeError(
            ErrorCode.invalid_parameter, f"promptType: {', '.join(unknown)} is not a PromptType"
        )
    done = (JobStatus.SUCCEEDED,)
    if query:
        prompts, _ = store.listing(services, account.id, statuses=done, types=promptType)
        needle = query.lower()
        prompts = [p for p in prompts if needle in str(p.request).lower()]
        total = len(prompts)
        prompts = prompts[page * pageSize : (page + 1) * pageSize]
    else:
        prompts, total = store.listing(
            services,
            account.id,
            statuses=done,
            types=promptType,
            offset=page * pageSize,
            limit=pageSize,
        )
    return {
        "prompts": [store.container(services, request, p) for p in prompts],
        "hasNextPage": (page + 1) * pageSize < total,
        "totalPageCount": math.ceil(total / pageSize),
    }


@router.get(
    "/prompts/{promptId}", summary="Get Prompt", responses=ex.responses(ex.CONTAINER, ex.NOT_FOUND)
)
def get_prompt(
    promptId: str, request: Request, account: CurrentAccount, services: ServicesDep
) -> dict[str, Any]:
    return store.container(services, request, store.find(services, account.id, promptId))


@router.delete(
    "/prompts/{promptId}",
    status_code=204,
    summary="Delete Prompt",
    responses=ex.responses(
        None,
        ex.NOT_FOUND,
        ex.error(
            400,
            "invalid_parameter",
            f"promptId: prompt {ex.PROMPT_ID!r} is still in the queue; use Delete From Queue",
        ),
    ),
)
def delete_prompt(promptId: str, account: CurrentAccount, services: ServicesDep) -> Response:
    prompt = store.find(services, account.id, promptId)
    if prompt.job.status in store.PENDING:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"promptId: prompt {promptId!r} is still in the queue; use Delete From Queue",
        )
    store.delete(services, prompt)
    return Response(status_code=204)
