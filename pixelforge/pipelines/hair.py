"""Hair edits on a portrait: new hairstyle, wig, extensions, bangs, volume.

The five pipelines share one flow: find the one face (mesh), derive the hair and the area
the edit repaints (pixelforge.vision.regions), repaint a crop around the head with the
inpainting model and the chosen style's prompt, and paste it back through a feathered mask,
so every pixel beyond the mask's feathering stays as it was. The repaint helpers here are
shared with the `age` and `extract_clothes` pipelines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import INPAINT, ModelProfile, ModelProvider
from pixelforge.pipelines.base import MediaRef, RunContext
from pixelforge.pipelines.diffusion import fit_to_multiple, run_args, sampling
from pixelforge.pipelines.limits import check_face_width
from pixelforge.vision.face import (
    Face,
    FaceRequirements,
    Mask,
    analyze_faces,
    check_faces,
    feather,
)
from pixelforge.vision.regions import HairEdit, coverage, hair_edit_mask, hair_mask

# Perfect Corp's portrait limits: one face, facing the camera.
PORTRAIT = FaceRequirements(exactly_one=True)
BASE_NEGATIVE = "deformed, blurry, lowres, bad anatomy, extra limbs, watermark, text"
_FEATHER = 0.12  # feathering of the pasted repaint, in eye distances
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


def portrait_face(models: ModelProvider, img: Image.Image, pipeline: str) -> Face:
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


class _HairPipeline:
    """One hair edit: the shared flow with its own mask shape, styles and default style."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = PortraitEditParams
    edit: ClassVar[HairEdit]
    default_style: ClassVar[str]

    def cost(self, params: PortraitEditParams) -> int:
        return 1

    def run(self, params: PortraitEditParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Resolve the style and the model first: both fail without touching the photo
        prompt = edit_prompt(ctx, params, task=self.name, default_style=self.default_style)
        profile = ctx.models.profile(prompt.model, task=INPAINT)

        # 2. Find the one face, its hair, and the area this edit repaints
        img = ctx.load_image(params.image)
        face = portrait_face(ctx.models, img, self.name)
        rgb = img.convert("RGB")
        hair = hair_mask(ctx.models, rgb, face)
        mask = hair_edit_mask(face, hair, self.edit)

        # 3. Repaint around the head and paste back
        result, info = repaint(
            ctx,
            profile=profile,
            image=rgb,
            mask=mask,
            prompt=prompt,
            feather_px=face.eye_distance * _FEATHER,
            preview_every=params.preview_every,
        )

        # 4. Save outputs
        save_like(ctx, img, result, params.output_format)
        return {
            **info,
            "width": result.width,
            "height": result.height,
            "mask_coverage": coverage(mask),
            "hair_coverage": coverage(hair),
            "face": {"box": list(face.box)},
        }


_COMMON = (
    " The portrait needs exactly one face turned at most 10° up/down, 45° sideways and 15° "
    "to a shoulder; everything outside the feathered hair area stays as it was. Styles: "
    "GET /v1/style-groups and /v1/styles with task={task}. 1 credit."
)


class ChangeHairstylePipeline(_HairPipeline):
    name: ClassVar[str] = "change_hairstyle"
    edit: ClassVar[HairEdit] = "hairstyle"
    default_style: ClassVar[str] = "bob-cut"
    description: ClassVar[str] = (
        "Hairstyle changer: repaints the hair and the room around the head in a chosen "
        "style (female and male groups) or a free prompt." + _COMMON.format(task=name)
    )


class TryWigPipeline(_HairPipeline):
    name: ClassVar[str] = "try_wig"
    edit: ClassVar[HairEdit] = "wig"
    default_style: ClassVar[str] = "wig-platinum-blonde"
    description: ClassVar[str] = (
        "Wig try-on: a wig of a chosen colour or cut over the hair, with room for a larger "
        "shape than the hair underneath." + _COMMON.format(task=name)
    )


class HairExtensionPipeline(_HairPipeline):
    name: ClassVar[str] = "hair_extension"
    edit: ClassVar[HairEdit] = "extension"
    default_style: ClassVar[str] = "shoulder-length"
    description: ClassVar[str] = (
        "Hair extensions: longer hair falling beside the neck onto the shoulders, in a "
        "chosen length." + _COMMON.format(task=name)
    )


class HairBangsPipeline(_HairPipeline):
    name: ClassVar[str] = "hair_bangs"
    edit: ClassVar[HairEdit] = "bangs"
    default_style: ClassVar[str] = "straight-bangs"
    description: ClassVar[str] = (
        "Bangs: a fringe over the forehead, from under the hairline to the brows (which, "
        "like the eyes, stay), in a chosen type." + _COMMON.format(task=name)
    )


class HairVolumePipeline(_HairPipeline):
    name: ClassVar[str] = "hair_volume"
    edit: ClassVar[HairEdit] = "volume"
    default_style: ClassVar[str] = "volume-medium"
    description: ClassVar[str] = (
        "Hair volume: fuller hair within a grown outline of the current hair, at a chosen "
        "level." + _COMMON.format(task=name)
    )
