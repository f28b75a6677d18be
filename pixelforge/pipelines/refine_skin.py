"""Smooth the skin of every face in a photo, keeping eyes, brows, lips and fine texture."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.pipelines.contract import MediaRef, RunContext
from pixelforge.pipelines.limits import InputLimit
from pixelforge.vision.face import ANY_FACE, Face, analyze_faces, check_faces, feather, region_mask

# Sizes in eye distances (outer corner to outer corner), so a face smooths the same way at
# any resolution. The smoothing runs where the eye distance is _WORK_EYES pixels.
_WORK_EYES = 100.0
_SMOOTH_SPACE = 0.08  # bilateral filter's spatial sigma
_SMOOTH_COLOUR = 24.0  # bilateral filter's colour sigma, in 0-255 levels
_PORES = 0.02  # the finest detail (pores) is what a blur of this sigma removes
_KEEP_TEXTURE = 0.35  # fraction of that detail added back, so skin does not look plastic
_FEATHER = 0.06
_MARGIN = 0.6  # crop around each face's box


class RefineSkinParams(BaseModel):
    """Parameters of the `refine_skin` pipeline."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(
        description="Media id of a photo with one or more faces.", examples=["med_3f9a1c2b7d4e"]
    )
    strength: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="0 leaves the skin as it is; 1 smooths it fully (texture is still kept).",
        examples=[0.5],
    )
    output_format: Literal["png", "jpg", "webp"] = Field(
        default="png",
        description="Encoding of the result. jpg has no alpha: transparency is dropped.",
        examples=["png"],
    )


class RefineSkinPipeline:
    """Edge-preserving skin smoothing inside the face mesh's skin mask."""

    name: ClassVar[str] = "refine_skin"
    description: ClassVar[str] = (
        "Skin refiner: smooths blemishes and uneven skin on every face (bilateral filter with "
        "frequency separation, so pores stay), leaving eyes, brows, lips, hair and background "
        "untouched. strength 0-1. error_no_face when the photo has no face."
    )
    Params: ClassVar[type[BaseModel]] = RefineSkinParams
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: RefineSkinParams) -> int:
        return 1

    def run(self, params: RefineSkinParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load the photo and find its faces
        img = ctx.load_image(params.image)
        faces = analyze_faces(ctx.models, img)
        check_faces(faces, ANY_FACE, what="the image")
        rgb = np.asarray(img.convert("RGB")).copy()
        ctx.progress(1, len(faces) + 1)

        # 2. Smooth each face's skin and blend it in by strength inside its feathered mask
        for i, face in enumerate(faces, start=1):
            x0, y0, x1, y1 = _crop_box(face, img.size)
            crop = rgb[y0:y1, x0:x1].astype(np.float32)
            mask = region_mask(face, img.size, "skin")[y0:y1, x0:x1]
            weight = feather(mask, face.eye_distance * _FEATHER)[..., None] * params.strength
            crop += weight * (_refined(crop, face.eye_distance) - crop)
            rgb[y0:y1, x0:x1] = np.clip(crop, 0, 255).round().astype(np.uint8)
            ctx.progress(i + 1, len(faces) + 1)

        # 3. Save outputs (alpha is kept for png/webp)
        result = Image.fromarray(rgb)
        if img.mode == "RGBA" and params.output_format != "jpg":
            result.putalpha(img.getchannel("A"))
        ctx.save_image(result, format=params.output_format)
        return {
            "width": result.width,
            "height": result.height,
            "faces": [{"box": list(f.box)} for f in faces],
        }


def _crop_box(face: Face, size: tuple[int, int]) -> tuple[int, int, int, int]:
    x, y, w, h = face.box
    mx, my = round(w * _MARGIN), round(h * _MARGIN)
    return max(0, x - mx), max(0, y - my), min(size[0], x + w + mx), min(size[1], y + h + my)


def _refined(crop: np.ndarray[Any, Any], eye_distance: float) -> np.ndarray[Any, Any]:
    """The crop with its skin smoothed by frequency separation: the low frequencies go
    through an edge-preserving filter (at a working scale: they hold no fine detail), and
    only part of the finest detail (pores) is added back."""
    import cv2

    h, w = crop.shape[:2]
    low = cv2.GaussianBlur(crop, (0, 0), max(0.6, _PORES * eye_distance))
    pores = crop - low
    scale = min(1.0, _WORK_EYES / eye_distance)
    small = low if scale == 1.0 else cv2.resize(low, None, fx=scale, fy=scale)
    sigma = max(1.0, _SMOOTH_SPACE * eye_distance * scale)
    smooth = cv2.bilateralFilter(small, d=-1, sigmaColor=_SMOOTH_COLOUR, sigmaSpace=sigma)
    if scale != 1.0:
        smooth = cv2.resize(smooth, (w, h), interpolation=cv2.INTER_CUBIC)
    refined: np.ndarray[Any, Any] = smooth + _KEEP_TEXTURE * pores
    return refined
