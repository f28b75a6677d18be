"""Photo enhancement: Real-ESRGAN at the input's size, with extra sharpening inside faces."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import FACE_DETECTION, UPSCALE, ModelProvider
from pixelforge.models.bundled import FACE_DETECTION_MODEL
from pixelforge.pipelines.contract import MediaRef, Quality, RunContext
from pixelforge.pipelines.limits import PHOTO_EFFECT, InputLimit
from pixelforge.pipelines.realesrgan import (
    COST,
    MODEL_FILES,
    ModelName,
    check_size,
    flatten_on_white,
    split_alpha,
    upscale_tiled,
)

Array = np.ndarray[Any, Any]
_FACE_MARGIN = 0.25  # grow each detected face box by this share on every side


class EnhanceParams(BaseModel):
    """Parameters of the `enhance` pipeline."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(
        description="Media id of the photo to enhance (RGB or RGBA).",
        examples=["med_3f9a1c2b7d4e"],
    )
    model: ModelName = Field(
        default="realesr-animevideov3",
        description=(
            "realesr-animevideov3: fast, cleans noise and compression artefacts (1 credit); "
            "realesrgan-x4plus: slower, restores more photo texture (2 credits)."
        ),
        examples=["realesr-animevideov3"],
    )
    strength: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Blend of the enhanced image over the original: 1 = fully enhanced.",
        examples=[1.0],
    )
    face_boost: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description=(
            "Extra sharpening inside faces found by MediaPipe face detection (unsharp mask "
            "amount 0-1.5x); 0 skips face detection."
        ),
        examples=[0.5],
    )
    tile: int = Field(
        default=192,
        ge=32,
        le=512,
        description="Tile size in input pixels; smaller tiles use less memory, larger run faster.",
        examples=[192],
    )
    output_format: Literal["png", "jpg", "webp"] = Field(
        default="jpg",
        description="Encoding of the result. jpg has no alpha: transparency is flattened on white.",
        examples=["jpg", "png"],
    )
    quality: Quality = 92


class EnhancePipeline:
    """Real-ESRGAN at 1x (run at the network's scale, then brought back) plus face sharpening."""

    name: ClassVar[str] = "enhance"
    description: ClassVar[str] = (
        "Enhance a photo at its own size: Real-ESRGAN removes noise, blur and compression "
        "artefacts; faces get extra sharpening."
    )
    Params: ClassVar[type[BaseModel]] = EnhanceParams
    # Perfect's table: AI Photo Enhance.
    input_limit: ClassVar[InputLimit | None] = PHOTO_EFFECT

    def cost(self, params: EnhanceParams) -> int:
        return COST[params.model]

    def run(self, params: EnhanceParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load inputs and check the job fits upscale's limits at the network's scale
        src = ctx.load_image(params.image)
        rgb, alpha = split_alpha(src)
        stem, native = MODEL_FILES[(params.model, 1)]
        check_size(rgb.size, native=native, model=params.model, scale=1)

        # 2. Infer tile by tile (progress per tile), then back to the input's size
        with ctx.models.load(stem, task=UPSCALE) as net:
            up = upscale_tiled(net, rgb, scale=native, tile=params.tile, ctx=ctx)
        enhanced = np.asarray(up.resize(rgb.size, Image.Resampling.LANCZOS), dtype=np.float32)

        # 3. Sharpen faces, blend by strength
        faces: list[tuple[int, int, int, int]] = []
        if params.face_boost > 0:
            faces = face_boxes(ctx.models, np.asarray(rgb))
            enhanced = _sharpen_faces(enhanced, faces, amount=1.5 * params.face_boost)
        original = np.asarray(rgb, dtype=np.float32)
        mixed = enhanced * params.strength + original * (1.0 - params.strength)
        out = Image.fromarray(np.clip(mixed + 0.5, 0, 255).astype(np.uint8), "RGB")
        if alpha is not None:
            out.putalpha(alpha)
            if params.output_format == "jpg":
                out = flatten_on_white(out)

        # 4. Save outputs
        ctx.save_image(out, format=params.output_format, quality=params.quality)
        return {
            "width": out.width,
            "height": out.height,
            "model": params.model,
            "faces": len(faces),
        }


def face_boxes(models: ModelProvider, rgb: Array) -> list[tuple[int, int, int, int]]:
    """Face boxes (x0, y0, x1, y1) in pixels from the manager's MediaPipe face detection
    (full range), grown by _FACE_MARGIN and clipped."""
    h, w = rgb.shape[:2]
    try:
        with models.load(FACE_DETECTION_MODEL, task=FACE_DETECTION) as detector:
            found = detector.process(np.ascontiguousarray(rgb)).detections or []
    except PixelForgeError as e:
        if e.code != ErrorCode.model_unavailable:
            raise
        raise PixelForgeError(e.code, f"{e.message}; or pass face_boost 0") from e
    out = []
    for det in found:
        box = det.location_data.relative_bounding_box
        mx, my = box.width * _FACE_MARGIN, box.height * _FACE_MARGIN
        x0, y0 = max(0.0, box.xmin - mx), max(0.0, box.ymin - my)
        x1 = min(1.0, box.xmin + box.width + mx)
        y1 = min(1.0, box.ymin + box.height + my)
        if x1 > x0 and y1 > y0:
            out.append((round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)))
    return out


def _sharpen_faces(img: Array, faces: list[tuple[int, int, int, int]], amount: float) -> Array:
    """Unsharp mask blended in through a soft ellipse over each face."""
    import cv2

    if not faces or amount <= 0:
        return img
    out = img.copy()
    for x0, y0, x1, y1 in faces:
        if x1 - x0 < 8 or y1 - y0 < 8:
            continue
        patch = img[y0:y1, x0:x1]
        sigma = max(1.0, (x1 - x0) / 150)
        sharp = patch + amount * (patch - cv2.GaussianBlur(patch, (0, 0), sigma))
        ellipse = np.zeros(patch.shape[:2], np.float32)
        centre = ((x1 - x0) // 2, (y1 - y0) // 2)
        axes = ((x1 - x0) * 2 // 5, (y1 - y0) * 2 // 5)
        cv2.ellipse(ellipse, centre, axes, 0, 0, 360, 1.0, -1)
        mask: Array = cv2.GaussianBlur(ellipse, (0, 0), max(1.0, (x1 - x0) / 12))[..., None]
        out[y0:y1, x0:x1] = sharp * mask + out[y0:y1, x0:x1] * (1.0 - mask)
    return out
