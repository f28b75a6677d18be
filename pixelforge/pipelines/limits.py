"""Input limits shared by the photo-effect pipelines."""

from __future__ import annotations

from PIL import Image

from pixelforge.errors import ErrorCode, PixelForgeError

# Perfect's documented long-side limit; it also bounds memory (a 4096 px photo already needs
# about 2 GB and tens of seconds in the heavier effects on a CPU).
EFFECT_MAX_SIDE = 4096


def check_long_side(img: Image.Image, what: str = "image", limit: int = EFFECT_MAX_SIDE) -> None:
    if max(img.size) > limit:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"{what}: {img.width}x{img.height} is over {limit} px on its longest side; "
            f"downscale it first (e.g. the convert pipeline with max_side {limit})",
        )
