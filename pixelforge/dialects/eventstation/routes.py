"""Eventstation's routes: log in, the catalog (filters, workflows, styles), runs, status.

Every request becomes one core job; `POST /v2/status/{job_id}` reads it back with the image
as base64. See docs/dialects/eventstation.md for the endpoint map and the readings chosen.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm

from pixelforge.accounts.service import parse_api_key
from pixelforge.dialects.common import get_job, outputs
from pixelforge.dialects.eventstation.filters import filters_of, public_id
from pixelforge.dialects.eventstation.schemas import (
    AnimateIn,
    EventstationGenerateIn,
    FilterItem,
    IdemKey,
    NamedItem,
    PhotoIn,
    RunOut,
    SelfPromptIn,
    StatusOut,
    TwoPersonsIn,
    TwoPersonsSelfPromptIn,
)
from pixelforge.dialects.eventstation.translate import (
    STATUS,
    STYLES,
    WORKFLOWS,
    find_filter,
    prompted,
    run,
    tool,
    workflow,
)
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.status import JobStatus
from pixelforge.store.tables import Account
from pixelforge.web.deps import ServicesDep, authenticate, get_services
from pixelforge.web.openapi import answers, authenticates

PREFIX = "/eventstation"
router = APIRouter(prefix=PREFIX, tags=["eventstation"])
Endpoint = TypeVar("Endpoint", bound=Callable[..., Coroutine[Any, Any, Any]])

# Swagger's Authorize button logs in here (username: account email, password: API key).
_scheme = OAuth2PasswordBearer(tokenUrl=f"{PREFIX}/token", auto_error=False)


@authenticates
def _account(request: Request, _: Annotated[str | None, Depends(_scheme)]) -> Account:
    return authenticate(get_services(request), request).account


EsAccount = Annotated[Account, Depends(_account)]


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
@answers(401)
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
        fn = answers(402, 404, 503)(fn)  # credits, an unknown media id, no model
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
    entry = await run_in_threadpool(find_filter, services, body.filter_id, 2)
    genders = [body.gender, body.gender if body.gender_2 is None else body.gender_2]
    return await run(services, account, entry, body, genders, idempotency_key)


@_post("self_prompting", "Lazy Pose Self Prompting: your prompt, a workflow, a style")
async def self_prompting(
    body: SelfPromptIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = prompted(workflow(body.workflow_id), body.positive_prompt, 1)
    return await run(services, account, entry, body, [body.gender], idempotency_key)


@_post("two_persons_self_prompting", "Lazy Pose Two Persons Self Prompting")
async def two_persons_self_prompting(
    body: TwoPersonsSelfPromptIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = prompted(workflow(body.workflow_id), body.positive_prompt, 2)
    genders = [body.gender, body.gender if body.gender_2 is None else body.gender_2]
    return await run(services, account, entry, body, genders, idempotency_key)


@_post("pose_transfer", "Pose Transfer: a new image in the pose of the person in the photo")
async def pose_transfer(
    body: EventstationGenerateIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = prompted(WORKFLOWS[2], body.positive_prompt, 1)
    return await run(services, account, entry, body, [body.gender], idempotency_key)


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
    entry = tool("image_to_video", "animate")
    meta = {"video_name": body.video_name}
    out = await run(services, account, entry, body, [0], idempotency_key, meta)
    out.video_name = f"{body.video_name}_{out.job_id}.mp4"
    return out


@_post("background_remover", "Background Remover: the person cut out, transparent PNG")
async def background_remover(
    body: PhotoIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = tool("remove_background", "background_remover")
    return await run(services, account, entry, body, [0], idempotency_key)


@_post("comic", "Lazy Pose Comic: the photo as a comic panel")
async def comic(
    body: PhotoIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = tool("stylize", "comic", filter="comic")
    return await run(services, account, entry, body, [0], idempotency_key)


@_post("skin_refiner", "Skin Refiner: smoother skin, texture kept")
async def skin_refiner(
    body: PhotoIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = tool("refine_skin", "skin_refiner")
    return await run(services, account, entry, body, [0], idempotency_key)


@router.post("/v2/run/{filter_id}/", response_model=RunOut, summary="Lazy Pose Standard Filter")
@answers(402, 503)
async def run_filter(
    filter_id: Annotated[str, Path(max_length=64, description="integer or custom UUID")],
    body: EventstationGenerateIn,
    account: EsAccount,
    services: ServicesDep,
    idempotency_key: IdemKey = None,
) -> RunOut:
    entry = await run_in_threadpool(find_filter, services, filter_id, 1)
    return await run(services, account, entry, body, [body.gender], idempotency_key)


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
    out = StatusOut(job_id=job.id, status=STATUS[JobStatus(job.status)])
    video_name = ((job.meta or {}).get("eventstation") or {}).get("video_name")
    if isinstance(video_name, str):
        out.video_name = f"{video_name}_{job.id}.mp4"
    if job.status == JobStatus.SUCCEEDED:
        rows = await outputs(services, job)
        if rows:
            data = await run_in_threadpool(services.media.read_bytes, rows[0])
            text = base64.b64encode(data).decode("ascii")
            if rows[0].content_type.startswith("video/"):
                out.video = text
            else:
                out.image = text
    elif job.status in (JobStatus.FAILED, JobStatus.CANCELED):
        out.error = job.error_message or job.error_code or job.status
    return out
