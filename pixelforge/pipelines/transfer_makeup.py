"""Copy the lip colour, eyeshadow and blush of a reference portrait onto another portrait."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.pipelines.contract import MediaRef, RunContext
from pixelforge.pipelines.limits import JPG_PNG, InputLimit
from pixelforge.vision.face import (
    Face,
    FaceRequirements,
    Mask,
    Region,
    analyze_faces,
    check_faces,
    feather,
    region_mask,
)

# Perfect Corp's makeup transfer: one face per photo, facing the camera within its limits.
REQUIREMENTS = FaceRequirements(exactly_one=True)
_L_SHARE = 0.5  # lightness moves half-way: a lipstick changes hue far more than brightness
# Feather radius per area, in eye distances: lips have crisp edges, blush has none.
_FEATHER: dict[str, float] = {"lips": 0.03, "eyeshadow": 0.06, "blush": 0.2}
_AREAS = ("lips", "eyeshadow", "blush")

Lab = np.ndarray[Any, Any]


class TransferMakeupParams(BaseModel):
    """Parameters of the `transfer_makeup` pipeline."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(
        description="Media id of the portrait to apply makeup to (one face).",
        examples=["med_3f9a1c2b7d4e"],
    )
    reference: MediaRef = Field(
        description="Media id of a portrait wearing the look to copy (one face).",
        examples=["med_8b1d0e6a2c5f"],
    )
    lips: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Lip colour intensity (0 = off).", examples=[1]
    )
    eyeshadow: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Eyeshadow intensity (0 = off).", examples=[1]
    )
    blush: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Blush intensity (0 = off).", examples=[0.6]
    )
    output_format: Literal["png", "jpg", "webp"] = Field(
        default="png",
        description="Encoding of the result. jpg has no alpha: transparency is dropped.",
        examples=["jpg"],
    )


class TransferMakeupPipeline:
    """Region colour transfer in Lab between two face meshes."""

    name: ClassVar[str] = "transfer_makeup"
    description: ClassVar[str] = (
        "Makeup transfer: measures the reference's lips, eyeshadow and blush against its own "
        "skin, and shifts the same regions of the portrait by that much in Lab colour, with "
        "feathered edges and per-region intensity. Both photos need exactly one face turned "
        "at most 10° up/down, 45° sideways and 15° to a shoulder."
    )
    Params: ClassVar[type[BaseModel]] = TransferMakeupParams
    # Perfect's table: AI Makeup Transfer.
    input_limit: ClassVar[InputLimit | None] = InputLimit(max_long_side=1024, formats=JPG_PNG)

    def cost(self, params: TransferMakeupParams) -> int:
        return 1

    def run(self, params: TransferMakeupParams, ctx: RunContext) -> dict[str, Any]:
        import cv2

        # 1. Load both portraits; each needs exactly one face facing the camera. The work
        #    happens in a window around each face.
        img = ctx.load_image(params.image)
        ref_img = ctx.load_image(params.reference)
        face = check_faces(analyze_faces(ctx.models, img), REQUIREMENTS, what="the image")
        ref = check_faces(analyze_faces(ctx.models, ref_img), REQUIREMENTS, what="the reference")
        rgb = np.asarray(img.convert("RGB"))
        window, ref_window = _window(face, img.size), _window(ref, ref_img.size)
        lab, masks = to_lab(rgb[window]), _regions(face, img.size, window)
        ref_lab = to_lab(np.asarray(ref_img.convert("RGB"))[ref_window])
        ref_masks = _regions(ref, ref_img.size, ref_window)
        ctx.progress(1, 3)

        # 2. Measure each area against its own face's bare skin, in both portraits
        ref_look, own_look = _look(ref_lab, ref_masks), _look(lab, masks)
        ctx.progress(2, 3)

        # 3. Shift each area by the difference, feathered and scaled by its intensity
        intensity = {"lips": params.lips, "eyeshadow": params.eyeshadow, "blush": params.blush}
        applied: dict[str, list[float]] = {}
        for name in _AREAS:
            theirs, ours = ref_look[name], own_look[name]
            if theirs is None or ours is None:
                continue  # the area is too small to see in one of the portraits
            shift = (theirs - ours) * np.array([_L_SHARE, 1, 1], np.float32) * intensity[name]
            # Full strength inside the area, fading out beyond its edge
            soft = feather(masks[name], face.eye_distance * _FEATHER[name])
            weight = np.maximum(soft, masks[name].astype(np.float32) / 255)
            lab += weight[..., None] * shift
            applied[name] = [round(float(v), 2) for v in shift]
        out = rgb.copy()
        out[window] = (
            np.clip(cv2.cvtColor(lab, cv2.COLOR_LAB2RGB) * 255, 0, 255).round().astype(np.uint8)
        )

        # 4. Save outputs (alpha is kept for png/webp)
        result = Image.fromarray(out)
        if img.mode == "RGBA" and params.output_format != "jpg":
            result.putalpha(img.getchannel("A"))
        ctx.save_image(result, format=params.output_format)
        ctx.progress(3, 3)
        return {"width": result.width, "height": result.height, "lab_shift": applied}


def to_lab(rgb: np.ndarray[Any, Any]) -> Lab:
    """8-bit RGB -> float32 Lab (L 0-100, a and b about -127-127)."""
    import cv2

    lab: Lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    return lab


def _window(face: Face, size: tuple[int, int]) -> tuple[slice, slice]:
    """The face's box widened by the blush's feathering, as (rows, columns)."""
    pad = round(face.eye_distance * _FEATHER["blush"] * 1.5)
    x, y, w, h = face.box
    rows = slice(max(0, y - pad), min(size[1], y + h + pad))
    return rows, slice(max(0, x - pad), min(size[0], x + w + pad))


def _regions(face: Face, size: tuple[int, int], window: tuple[slice, slice]) -> dict[str, Mask]:
    regions: dict[str, Region] = {"skin": "skin", "lips": "lips", "eyeshadow": "eyeshadow"}
    regions["blush"] = "cheeks"
    return {name: region_mask(face, size, region)[window] for name, region in regions.items()}


def _look(lab: Lab, masks: dict[str, Mask]) -> dict[str, Lab | None]:
    """Mean Lab colour of lips, eyeshadow and blush areas, each minus the mean colour of
    the bare skin (forehead, nose, chin: skin without the made-up areas)."""
    import cv2

    made_up = cv2.bitwise_or(masks["eyeshadow"], masks["blush"])
    skin = _mean(lab, cv2.subtract(masks["skin"], made_up))
    looks: dict[str, Lab | None] = {}
    for name in _AREAS:
        mean = _mean(lab, masks[name])
        looks[name] = None if mean is None or skin is None else mean - skin
    return looks


def _mean(lab: Lab, mask: Mask) -> Lab | None:
    pixels = lab[mask > 0]
    if len(pixels) < 4:
        return None
    mean: Lab = pixels.mean(axis=0).astype(np.float32)
    return mean
