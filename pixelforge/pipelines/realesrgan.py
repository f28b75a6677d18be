"""Real-ESRGAN on the CPU through ncnn, shared by the upscale and enhance pipelines.

The model names and their weight files (the nets themselves are the model manager's
bundled ncnn profiles), the tiled run and the size checks.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from PIL import Image

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.pipelines.contract import RunContext

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
