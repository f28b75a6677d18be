"""Portrait repaint helpers shared by the hair, age and extract_clothes pipelines.

The params, the style resolution, the one-face check, and the repaint of a crop pasted back
through a feathered mask, so every pixel beyond the mask's feathering stays as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import INPAINT, ModelProfile, ModelProvider
from pixelforge.pipelines.contract import MediaRef, RunContext
from pixelforge.pipelines.diffusion import fit_to_multiple, run_args, sampling
from pixelforge.pipelines.limits import Limited, check_face_width
from pixelforge.vision.face import (
    Face,
    FaceRequirements,
    Mask,
    analyze_faces,
    check_faces,
    feather,
)

# Perfect Corp's portrait limits: one face, facing the camera.
PORTRAIT = FaceRequirements(exactly_one=True)
BASE_NEGATIVE = "deformed, blurry, lowres, bad anatomy, extra limbs, watermark, text"
_MARGIN = 0.15  # context around the repainted area, as a share of its larger side


class PortraitEditParams(BaseModel):
    """Parameters of the hair and age pipelines."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(
        description="Media id of a portrait: exactly one face, facing the camera.",
        examples=["med_3f9a1c2b7d4e"],
    )
    style: str | None = Field(
        None,
        max_length=100,
        description="A style of this pipeline (GET /v1/styles?task=<pipeline name>); "
        "default: the pipeline's first style when no prompt is given either.",
    )
    prompt: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        description="Free description added to the style's prompt (or used alone).",
        examples=["auburn"],
    )
    negative_prompt: str | None = Field(None, max_length=2000)
    strength: float | None = Field(
        None, ge=0.0, le=1.0, description="How far the area is repainted; default: the style's"
    )
    model: str | None = Field(None, max_length=100, description="inpainting model id")
    steps: int | None = Field(None, ge=1, le=150, description="default: the model's")
    guidance: float | None = Field(None, ge=0.0, le=30.0, description="CFG scale")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="0 = random; the used seed is returned")
    output_format: Literal["png", "jpg", "webp"] = "png"
    preview_every: int = Field(0, ge=0, le=50, description="a preview image every N steps")


@dataclass(frozen=True)
class EditPrompt:
    """What the style and the request resolve to."""

    prompt: str
    negative: str
    style: str | None
    model: str | None
    strength: float
    guidance: float | None
    steps: int | None
    style_params: dict[str, Any]


def edit_prompt(
    ctx: RunContext,
    params: PortraitEditParams,
    *,
    task: str,
    default_style: str,
    default_strength: float = 1.0,
) -> EditPrompt:
    """The style of `task` (named, or the default when neither style nor prompt is given)
    applied to the free prompt; request fields win over the style's own params."""
    name = params.style or (None if params.prompt else default_style)
    negative = ", ".join(p for p in (params.negative_prompt, BASE_NEGATIVE) if p)
    if name is None:
        return EditPrompt(
            str(params.prompt),
            negative,
            None,
            params.model,
            default_strength if params.strength is None else params.strength,
            params.guidance,
            params.steps,
            {},
        )
    preset = ctx.catalog.style(name, task=task)
    if preset is None:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"style: {name!r} is not a {task} style; see GET /v1/styles?task={task}",
        )
    prompt, negative = preset.apply(params.prompt or "", negative)
    extra = dict(preset.params)
    strength = params.strength
    if strength is None:
        strength = float(extra.get("strength", default_strength))
    guidance = params.guidance
    if guidance is None and "guidance" in extra:
        guidance = float(extra["guidance"])
    return EditPrompt(
        _tidy(prompt),
        negative,
        preset.name,
        params.model or preset.model,
        min(1.0, max(0.0, strength)),
        guidance,
        params.steps,
        extra,
    )


def portrait_face(models: ModelProvider, img: Image.Image, pipeline: Limited) -> Face:
    """The one face of a portrait, or error_no_face / error_multiple_people /
    error_large_face_angle; a face under the pipeline's minimum width is error_no_face."""
    face = check_faces(analyze_faces(models, img), PORTRAIT, what="the photo")
    check_face_width(pipeline, face.box[2])
    return face


def repaint(
    ctx: RunContext,
    *,
    profile: ModelProfile,
    image: Image.Image,
    mask: Mask,
    prompt: EditPrompt,
    feather_px: float,
    preview_every: int = 0,
) -> tuple[Image.Image, dict[str, Any]]:
    """Inpaint the white part of `mask` (0/255, the image's size) on a crop around it at
    the model's size, and paste the result back through the feathered mask. Returns the
    RGB image and the facts a result reports."""
    import cv2

    rgb = np.asarray(image.convert("RGB"))
    x0, y0, x1, y1 = _crop_box(mask, feather_px)
    crop, crop_mask = rgb[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    # 1. The crop at the model's size (longer side), in multiples of 8
    side = max(profile.default_width, profile.default_height)
    scale = side / max(x1 - x0, y1 - y0)
    work = fit_to_multiple(
        Image.fromarray(crop), (round((x1 - x0) * scale), round((y1 - y0) * scale))
    )
    small = cv2.resize(crop_mask, work.size, interpolation=cv2.INTER_AREA)
    work_mask = Image.fromarray(np.where(small > 0, 255, 0).astype(np.uint8))
    # 2. Denoise
    steps, guidance = sampling(profile, prompt.steps, prompt.guidance)
    with ctx.models.load(profile.id, task=INPAINT) as pipe:
        painted = pipe(
            prompt=prompt.prompt,
            negative_prompt=prompt.negative or None,
            image=work,
            mask_image=work_mask,
            width=work.width,
            height=work.height,
            strength=prompt.strength,
            num_inference_steps=steps,
            guidance_scale=guidance,
            **run_args(ctx, preview_every=preview_every),
        ).images[0]
    # 3. Paste back: full strength inside the mask, fading out beyond its edge; pixels the
    #    fade does not reach keep their exact values.
    back = np.asarray(painted.convert("RGB").resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS))
    weight = np.maximum(crop_mask.astype(np.float32) / 255, feather(crop_mask, feather_px))
    blended = crop + weight[..., None] * (back.astype(np.float32) - crop)
    out = rgb.copy()
    out[y0:y1, x0:x1] = np.where(
        (weight > 0)[..., None], np.clip(blended, 0, 255).round(), crop
    ).astype(np.uint8)
    info = {
        "model": profile.id,
        "steps": steps,
        "strength": prompt.strength,
        "prompt": prompt.prompt,
        "style": prompt.style,
        "edit_box": [x0, y0, x1 - x0, y1 - y0],
        "seeds": [ctx.seed],
    }
    return Image.fromarray(out), info


def save_like(ctx: RunContext, source: Image.Image, result: Image.Image, output_format: str) -> str:
    """Save `result`, keeping the source's alpha for png/webp."""
    if source.mode == "RGBA" and output_format != "jpg":
        result = result.convert("RGB")
        result.putalpha(source.getchannel("A"))
    return ctx.save_image(result, format=output_format)


def _tidy(prompt: str) -> str:
    """A template filled with an empty prompt leaves stray commas: drop the empty parts."""
    parts = (p.strip() for p in re.split(r",", prompt))
    return ", ".join(p for p in parts if p)


def _crop_box(mask: Mask, feather_px: float) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise PixelForgeError(ErrorCode.invalid_parameter, "nothing to repaint in this photo")
    height, width = mask.shape
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    pad = round(max(x1 - x0, y1 - y0) * _MARGIN + 2 * feather_px) + 2
    return max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)
