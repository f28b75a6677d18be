"""OpenAI's request and response models and the OpenAPI bodies of its routes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Header
from pydantic import BaseModel, ConfigDict, Field

MAX_N = 4  # the core pipelines make at most 4 images per job

# -- request and response shapes -----------------------------------------------------------

Quality = Literal["low", "medium", "high", "xhigh", "max", "auto", "standard", "hd"]
IdempotencyKey = Annotated[str | None, Header(max_length=200)]


class CommonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, max_length=100, examples=["sd-turbo"])
    n: int | None = Field(None, ge=1, le=MAX_N, description=f"1 to {MAX_N}")
    size: str | None = Field(None, max_length=20, examples=["512x512"])
    response_format: Literal["url", "b64_json"] | None = None
    output_format: Literal["png", "webp", "jpeg"] | None = None
    user: str | None = Field(None, description="ignored")
    # PixelForge extensions
    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="PixelForge: fixed seed")
    steps: int | None = Field(None, ge=1, le=150, description="PixelForge: overrides quality")
    negative_prompt: str | None = Field(None, max_length=2000, description="PixelForge")


class PromptedIn(CommonIn):
    prompt: str = Field(min_length=1, max_length=2000, examples=["a lighthouse at dusk"])
    quality: Quality | None = None
    background: Literal["transparent", "opaque", "auto"] | None = None
    stream: bool | None = None
    # Accepted and ignored:
    output_compression: int | None = Field(None, ge=0, le=100)
    moderation: Literal["low", "auto"] | None = None
    safety_identifier: str | None = None
    partial_images: int | None = None
    complexity: str | None = None


class OpenAIImageGenerateIn(PromptedIn):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"prompt": "a lighthouse at dusk", "size": "512x512", "n": 1}]
        }
    )
    style: Literal["vivid", "natural"] | None = None


class EditIn(PromptedIn):
    input_fidelity: Literal["high", "low"] | None = None  # ignored


class VariationIn(CommonIn):
    prompt: str | None = Field(None, min_length=1, max_length=2000, description="PixelForge")
    strength: float | None = Field(None, gt=0.0, le=1.0, description="PixelForge")


class ImageOut(BaseModel):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None


class ImagesOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "created": 1735689600,
                    "data": [{"url": "https://pf.example/v1/media/med_x/content?exp=1&sig=s"}],
                    "output_format": "png",
                    "size": "512x512",
                }
            ]
        }
    )
    created: int
    data: list[ImageOut]
    output_format: str | None = None
    size: str | None = None


class OpenAIErrorBody(BaseModel):
    message: str = Field(examples=["size: '13x7' is not a size; use WIDTHxHEIGHT or auto"])
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = Field(examples=["size"])
    code: str | None = Field(examples=["invalid_parameter"])


class OpenAIErrorOut(BaseModel):
    error: OpenAIErrorBody


RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"model": OpenAIErrorOut} for s in (400, 401, 404, 429, 503, 504)
}


EDIT_BODY = {
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image", "prompt"],
                "properties": {
                    "image": {"type": "string", "format": "binary"},
                    "mask": {"type": "string", "format": "binary"},
                    "prompt": {"type": "string"},
                    "model": {"type": "string"},
                    "n": {"type": "integer"},
                    "size": {"type": "string"},
                    "response_format": {"type": "string", "enum": ["url", "b64_json"]},
                },
            },
            "example": {"prompt": "a red door", "size": "512x512", "n": "1"},
        }
    }
}
VARIATION_BODY = {
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {
                    "image": {"type": "string", "format": "binary"},
                    "model": {"type": "string"},
                    "n": {"type": "integer"},
                    "size": {"type": "string"},
                    "response_format": {"type": "string", "enum": ["url", "b64_json"]},
                },
            },
            "example": {"size": "512x512", "n": "2"},
        }
    }
}
