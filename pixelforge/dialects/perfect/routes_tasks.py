"""Perfect's per-feature endpoints: create files, style lists, run task, check status.

Every feature of `features.FEATURES` gets the same routes under `/perfect/s2s/v1.0`;
a feature this server cannot run answers each of them with `OperationNotSupport`. Successful
answers are `{"status": 200, "result": {...}}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from pixelforge.dialects.common import media_url, outputs, submit
from pixelforge.dialects.perfect import files
from pixelforge.dialects.perfect.errors import engine_code, invalid, invalid_task
from pixelforge.dialects.perfect.features import (
    API,
    FEATURES,
    Feature,
    envelope,
    pipeline_of,
)
from pixelforge.dialects.perfect.files import FilesIn
from pixelforge.dialects.perfect.schemas import PageSize, RunTaskIn, StartingToken, TaskId
from pixelforge.dialects.perfect.settings import options_of
from pixelforge.dialects.perfect.translate import build_params, idempotency_key, polling_interval_ms
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs.status import JobStatus
from pixelforge.services import Services
from pixelforge.store.tables import Account, Job, StyleGroup
from pixelforge.web.deps import ServicesDep, authenticate, get_services
from pixelforge.web.openapi import authenticates

MAX_PAGE = 20  # Perfect's page_size range is 1..20


@authenticates
def perfect_account(request: Request) -> Account:
    """Bearer access token from client/auth (or a PixelForge API key): the caller's account."""
    return authenticate(get_services(request), request).account


PerfectAccount = Annotated[Account, Depends(perfect_account)]


router = APIRouter()
router.include_router(files.router)


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
    if job.status == JobStatus.SUCCEEDED:
        rows = await outputs(services, job)
        data = [{"dst_id": r.id, "url": media_url(services, request, r)} for r in rows]
        result.update(status="success", results=[{"id": int(action_text or 0), "data": data}])
    elif job.status in (JobStatus.FAILED, JobStatus.CANCELED):
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
            return files.create_files(services, request, account, feature, body)

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
