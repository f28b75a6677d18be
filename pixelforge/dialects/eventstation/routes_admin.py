"""Eventstation's filters for administrators: list and edit them (`/v1/admin/filters`).

Native routes (core error shape, an administrator's key); they exist only while the
Eventstation dialect is enabled, as the filters are its own concept.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, Field

from pixelforge.dialects.eventstation.filters import Filter, FilterService, filters_of, public_id
from pixelforge.services import Services
from pixelforge.web.deps import AdminAccount, ServicesDep
from pixelforge.web.errors import ErrorOut

router = APIRouter(prefix="/v1/admin/filters", tags=["catalog"])

FilterId = Annotated[
    str,
    Path(
        max_length=64,
        description="integer or UUID",
        examples=["7", "0b6f3c5e-4d1a-4e8b-9a37-2f1c6d8e9b40"],
    ),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    403: {"model": ErrorOut},
    404: {"model": ErrorOut},
}


class FilterFields(BaseModel):
    """Every field optional: a PATCH changes only what it names."""

    name: str | None = Field(None, min_length=1, max_length=200, examples=["Astronaut"])
    description: str | None = Field(None, max_length=2000)
    thumb: str | None = Field(None, max_length=500, description="thumbnail URL")
    pipeline: str | None = Field(None, max_length=64, examples=["image_to_image"])
    persons: int | None = Field(None, ge=1, le=2, description="2: a two-person filter")
    prompt: str | None = Field(
        None,
        max_length=4000,
        description="template: {gender}, {gender_2} and {prompt} are filled in per request",
        examples=["portrait photo of a {gender} as an astronaut, {prompt}"],
    )
    negative_prompt: str | None = Field(None, max_length=4000)
    gender_words: list[str] | None = Field(
        None,
        min_length=4,
        max_length=4,
        description="what {gender} becomes for 0 male, 1 female, 2 boy, 3 girl",
        examples=[["man", "woman", "boy", "girl"]],
    )
    params: dict[str, Any] | None = Field(
        None, description="the pipeline's own params", examples=[{"strength": 0.75}]
    )
    sort: int | None = Field(None, ge=-(2**31), le=2**31 - 1)  # a 32-bit column


class FilterIn(FilterFields):
    id: int | UUID | None = Field(
        None, description="an integer for a curated filter; omit for a new custom (UUID) one"
    )
    name: str = Field(min_length=1, max_length=200, examples=["Astronaut"])
    pipeline: str = Field(max_length=64, examples=["image_to_image"])


class FilterOut(BaseModel):
    id: int | str = Field(examples=[1])
    name: str
    description: str
    thumb: str | None
    pipeline: str
    persons: int
    prompt: str
    negative_prompt: str
    gender_words: list[str]
    params: dict[str, Any]
    sort: int
    created_at: float
    updated_at: float


class FilterList(BaseModel):
    data: list[FilterOut]


def filter_out(entry: Filter) -> FilterOut:
    return FilterOut(
        id=public_id(entry.id),
        name=entry.name,
        description=entry.description,
        thumb=entry.thumb,
        pipeline=entry.pipeline,
        persons=entry.persons,
        prompt=entry.prompt,
        negative_prompt=entry.negative_prompt,
        gender_words=list(entry.gender_words),
        params=entry.params,
        sort=entry.sort,
        created_at=entry.created_at,
        updated_at=entry.updated_at,
    )


def _service(services: Services, fields: dict[str, Any]) -> FilterService:
    if fields.get("pipeline") is not None:
        services.registry.get(fields["pipeline"])  # 400 unknown_pipeline
    return filters_of(services)


@router.get("", response_model=FilterList, responses=_ERRORS, summary="All filters")
def list_filters(_: AdminAccount, services: ServicesDep) -> FilterList:
    return FilterList(data=[filter_out(f) for f in filters_of(services).all()])


@router.get("/{filter_id}", response_model=FilterOut, responses=_ERRORS, summary="One filter")
def get_filter(filter_id: FilterId, _: AdminAccount, services: ServicesDep) -> FilterOut:
    return filter_out(filters_of(services).require(filter_id))


@router.post(
    "",
    response_model=FilterOut,
    status_code=status.HTTP_201_CREATED,
    responses={**_ERRORS, 409: {"model": ErrorOut}},
    summary="Create a filter (without an id: a custom filter with a new UUID)",
)
def create_filter(body: FilterIn, _: AdminAccount, services: ServicesDep) -> FilterOut:
    fields = body.model_dump(exclude={"id"}, exclude_none=True)
    entry = _service(services, fields).create(
        fields=fields, filter_id=None if body.id is None else str(body.id)
    )
    return filter_out(entry)


@router.patch(
    "/{filter_id}", response_model=FilterOut, responses=_ERRORS, summary="Change a filter"
)
def update_filter(
    filter_id: FilterId, body: FilterFields, _: AdminAccount, services: ServicesDep
) -> FilterOut:
    # Only what the body names; an explicit null clears the optional thumbnail.
    fields = body.model_dump(exclude_unset=True)
    fields = {k: v for k, v in fields.items() if v is not None or k == "thumb"}
    return filter_out(_service(services, fields).update(filter_id, fields))


@router.delete(
    "/{filter_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_ERRORS,
    summary="Delete a filter (it stays deleted when the shipped filters are reseeded)",
)
def delete_filter(filter_id: FilterId, _: AdminAccount, services: ServicesDep) -> None:
    filters_of(services).delete(filter_id)
