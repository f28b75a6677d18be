"""Re-encode an image and optionally shrink it: the cheap real pipeline for tests and benchmarks."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.pipelines.contract import MediaRef, RunContext
from pixelforge.pipelines.limits import InputLimit


class ConvertParams(BaseModel):
    """Parameters of the `convert` pipeline."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(
        description="Media id of the image to convert.",
        examples=["med_3f9a1c2b7d4e"],
    )
    format: Literal["png", "jpg", "webp"] = Field(
        default="png",
        description="Output encoding. jpg has no alpha: transparency is flattened on white.",
        examples=["webp"],
    )
    max_side: int | None = Field(
        default=None,
        ge=1,
        le=8192,
        description=(
            "Shrink so the longest side is at most this many pixels, keeping the aspect "
            "ratio. Smaller images are never enlarged. Omit to keep the size."
        ),
        examples=[1024],
    )
    quality: int = Field(
        default=90,
        ge=1,
        le=100,
        description="Encoder quality for jpg and webp (1-100); png is lossless.",
        examples=[90],
    )


class ConvertPipeline:
    """Decode, optionally downscale, and re-encode one image."""

    name: ClassVar[str] = "convert"
    description: ClassVar[str] = (
        "Convert an image to png, jpg or webp, optionally shrinking it to a maximum side."
    )
    Params: ClassVar[type[BaseModel]] = ConvertParams
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: ConvertParams) -> int:
        return 1

    def run(self, params: ConvertParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load inputs
        img = ctx.load_image(params.image)

        # 2. Shrink to max_side (never enlarge); jpg cannot carry alpha
        if params.max_side is not None and max(img.size) > params.max_side:
            img = img.resize(_fit(img.size, params.max_side), Image.Resampling.LANCZOS)
        if params.format == "jpg" and img.mode != "RGB":
            img = _flatten_on_white(img)
        ctx.progress(1, 1)

        # 3. Save outputs
        ctx.save_image(img, format=params.format, quality=params.quality)
        return {"width": img.width, "height": img.height, "format": params.format}


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The size with the longest side exactly max_side and the aspect ratio kept."""
    w, h = size
    if w >= h:
        return max_side, max(1, round(h * max_side / w))
    return max(1, round(w * max_side / h)), max_side


def _flatten_on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background
