"""Perfect's per-feature endpoints: create files, style lists, run task, check status.

Every feature of `perfect_features.FEATURES` gets the same routes under `/perfect/s2s/v1.0`;
a feature this server cannot run answers each of them with `OperationNotSupport`. Successful
answers are `{"status": 200, "result": {...}}`.
"""

from __future__ import annotations

import hashlib
import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.api.deps import ServicesDep, authenticate, get_services
from pixelforge.dialects.common import media_url, outputs, submit
from pixelforge.dialects.perfect import files as perfect_files
from pixelforge.dialects.perfect.auth import PerfectError
from pixelforge.dialects.perfect.features import (
    API,
    FEATURES,
    Feature,
    Params,
    envelope,
    invalid,
    pipeline_of,
)
from pixelforge.dialects.perfect.files import FilesIn
from pixelforge.dialects.perfect.settings import options_of
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.services import Services
from pixelforge.store.tables import Account, Job, Style, StyleGroup

MAX_PAGE = 20  # Perfect's page_size range is 1..20

# The engine error codes of the seed (a task's `error`): PixelForge raises most as they are.
ENGINE_CODES = frozenset(
    {
        "exceed_max_filesize",
        "invalid_parameter",
        "error_download_image",
        "error_download_mask",
        "error_decode_image",
        "error_decode_mask",
        "error_nsfw_content_detected",
        "error_no_face",
        "error_pose",
        "error_face_parsing",
        "error_inference",
        "exceed_nsfw_retry_limits",
        "error_upload",
        "error_multiple_people",
        "error_no_shoulder",
        "error_large_face_angle",
        "unknown_internal_error",
    }
)
_ENGINE_ALIASES = {
    "image_too_large": "invalid_parameter",
    "unsupported_media_type": "error_decode_image",
    "url_not_allowed": "error_download_image",
    "not_found": "error_download_image",
}


def engine_code(code: str | None) -> str:
    """A core error code as one of the seed's engine error codes."""
    if code in ENGINE_CODES:
        return code
    return _ENGINE_ALIASES.get(code or "", "unknown_internal_error")


def perfect_account(request: Request) -> Account:
    """Bearer access token from client/auth (or a PixelForge API key): the caller's account."""
    return authenticate(get_services(request), request).account


PerfectAccount = Annotated[Account, Depends(perfect_account)]


router = APIRouter()
router.include_router(perfect_files.router)


# -- run task ----------------------------------------------------------------------------


class FileSets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    src_ids: list[str] | None = Field(None, max_length=1, description="the photo (1 file)")
    ref_ids: list[str] | None = Field(None, max_length=1, description="a reference (1 file)")
    mask_ids: list[str] | None = Field(None, max_length=1, description="a mask (1 file)")


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=0, description="action id, echoed in the status results")
    params: dict[str, Any] = Field(default_factory=dict)


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_sets: FileSets | None = None
    actions: list[Action] = Field(min_length=1, max_length=1)
    output_ext: str | None = Field(None, max_length=8, examples=["jpg"])


class RunTaskIn(BaseModel):
    request_id: int | None = Field(
        None, ge=0, description="same file(s) + same request_id = the same task, charged once"
    )
    payload: Payload


def resolve_style(services: Services, task: str, group_id: Any, style_ids: Any) -> Style:
    if not isinstance(group_id, int) or isinstance(group_id, bool) or not 0 < group_id < 2**63:
        raise invalid("actions[0].params.style_group_id: a style group id is required")
    ok = isinstance(style_ids, list) and len(style_ids) == 1
    first = style_ids[0] if ok else None
    if not isinstance(first, int | float) or isinstance(first, bool) or first != int(first):
        raise invalid("actions[0].params.style_ids: exactly one style id is required")
    style_id = int(first)
    with services.db.read() as s:
        group = s.get(StyleGroup, group_id)
        style = s.get(Style, style_id) if 0 < style_id < 2**63 else None
    if group is None or group.task != task:
        raise invalid(f"style_group_id: {group_id} is not a style group of this task")
    if style is None or style.task != task or style.group_id != group_id:
        raise invalid(f"style_ids: {style_id} is not a style of style group {group_id}")
    return style


