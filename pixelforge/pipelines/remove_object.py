"""Object removal: fill a masked region from its surroundings, with OpenCV's inpainting
(bundled) or a downloaded model (LaMa as ONNX, or a diffusion inpainting model)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import ERASE, INPAINT
from pixelforge.models.onnx_model import OnnxModel
from pixelforge.pipelines.contract import MediaRef, OutputFormat, Quality, RunContext
from pixelforge.pipelines.limits import PHOTO_EFFECT, InputLimit
from pixelforge.pipelines.limits import check_long_side as _check_side

Array = np.ndarray[Any, Any]
# Perfect's documented limit for these effects; it also bounds a job's memory (~2 GB).
# OpenCV's fast-marching fill grows a smear into a large hole; past this share of the
# image the result is not worth a credit, so the job is refused before any work.
MAX_MASK_FRACTION = 0.5
OPENCV = "opencv"
# What a diffusion inpainting model is asked to paint where the object was.
_FILL_PROMPT = "background, empty scene, seamless continuation of the surroundings"
_FILL_NEGATIVE = "object, person, animal, text, watermark, frame, blurry"


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
    model: str = Field(
        default=OPENCV,
        min_length=1,
        max_length=100,
        description=(
            "What fills the hole. opencv (bundled, always available): classical inpainting, "
            "see method. Or a downloaded model (GET /v1/models; `pixelforge models pull "
            "<id>`): lama, or any model with task erase, which invents plausible structure "
            "in large holes; or a diffusion inpainting model (task inpaint, e.g. "
            "sd-inpainting), asked for background where the object was."
        ),
        examples=["opencv", "lama"],
    )
    method: Literal["telea", "ns"] = Field(
        default="telea",
        description=(
            "With model=opencv: telea, Telea's fast-marching method (smooth, good default); "
            "ns, Navier-Stokes (continues edges and lines into the hole a little further)."
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
    output_format: OutputFormat = "jpg"
    quality: Quality = 92


class RemoveObjectPipeline:
    """Fill the white part of a mask from the photo around it."""

    name: ClassVar[str] = "remove_object"
    description: ClassVar[str] = (
        "Remove an object: paint it white in a mask and the region is filled from its "
        "surroundings. The bundled method is OpenCV's classical inpainting (Telea or "
        "Navier-Stokes): excellent for small objects, blemishes, wires and text on "
        "textured or smooth backgrounds; it does not invent new structure in large holes. "
        "For those, a downloaded model: LaMa (model=lama) or a diffusion inpainting model."
    )
    Params: ClassVar[type[BaseModel]] = RemoveObjectParams
    # Perfect's table: AI Object Removal.
    input_limit: ClassVar[InputLimit | None] = PHOTO_EFFECT

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
        if params.model == OPENCV:
            flag = cv2.INPAINT_TELEA if params.method == "telea" else cv2.INPAINT_NS
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            filled = cv2.inpaint(bgr, grown, params.radius, flag)
            filled = cv2.cvtColor(filled, cv2.COLOR_BGR2RGB)
        else:
            filled = _model_fill(ctx, params.model, rgb, grown)
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
            "model": params.model,
            **({"method": params.method} if params.model == OPENCV else {}),
            "removed_fraction": round(float(np.mean(grown > 0)), 4),
        }


def _model_fill(ctx: RunContext, model_id: str, rgb: Array, hole: Array) -> Array:
    """The photo with the hole filled by a model, at full size (only the hole is used).
    The model sees a crop around the hole with as much context again on each side (at
    least its own input size, where the photo is that large), at its input resolution."""
    task = _fill_task(ctx, model_id)
    profile = ctx.models.profile(model_id, task=task)
    side = max(profile.default_width, profile.default_height)
    x0, y0, x1, y1 = _context_box(hole, side)
    crop, crop_hole = rgb[y0:y1, x0:x1], hole[y0:y1, x0:x1]
    with ctx.models.load(model_id, task=task) as model:
        if task == ERASE:
            patch = _erase(model, crop, crop_hole)
        else:
            steps, guidance = profile.default_steps, profile.default_guidance
            patch = _diffuse(ctx, model, side, steps, guidance, crop, crop_hole)
    filled = rgb.copy()
    filled[y0:y1, x0:x1] = patch
    return filled


def _fill_task(ctx: RunContext, model_id: str) -> str:
    """erase for models that fill without a prompt (LaMa), else inpaint (diffusion)."""
    errors: list[PixelForgeError] = []
    for task in (ERASE, INPAINT):
        try:
            ctx.models.profile(model_id, task=task)
            return task
        except PixelForgeError as e:
            if e.code != ErrorCode.invalid_parameter:
                raise  # known and able, but not on disk: model_unavailable says how to pull
            errors.append(e)
    raise PixelForgeError(
        ErrorCode.invalid_parameter,
        f"model: {model_id!r} is neither opencv nor a model for erase or inpaint "
        f"({errors[-1].message})",
    )


def _context_box(hole: Array, side: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): a crop around the hole's bounding box, twice its size and at least
    `side` where the photo allows, centred on it and shifted to stay inside the photo."""
    h, w = hole.shape
    ys, xs = np.nonzero(hole)
    bx0, bx1, by0, by1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    size = max(side, 2 * (bx1 - bx0), 2 * (by1 - by0))
    cw, ch = min(size, w), min(size, h)
    x0 = min(max((bx0 + bx1 - cw) // 2, 0), w - cw)
    y0 = min(max((by0 + by1 - ch) // 2, 0), h - ch)
    return x0, y0, x0 + cw, y0 + ch


def _erase(net: OnnxModel, crop: Array, hole: Array) -> Array:
    """A LaMa-style ONNX fill of `crop` (RGB uint8) where `hole` > 0. The crop is scaled to
    fit the network's input and padded (mirrored) to its shape, so nothing is stretched."""
    import cv2

    w, h = net.spec.input_size
    ch, cw = crop.shape[:2]
    scale = min(w / cw, h / ch)
    sw, sh = max(1, round(cw * scale)), max(1, round(ch * scale))
    small = cv2.resize(
        crop, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    )
    small_hole = cv2.resize(hole, (sw, sh), interpolation=cv2.INTER_NEAREST)
    pad = (0, h - sh, 0, w - sw)  # top, bottom, left, right
    image = cv2.copyMakeBorder(
        small, *pad, cv2.BORDER_REFLECT_101 if min(sw, sh) > 1 else cv2.BORDER_REPLICATE
    )
    mask = cv2.copyMakeBorder(small_hole, *pad, cv2.BORDER_CONSTANT, value=0)
    out = net.run(net.image_tensor(image), (mask > 0).astype(np.float32)[None, None])
    rgb = out.reshape(3, h, w).transpose(1, 2, 0) * (255.0 / net.spec.output_scale)
    patch = np.clip(rgb[:sh, :sw] + 0.5, 0, 255).astype(np.uint8)
    resized: Array = cv2.resize(patch, (cw, ch), interpolation=cv2.INTER_CUBIC)
    return resized


def _diffuse(
    ctx: RunContext, pipe: Any, side: int, steps: int, guidance: float, crop: Array, hole: Array
) -> Array:
    """A diffusion inpainting model's fill of `crop` where `hole` > 0, at the model's own
    resolution (the crop's long side scaled to it, multiples of 8)."""
    from pixelforge.pipelines.diffusion import fit_to_multiple, run_args

    ch, cw = crop.shape[:2]
    scale = side / max(cw, ch)
    size = (round(cw * scale), round(ch * scale))
    image = fit_to_multiple(Image.fromarray(crop), size)
    mask = Image.fromarray(hole).resize(image.size, Image.Resampling.NEAREST)
    result = pipe(
        prompt=_FILL_PROMPT,
        negative_prompt=_FILL_NEGATIVE if guidance > 1.0 else None,
        image=image,
        mask_image=mask,
        width=image.width,
        height=image.height,
        strength=1.0,
        num_inference_steps=steps,
        guidance_scale=guidance,
        **run_args(ctx),
    ).images[0]
    out = result.convert("RGB").resize((cw, ch), Image.Resampling.BICUBIC)
    return np.asarray(out, dtype=np.uint8)


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
