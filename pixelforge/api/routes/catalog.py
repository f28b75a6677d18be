"""The catalog: style groups, styles and LoRA templates (listing for all, edits for admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import BaseModel, Field

from pixelforge.catalog.types import LoraTemplate
from pixelforge.store.tables import LoraTemplateRow, Style, StyleGroup
from pixelforge.web.deps import AdminAccount, CurrentAccount, ServicesDep
from pixelforge.web.openapi import answers

router = APIRouter(prefix="/v1", tags=["catalog"])

# Annotated aliases, not shared Query(...) defaults: FastAPI fills in a FieldInfo per route,
# and one instance reused as the default of several routes is mutated by each of them.
TaskQuery = Annotated[str, Query(max_length=64, description="the task the styles are for")]
# Sort keys are 32-bit columns: a larger number is a bad request, not a database error.
SortKey = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
PageSize = Annotated[int, Query(ge=1, le=100, description="results per page")]
StartingToken = Annotated[
    str | None, Query(max_length=100, description="next_token of the previous page")
]


class StyleGroupOut(BaseModel):
    id: int = Field(examples=[2])
    task: str = Field(examples=["text_to_image"])
    name: str = Field(examples=["illustration"])
    title: str = Field(examples=["Illustration"])


class StyleOut(BaseModel):
    id: int = Field(examples=[11])
    group_id: int | None = Field(examples=[2])
    task: str = Field(examples=["text_to_image"])
    name: str = Field(examples=["neon-punk"])
    title: str = Field(examples=["Neon punk"])
    thumb: str | None = None
    prompt: str = Field(examples=["neon punk style {prompt}, cyberpunk, glowing neon lights"])
    negative_prompt: str = ""
    model: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class LoraOut(BaseModel):
    id: str = Field(examples=["watercolor-v1"])
    name: str = Field(examples=["Watercolor"])
    type: str = Field(examples=["IMAGE"], description="IMAGE | IMAGE_EDIT | VIDEO")
    source: str = Field(examples=["/models/loras/watercolor.safetensors"])
    weight_name: str | None = None
    base_family: str | None = Field(None, examples=["sd15"])
    trigger: str = Field("", examples=["watercolor painting"])
    default_strength: float = Field(1.0, examples=[0.8])


class GroupPage(BaseModel):
    data: list[StyleGroupOut]
    next_token: str | None = Field(examples=[None])


class StylePage(BaseModel):
    data: list[StyleOut]
    next_token: str | None = Field(examples=["11"])


class LoraPage(BaseModel):
    data: list[LoraOut]
    next_token: str | None = Field(examples=[None])


class StyleIn(BaseModel):
    task: str = Field("text_to_image", max_length=64)
    name: str = Field(
        min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$", examples=["watercolor"]
    )
    title: str = Field(min_length=1, max_length=200, examples=["Watercolor"])
    group_id: int | None = None
    thumb: str | None = Field(None, max_length=500)
    prompt: str = Field(min_length=1, max_length=2000, examples=["watercolor painting of {prompt}"])
    negative_prompt: str = Field("", max_length=2000)
    model: str | None = Field(None, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)
    sort: SortKey = 0


class GroupIn(BaseModel):
    task: str = Field("text_to_image", max_length=64)
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str = Field(min_length=1, max_length=200)
    sort: SortKey = 0


class LoraIn(LoraOut):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _group(row: StyleGroup) -> StyleGroupOut:
    return StyleGroupOut(id=row.id, task=row.task, name=row.name, title=row.title)


def _style(row: Style) -> StyleOut:
    return StyleOut(
        id=row.id,
        group_id=row.group_id,
        task=row.task,
        name=row.name,
        title=row.title,
        thumb=row.thumb,
        prompt=row.prompt,
        negative_prompt=row.negative_prompt,
        model=row.model,
        params=dict(row.params or {}),
    )


def _lora(row: LoraTemplateRow) -> LoraOut:
    return LoraOut(
        id=row.id,
        name=row.name,
        type=row.type,
        source=row.source,
        weight_name=row.weight_name,
        base_family=row.base_family,
        trigger=row.trigger,
        default_strength=row.default_strength,
    )


@router.get("/style-groups", response_model=GroupPage, summary="Style groups of a task")
def list_groups(
    _: CurrentAccount,
    services: ServicesDep,
    task: TaskQuery = "text_to_image",
    page_size: PageSize = 20,
    starting_token: StartingToken = None,
) -> GroupPage:
    page = services.catalog.groups(task=task, page_size=page_size, token=starting_token)
    return GroupPage(data=[_group(g) for g in page.items], next_token=page.next_token)


@router.get("/styles", response_model=StylePage, summary="Style presets of a task")
def list_styles(
    _: CurrentAccount,
    services: ServicesDep,
    task: TaskQuery = "text_to_image",
    style_group_id: Annotated[int | None, Query(examples=[2])] = None,
    page_size: PageSize = 20,
    starting_token: StartingToken = None,
) -> StylePage:
    page = services.catalog.styles(
        task=task, group_id=style_group_id, page_size=page_size, token=starting_token
    )
    return StylePage(data=[_style(s) for s in page.items], next_token=page.next_token)


@router.get("/lora-templates", response_model=LoraPage, summary="LoRA templates by type")
def list_loras(
    _: CurrentAccount,
    services: ServicesDep,
    type: Annotated[
        str | None, Query(pattern="^(IMAGE|IMAGE_EDIT|VIDEO)$", examples=["IMAGE"])
    ] = None,
    page_size: PageSize = 20,
    starting_token: StartingToken = None,
) -> LoraPage:
    rows, nxt = services.catalog.loras(type=type, page_size=page_size, token=starting_token)
    return LoraPage(data=[_lora(r) for r in rows], next_token=nxt)


@router.put("/admin/style-groups", response_model=StyleGroupOut, summary="Create or rename a group")
def put_group(body: GroupIn, _: AdminAccount, services: ServicesDep) -> StyleGroupOut:
    row = services.catalog.put_group(
        task=body.task, name=body.name, title=body.title, sort=body.sort
    )
    return _group(row)


@router.put("/admin/styles", response_model=StyleOut, summary="Create or replace a style")
@answers(404)
def put_style(body: StyleIn, _: AdminAccount, services: ServicesDep) -> StyleOut:
    fields = body.model_dump(exclude={"task", "name"})
    return _style(services.catalog.put_style(task=body.task, name=body.name, fields=fields))


@router.delete(
    "/admin/styles/{style_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a style"
)
def delete_style(
    _: AdminAccount, services: ServicesDep, style_id: int = Path(examples=[11])
) -> None:
    services.catalog.delete_style(style_id)


@router.put("/admin/lora-templates", response_model=LoraOut, summary="Create or replace a LoRA")
@answers(409)
def put_lora(body: LoraIn, _: AdminAccount, services: ServicesDep) -> LoraOut:
    return _lora(services.catalog.put_lora(LoraTemplate(**body.model_dump())))


@router.delete(
    "/admin/lora-templates/{template_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a LoRA template",
)
def delete_lora(
    _: AdminAccount, services: ServicesDep, template_id: str = Path(examples=["watercolor-v1"])
) -> None:
    services.catalog.delete_lora(template_id)