def build_params(services: Services, feature: Feature, body: RunTaskIn) -> tuple[str, Params]:
    """(pipeline, params) for a run-task payload."""
    pipeline = pipeline_of(services, feature)
    payload = body.payload
    extra = dict(payload.actions[0].params)
    params: Params = {}
    sets = payload.file_sets or FileSets()
    used = {key for key, _ in (*feature.inputs, *feature.optional_inputs)}
    for key in ("src_ids", "ref_ids", "mask_ids"):
        if getattr(sets, key) and key not in used:
            raise invalid(f"payload.file_sets.{key}: {feature.title} takes no such files")
    for key, name in feature.inputs:
        ids = getattr(sets, key)
        if not ids:
            raise invalid(f"payload.file_sets.{key}: one file_id is required")
        params[name] = ids[0]
    for key, name in feature.optional_inputs:
        if ids := getattr(sets, key):
            params[name] = ids[0]
    if feature.prompt:
        prompt = extra.pop("prompt", None)
        if not isinstance(prompt, str) or not prompt.strip():
            raise invalid("actions[0].params.prompt: a prompt is required")
        params["prompt"] = prompt
    if feature.styled:
        style = resolve_style(
            services, pipeline, extra.pop("style_group_id", None), extra.pop("style_ids", None)
        )
        fields = services.registry.get(pipeline).Params.model_fields
        if "style_id" in fields and "style" not in fields:
            params["style_id"] = style.id
        else:
            params["style"] = style.name
    if feature.build is not None:
        pipeline, extra = feature.build(extra)
    ext = payload.output_ext or feature.output_exts[0]
    if ext not in feature.output_exts:
        raise invalid(f"payload.output_ext: one of {', '.join(feature.output_exts)}")
    if "output_format" in services.registry.get(pipeline).Params.model_fields:
        params["output_format"] = ext
    # Other action params go to the pipeline as they are (its validation has the last word).
    return pipeline, {**extra, **params}


def idempotency_key(feature: Feature, body: RunTaskIn) -> str | None:
    """Perfect's rule: the same file(s) with the same request_id is the same task."""
    if body.request_id is None:
        return None
    sets = body.payload.file_sets or FileSets()
    files = [i for key in ("src_ids", "ref_ids", "mask_ids") for i in getattr(sets, key) or []]
    digest = hashlib.sha256("|".join(files).encode()).hexdigest()[:32]
    return f"perfect:{feature.slug}:{body.request_id}:{digest}"


async def run_task(
    services: Services, account: Account, feature: Feature, body: RunTaskIn
) -> dict[str, Any]:
    pipeline, params = await run_in_threadpool(build_params, services, feature, body)
    try:
        submitted = await submit(
            services,
            account,
            pipeline,
            params,
            idempotency_key=idempotency_key(feature, body),
            poll_timeout_s=options_of(services).poll_timeout_s,
        )
    except PixelForgeError as e:
        if e.code == ErrorCode.idempotency_mismatch:
            raise invalid(
                f"request_id {body.request_id} was already used with these files for a "
                "different request; increment request_id to run the task again"
            ) from None
        if e.code == ErrorCode.not_found:
            raise invalid(
                f"{e.message}: give file_ids from file/{feature.slug} whose upload finished"
            ) from None
        raise
    action = body.payload.actions[0].id
    task_id = submitted.job.id if action == 0 else f"{submitted.job.id}~{action}"
    return envelope({"task_id": task_id})


# -- check status ------------------------------------------------------------------------


def polling_interval_ms(services: Services) -> int:
    """A fifth of the poll timeout, between 0.2 and 2 s: five chances before abandonment."""
    timeout_ms = options_of(services).poll_timeout_s * 1000
    return int(min(2000, max(200, math.floor(timeout_ms / 5))))


def invalid_task(task_id: str, why: str) -> PerfectError:
    return PerfectError(
        ErrorCode.not_found,
        f"task {task_id!r} {why}",
        perfect_code="InvalidTaskId",
        status=400,
    )


async def check_task(
    services: Services, request: Request, account: Account, feature: Feature, task_id: str
) -> dict[str, Any]:
    pipeline_of(services, feature)
    job_id, _, action_text = task_id.partition("~")
    if not job_id.startswith("job_") or (action_text and not action_text.isdigit()):
        raise invalid_task(task_id, "is not a task id from this server")
    try:
        job: Job = await run_in_threadpool(
            lambda: services.jobs.touch_poll(account_id=account.id, job_id=job_id)
        )
    except PixelForgeError as e:
        if e.code == ErrorCode.not_found:
            raise invalid_task(task_id, "does not exist") from None
        raise
    if job.pipeline not in feature.all_pipelines():
        raise invalid_task(task_id, f"is not a {feature.title} task")
    if job.error_code == ErrorCode.task_abandoned.value:
        raise invalid_task(task_id, f"is lost: {job.error_message}")
    result: dict[str, Any] = {"polling_interval": polling_interval_ms(services)}
    if job.status == "succeeded":
        rows = await outputs(services, job)
        data = [{"dst_id": r.id, "url": media_url(services, request, r)} for r in rows]
        result.update(status="success", results=[{"id": int(action_text or 0), "data": data}])
    elif job.status in ("failed", "canceled"):
        result.update(status="error", error=engine_code(job.error_code))
        result["error_message"] = job.error_message
    else:
        result["status"] = "running"
    return envelope(result)


