"""Object removal: fill a masked region from its surroundings with OpenCV's inpainting."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.pipelines.base import MediaRef, RunContext
from pixelforge.pipelines.limits import check_long_side as _check_side

Array = np.ndarray[Any, Any]
# Perfect's documented limit for these effects; it also bounds a job's memory (~2 GB).
# OpenCV's fast-marching fill grows a smear into a large hole; past this share of the
# image the result is not worth a credit, so the job is refused before any work.
MAX_MASK_FRACTION = 0.5


class RemoveObjectParams(BaseModel):
    """Parameters of the `remove_object` pipeline."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(description="Media id of the photo.", examples=["med_3f9a1c2b7d4e"])
    mask: MediaRef = Field(
        description=(
            "Media id of a mask the same size as the image: white (> 127) = remove, "
            "black = keep. Colour masks are read as grey; alpha is ignored."
        ),
        examples=["med_9c8b7a6d5e4f"],
    )
    method: Literal["telea", "ns"] = Field(
        default="telea",
        description=(
            "telea: Telea's fast-marching method (smooth, good default); ns: Navier-Stokes "
            "(continues edges and lines into the hole a little further)."
        ),
        examples=["telea"],
    )
    radius: int = Field(
        default=5,
        ge=1,
        le=50,
        description="Neighbourhood each filled pixel is estimated from, in pixels.",
        examples=[5],
    )
    dilate: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description=(
            "Grow the mask by this many pixels so the object's outline and shadow seam go "
            "too. Omit for about 0.4% of the longest side (at least 2 px)."
        ),
        examples=[4],
    )
    feather: float = Field(
        default=2.0,
        ge=0.0,
        le=32.0,
        description="Softness of the seam between fill and photo: Gaussian sigma in pixels.",
        examples=[2.0],
    )
    output_format: Literal["png", "jpg", "webp"] = Field(
        default="jpg", description="Encoding of the result.", examples=["jpg", "png"]
    )
    quality: int = Field(default=92, ge=1, le=100, description="jpg/webp quality.")


class RemoveObjectPipeline:
    """Fill the white part of a mask from the photo around it."""

    name: ClassVar[str] = "remove_object"
    description: ClassVar[str] = (
        "Remove an object: paint it white in a mask and the region is filled from its "
        "surroundings. The bundled method is OpenCV's classical inpainting (Telea or "
        "Navier-Stokes): excellent for small objects, blemishes, wires and text on "
        "textured or smooth backgrounds; it does not invent new structure in large holes."
    )
    Params: ClassVar[type[BaseModel]] = RemoveObjectParams

    def cost(self, params: RemoveObjectParams) -> int:
        return 1

    def run(self, params: RemoveObjectParams, ctx: RunContext) -> dict[str, Any]:
        import cv2

        # 1. Load inputs and check the mask against the image
        img = ctx.load_image(params.image)
        _check_side(img)
        mask_img = ctx.load_image(params.mask)
        rgb = np.asarray(img.convert("RGB"), dtype=np.uint8)
        hole = _read_mask(mask_img, img.size)
        ctx.progress(1, 3)

        # 2. Grow the hole a little (the outline and its seam go too) and fill it
        grow = params.dilate
        if grow is None:
            grow = max(2, round(max(img.size) * 0.004))
        grown = hole
        if grow > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
            grown = cv2.dilate(hole, kernel)
        flag = cv2.INPAINT_TELEA if params.method == "telea" else cv2.INPAINT_NS
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        filled = cv2.cvtColor(cv2.inpaint(bgr, grown, params.radius, flag), cv2.COLOR_BGR2RGB)
        ctx.progress(2, 3)

        # 3. Feather the fill into the photo inside the grown ring; the mask itself is
        #    always fully replaced, and outside the grown hole the photo is untouched
        weight = (grown > 0).astype(np.float32)
        if params.feather > 0:
            soft = cv2.GaussianBlur(weight, (0, 0), sigmaX=params.feather)
            weight = np.where(grown > 0, np.maximum(soft, hole > 0), 0.0).astype(np.float32)
        w = weight[..., None]
        out = filled.astype(np.float32) * w + rgb.astype(np.float32) * (1.0 - w)
        result = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")
        ctx.progress(3, 3)

        # 4. Save outputs
        ctx.save_image(result, format=params.output_format, quality=params.quality)
        return {
            "width": result.width,
            "height": result.height,
            "method": params.method,
            "removed_fraction": round(float(np.mean(grown > 0)), 4),
        }


def _read_mask(mask: Image.Image, size: tuple[int, int]) -> Array:
    """The mask as uint8 0/255 with white = remove; refuses a wrong size or an empty mask."""
    if mask.size != size:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"mask: must be {size[0]}x{size[1]} like the image, got {mask.width}x{mask.height}",
        )
    grey = np.asarray(mask.convert("RGB").convert("L"), dtype=np.uint8)
    hole = np.where(grey > 127, 255, 0).astype(np.uint8)
    fraction = float(np.mean(hole > 0))
    if fraction == 0:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            "mask: has no white pixels, so there is nothing to remove (white = remove)",
        )
    if fraction > MAX_MASK_FRACTION:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"mask: covers {fraction:.0%} of the image; at most {MAX_MASK_FRACTION:.0%} can be "
            "filled from the surroundings (is the mask inverted? white = remove)",
        )
    return hole
