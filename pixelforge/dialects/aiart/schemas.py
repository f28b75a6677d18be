"""AiArt's request model and the OpenAPI examples of its routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pixelforge.dialects.aiart.translate import (
    ASPECT_RATIOS,
    EXT,
    FOLDERS,
    MODEL_ALIASES,
    OUTPUT_FORMATS,
)

# -- OpenAPI examples ------------------------------------------------------------------------
FILE_TYPES = {
    "images": "image/png",
    "processed_images": "image/png",
    "processed_videos": "video/mp4",
}
EXAMPLE_FILES = {
    folder: f"{stem}_med_3q2xJ0cQ9h1b7m0PZrUo8A.1735693200.kX2vQ8mZr1T0bYc4LpN7sWfA3eHjU6dG"
    f".{EXT[FILE_TYPES[folder]]}"
    for folder, stem in FOLDERS.items()
}


def response_examples(
    examples: dict[int, tuple[str, Any]], media_type: str = "application/json"
) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: status -> (description, example body)."""
    return {
        status: {"description": text, "content": {media_type: {"example": body}}}
        for status, (text, body) in examples.items()
    }


BAD_REQUEST = (
    "a missing or invalid field",
    {"error": "prompt: a description of the transformation is required"},
)


class AiArtGenerateIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    video_description: str | None = Field(
        None,
        max_length=2000,
        description="text description of the image (required)",
        examples=["A futuristic city skyline at sunset, cyberpunk style"],
    )
    prompt: str | None = Field(
        None, max_length=2000, description="accepted in place of video_description"
    )
    negative_prompt: str | None = Field(None, max_length=2000)
    style_preset: str | None = Field(None, examples=["neon-punk"])
    aspect_ratio: str = Field("16:9", description=" | ".join(ASPECT_RATIOS))
    output_format: str = Field("png", description=" | ".join(OUTPUT_FORMATS))
    seed: int = Field(0, ge=0, le=2**32 - 1, description="0 = random")
    model: str | None = Field(None, description="optional: " + ", ".join(MODEL_ALIASES))