# -- style groups and styles ---------------------------------------------------------------


def _page_args(page_size: int, starting_token: str | None) -> tuple[int, str | None]:
    if not 1 <= page_size <= MAX_PAGE:
        raise invalid(f"page_size: must be between 1 and {MAX_PAGE}")
    return page_size, starting_token or None


def list_groups(
    services: Services, feature: Feature, page_size: int, token: str | None
) -> dict[str, Any]:
    size, token = _page_args(page_size, token)
    page = services.catalog.groups(task=pipeline_of(services, feature), page_size=size, token=token)
    groups = [{"id": g.id, "title": g.title, "info": {"title": g.title}} for g in page.items]
    return envelope({"next_token": page.next_token, "groups": groups})


def list_styles(
    services: Services, feature: Feature, group_id: int | None, page_size: int, token: str | None
) -> dict[str, Any]:
    size, token = _page_args(page_size, token)
    task = pipeline_of(services, feature)
    if group_id is not None:
        with services.db.read() as s:
            group = s.get(StyleGroup, group_id) if 0 < group_id < 2**63 else None
        if group is None or group.task != task:
            raise invalid(f"style_group_id: {group_id} is not a style group of this task")
    page = services.catalog.styles(task=task, group_id=group_id, page_size=size, token=token)
    styles = [
        {"id": st.id, "title": st.title, "info": {"title": st.title}, "thumb": st.thumb}
        for st in page.items
    ]
    return envelope({"next_token": page.next_token, "styles": styles})


# -- the routes of one feature ---------------------------------------------------------------

PageSize = Annotated[int, Query(description="1..20, default 20", examples=[20])]
StartingToken = Annotated[
    str | None,
    Query(max_length=40, description="next_token of the previous page", examples=["20"]),
]
TaskId = Annotated[
    str,
    Query(
        max_length=80, description="task_id from run task", examples=["job_1iPxP7GibK8N0-V7vwizCA"]
    ),
]


def add_feature(feature: Feature) -> None:
    for slug in feature.slugs():
        _add_routes(feature, slug, documented=slug == feature.slug)


def _add_routes(feature: Feature, slug: str, *, documented: bool) -> None:
    kw: dict[str, Any] = {"tags": ["perfect"], "include_in_schema": documented}
    title = feature.title

    if feature.uploads:

        @router.post(f"{API}/file/{slug}", summary=f"{title}: create files", **kw)
        def create_files(
            body: FilesIn, request: Request, account: PerfectAccount, services: ServicesDep
        ) -> dict[str, Any]:
            return perfect_files.create_files(services, request, account, feature, body)

    if feature.styled:

        @router.get(f"{API}/task/style-group/{slug}", summary=f"{title}: style groups", **kw)
        def style_groups(
            _: PerfectAccount,
            services: ServicesDep,
            page_size: PageSize = MAX_PAGE,
            starting_token: StartingToken = None,
        ) -> dict[str, Any]:
            return list_groups(services, feature, page_size, starting_token)

        @router.get(f"{API}/task/style/{slug}", summary=f"{title}: styles", **kw)
        def styles(
            _: PerfectAccount,
            services: ServicesDep,
            style_group_id: Annotated[int | None, Query(examples=[1])] = None,
            page_size: PageSize = MAX_PAGE,
            starting_token: StartingToken = None,
        ) -> dict[str, Any]:
            return list_styles(services, feature, style_group_id, page_size, starting_token)

    @router.post(f"{API}/task/{slug}", summary=f"{title}: run a task", **kw)
    async def run(body: RunTaskIn, account: PerfectAccount, services: ServicesDep) -> Any:
        return await run_task(services, account, feature, body)

    @router.get(f"{API}/task/{slug}", summary=f"{title}: check a task's status", **kw)
    async def check(
        request: Request,
        account: PerfectAccount,
        services: ServicesDep,
        task_id: TaskId,
    ) -> Any:
        return await check_task(services, request, account, feature, task_id)


for _feature in FEATURES:
    add_feature(_feature)
