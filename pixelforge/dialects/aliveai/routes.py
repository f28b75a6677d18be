"""AliveAI's routes under /aliveai: members, upload, catalog listings; with prompts and websockets.

Prompts, their websockets and the LLM helpers live in `routes_prompts`, `ws` and
`routes_llm`, chat in `routes_characters` (characters, personas) and `routes_chat`
(chats); the mapping of each endpoint onto the core is in docs/dialects/aliveai.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from pixelforge.catalog.types import LoraTemplate
from pixelforge.dialects.aliveai import examples as ex
from pixelforge.dialects.aliveai import (
    routes_characters,
    routes_chat,
    routes_llm,
    routes_prompts,
    routes_vision,
    store,
    ws,
)
from pixelforge.dialects.aliveai import schemas as sc
from pixelforge.dialects.aliveai.errors import format_error
from pixelforge.dialects.common import ingest_image
from pixelforge.errors import ErrorCode, PixelForgeError, not_found, too_large
from pixelforge.jobs.status import JobStatus
from pixelforge.services import Services
from pixelforge.store.tables import LoraTemplateRow
from pixelforge.web.deps import CurrentAccount, ServicesDep, credential
from pixelforge.web.openapi import answers

PREFIX = "/aliveai"
router = APIRouter()
_api = APIRouter(prefix=PREFIX, tags=["aliveai"])

__all__ = ["PREFIX", "format_error", "router"]

# AliveAI template type -> core LoRA type (None: no such templates here).
_LORA_TYPES = {
    "IMAGE": "IMAGE",
    "IMAGE_EDIT_CREATIVE": "IMAGE_EDIT",
    "IMAGE_EDIT_REALISM": "IMAGE_EDIT",
    "VIDEO": "VIDEO",
    "VIDEO_AUDIO": None,
    "ANIMA": None,
}
_POSE_GROUPS = (
    "posesStanding",
    "posesLying",
    "posesAllFours",
    "posesKneeling",
    "posesSitting",
    "posesSquatting",
    "posesSuspended",
    "posesPorn",
)


# -- members ---------------------------------------------------------------------------------
@_api.post(
    "/members/login",
    summary="Login",
    responses=ex.responses(
        {"accessToken": "at_Vb3k0Qm2pL8xT1zR9wYc4A.kX2vQ8mZr1T0bYc4"},
        ex.error(401, "unauthorized", "wrong email or password"),
    ),
)
@answers(401)
def login(body: sc.LoginRequest, services: ServicesDep) -> dict[str, str]:
    return {"accessToken": services.accounts.login(email=body.email, password=body.password)}


@_api.get("/members/me", summary="Me", responses=ex.responses(ex.ME))
def me(request: Request, account: CurrentAccount, services: ServicesDep) -> dict[str, Any]:
    cred = credential(request)
    return {
        "id": account.id,
        "credits": services.accounts.balance(account.id).available,
        "email": account.email,
        # Keys are stored hashed: only the one this request was made with can be shown.
        "apiKey": cred[1] if cred is not None and cred[0] == "key" else None,
        "emailConfirmed": True,
        "hasPurchase": False,
        "approved": not account.disabled,
        "premiumExpiration": None,
        "created": store.iso(account.created_at),
    }


# -- upload ----------------------------------------------------------------------------------
@_api.post(
    "/upload",
    summary="Upload File",
    responses=ex.responses(
        ex.UPLOAD,
        ex.error(400, "invalid_parameter", "image: a multipart file field 'image' is required"),
    ),
)
async def upload(request: Request, account: CurrentAccount, services: ServicesDep) -> Any:
    limit = services.settings.max_upload_bytes
    if int(request.headers.get("content-length") or 0) > limit + 64 * 1024:
        raise too_large("the upload", limit)
    form = await request.form(max_files=1, max_fields=10)
    try:
        image = form.get("image")
        if not isinstance(image, UploadFile):
            raise PixelForgeError(
                ErrorCode.invalid_parameter, "image: a multipart file field 'image' is required"
            )
        data = await image.read(limit + 1)
    finally:
        await form.close()
    if len(data) > limit:
        raise too_large("the upload", limit)
    row = await ingest_image(services, account, data=data, field="image")
    return {"mediaId": row.id, "mediaType": "IMAGE"}


# -- LoRA templates ----------------------------------------------------------------------------
def _template(row: LoraTemplateRow | LoraTemplate, kind: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "description": "",
        "prompts": [row.trigger] if row.trigger else [],
        "modelId": row.base_family,
        "host": None,
        "templateType": kind,
        "isPublic": True,
        "strength": round(row.default_strength * 10, 2),
        "supportedModels": [],
        "medias": [],
        "public": True,
    }


def _all_templates(services: Services, core_type: str) -> list[LoraTemplateRow]:
    rows: list[LoraTemplateRow] = []
    token: str | None = None
    while True:
        page, token = services.catalog.loras(type=core_type, page_size=100, token=token)
        rows.extend(page)
        if token is None:
            return rows


def _templates(services: Services, kind: str) -> list[dict[str, Any]]:
    core_type = _LORA_TYPES[kind]
    rows = _all_templates(services, core_type) if core_type else []
    return [_template(r, kind) for r in rows]


TemplateType = Annotated[str, Path(pattern="^(" + "|".join(sc.TEMPLATE_TYPES) + ")$")]


@_api.get(
    "/loras/type/{templateType}", summary="List By Type", responses=ex.responses([ex.TEMPLATE])
)
def loras_by_type(
    templateType: TemplateType, _: CurrentAccount, services: ServicesDep
) -> list[dict[str, Any]]:
    return _templates(services, templateType)


@_api.get(
    "/loras/{templateId}",
    summary="Get By Id",
    responses=ex.responses(ex.TEMPLATE, ex.error(404, "not_found", "template 'nope' not found")),
)
def lora_by_id(templateId: str, _: CurrentAccount, services: ServicesDep) -> dict[str, Any]:
    tpl = services.catalog.lora(templateId)
    if tpl is None:
        raise not_found(f"template {templateId!r}")
    return _template(tpl, {"IMAGE_EDIT": "IMAGE_EDIT_CREATIVE"}.get(tpl.type, tpl.type))


# The seed's deprecated listings, kept for old clients (same data as /loras/type/...).
_DEPRECATED = {
    "/templates": "IMAGE",
    "/templates/edit": "IMAGE_EDIT_CREATIVE",
    "/templates/edit/realism": "IMAGE_EDIT_REALISM",
    "/video-templates": "VIDEO",
    "/video-templates/ltx": "VIDEO",
}


def _deprecated(kind: str) -> Any:
    def listing(_: CurrentAccount, services: ServicesDep) -> list[dict[str, Any]]:
        return _templates(services, kind)

    return listing


for _path, _kind in _DEPRECATED.items():
    _api.add_api_route(
        _path,
        _deprecated(_kind),
        methods=["GET"],
        deprecated=True,
        responses=ex.responses([{**ex.TEMPLATE, "templateType": _kind}]),
    )


# -- poses and clothes -------------------------------------------------------------------------
@_api.get(
    "/poses",
    summary="Get Poses (no pose library ships: every group is empty)",
    responses=ex.responses({group: {} for group in _POSE_GROUPS}),
)
def get_poses(_: CurrentAccount) -> dict[str, Any]:
    return {group: {} for group in _POSE_GROUPS}


@_api.get("/poses/custom", summary="Get Custom Poses", responses=ex.responses([]))
def get_custom_poses(_: CurrentAccount) -> list[dict[str, Any]]:
    return []


@_api.get(
    "/poses/custom/{poseId}",
    summary="Get Custom Pose",
    responses=ex.responses(None, ex.error(404, "not_found", "pose 'pose_1' not found")),
)
def get_custom_pose(poseId: str, _: CurrentAccount) -> dict[str, Any]:
    raise not_found(f"pose {poseId!r}")


@_api.delete(
    "/poses/custom/{poseId}",
    summary="Delete Custom Pose",
    responses=ex.responses(None, ex.error(404, "not_found", "pose 'pose_1' not found")),
)
def delete_custom_pose(poseId: str, _: CurrentAccount) -> Response:
    raise not_found(f"pose {poseId!r}")


@_api.get("/clothes", summary="Get Public Clothes (none ship)", responses=ex.responses([]))
def get_public_clothes(_: CurrentAccount) -> list[dict[str, Any]]:
    return []


def _clothes(services: Services, request: Request, prompt: store.Prompt) -> dict[str, Any]:
    outputs = services.jobs.outputs(prompt.job.id)
    image = store.media_view(services, request, outputs[0]) if outputs else None
    return {
        "clothesId": prompt.job.id,
        "clothesPrompt": "",
        "clothesImageUrl": image["mediaUrl"] if image else None,
    }


def _custom_clothes(services: Services, account_id: str, clothes_id: str) -> store.Prompt:
    try:
        prompt = store.find(services, account_id, clothes_id)
    except PixelForgeError:
        prompt = None
    if (
        prompt is None
        or prompt.prompt_type != "CREATE_CLOTHES"
        or prompt.job.status != JobStatus.SUCCEEDED
    ):
        raise not_found(f"clothes {clothes_id!r}")
    return prompt


@_api.get(
    "/clothes/custom",
    summary="Get Custom Clothes (the results of Create Clothes)",
    responses=ex.responses([ex.CLOTHES]),
)
def get_custom_clothes(
    request: Request, account: CurrentAccount, services: ServicesDep
) -> list[dict[str, Any]]:
    prompts, _ = store.listing(
        services, account.id, statuses=(JobStatus.SUCCEEDED,), types=["CREATE_CLOTHES"]
    )
    return [_clothes(services, request, p) for p in prompts]


@_api.get(
    "/clothes/custom/{clothesId}",
    summary="Get Custom Clothes by id",
    responses=ex.responses(
        ex.CLOTHES, ex.error(404, "not_found", f"clothes {ex.PROMPT_ID!r} not found")
    ),
)
def get_custom_clothes_item(
    clothesId: str, request: Request, account: CurrentAccount, services: ServicesDep
) -> dict[str, Any]:
    return _clothes(services, request, _custom_clothes(services, account.id, clothesId))


@_api.delete(
    "/clothes/custom/{clothesId}",
    status_code=204,
    summary="Delete Custom Clothes",
    responses=ex.responses(None, ex.error(404, "not_found", f"clothes {ex.PROMPT_ID!r} not found")),
)
async def delete_custom_clothes(
    clothesId: str, account: CurrentAccount, services: ServicesDep
) -> Response:
    prompt = await run_in_threadpool(_custom_clothes, services, account.id, clothesId)
    await run_in_threadpool(store.delete, services, prompt)
    return Response(status_code=204)


router.include_router(_api)
router.include_router(routes_vision.router)
router.include_router(routes_prompts.router)
router.include_router(routes_llm.router)
router.include_router(routes_characters.router)
router.include_router(routes_chat.router)
router.include_router(ws.router)
