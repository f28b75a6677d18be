"""Eventstation's request and response shapes."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Header
from pydantic import BaseModel, Field

IdemKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="a retry with the same key (and the same photo) returns the same job",
    ),
]

ImageText = Field(
    None, description="a base64-encoded image (bare or data URI) or a public image URL"
)
Gender = Field(0, ge=0, le=3, description="0 male, 1 female, 2 boy, 3 girl")


class PhotoIn(BaseModel):
    base64: str | None = ImageText
    input_image: str | None = Field(None, description="the same as base64; give one of them")


class EventstationGenerateIn(PhotoIn):
    ratio: Literal["portrait", "landscape", "square"] = Field(
        "portrait", description="portrait 768x1152, landscape 1152x768, square 1024x1024"
    )
    capture_mode: Literal[1, 3, 4, 5] = Field(
        3, description="1 quick, 3 high quality, 4 4k, 5 high quality V5"
    )
    gender: int = Gender
    positive_prompt: str | None = Field(None, max_length=2000)
    negative_prompt: str | None = Field(None, max_length=2000)
    workflow_id: int | None = Field(None, description="GET /v1/workflows/")
    style_id: int | None = Field(None, ge=0, le=16, description="GET /v1/lazy_pose_styles/")


class SelfPromptIn(EventstationGenerateIn):
    positive_prompt: str = Field(min_length=1, max_length=2000)
    workflow_id: int | None = Field(0, description="GET /v1/workflows/")


class TwoPersonsIn(EventstationGenerateIn):
    filter_id: int | str = Field(description="a two-person filter id (GET /v1/filters/)")
    gender_2: int | None = Field(None, ge=0, le=3, description="the second person; default gender")


class TwoPersonsSelfPromptIn(SelfPromptIn):
    gender_2: int | None = Field(None, ge=0, le=3, description="the second person; default gender")


class AnimateIn(PhotoIn):
    base_video: int = Field(0, description="the base video of emotions and mimics; only 0")
    video_name: str = Field(
        "video", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )


class RunOut(BaseModel):
    job_id: str = Field(examples=["job_a8Zr0cK1d2Q9xw3mP0vUoQ"])
    status: str = Field(examples=["IN_QUEUE"])
    video_name: str | None = Field(None, description="animate only: the video's file name")


class StatusOut(BaseModel):
    job_id: str = Field(examples=["job_a8Zr0cK1d2Q9xw3mP0vUoQ"])
    status: str = Field(
        description="IN_QUEUE | IN_PROGRESS | COMPLETED | FAILED | CANCELLED",
        examples=["COMPLETED"],
    )
    image: str | None = Field(None, description="when COMPLETED: the image, base64")
    video: str | None = Field(None, description="when COMPLETED (animate): MP4, base64")
    video_name: str | None = Field(None, description="animate only: the video's file name")
    error: str | None = Field(None, description="when FAILED or CANCELLED")


class FilterItem(BaseModel):
    id: int | str = Field(examples=[1])
    name: str = Field(examples=["Astronaut"])
    description: str
    thumbnail: str | None
    persons: int = Field(examples=[1], description="2: use POST /v1/run/two_persons/")


class NamedItem(BaseModel):
    id: int = Field(examples=[0])
    name: str = Field(examples=["Photographic"])
    description: str = Field("", examples=["a photo of you, restyled from your prompt"])
