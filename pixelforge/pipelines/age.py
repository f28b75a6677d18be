"""Make a portrait look younger or older: the face (and with some targets the hair) repainted
by the inpainting model, the eyes kept where they are."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from pixelforge.models.base import INPAINT
from pixelforge.pipelines.contract import RunContext
from pixelforge.pipelines.limits import PORTRAIT_EDIT, InputLimit
from pixelforge.pipelines.portrait import (
    PortraitEditParams,
    edit_prompt,
    portrait_face,
    repaint,
    save_like,
)
from pixelforge.vision.regions import coverage, face_edit_mask, hair_mask

# A full repaint of a face loses who it is; the styles say how far each target goes.
_DEFAULT_STRENGTH = 0.75
_FEATHER = 0.15  # in eye distances: the face's edge fades into the cheeks and hairline


class AgePipeline:
    """Face-region inpainting toward an age target."""

    name: ClassVar[str] = "age"
    description: ClassVar[str] = (
        "Age changer: repaints the face from the mesh's oval (jaw line, cheeks and skin), "
        "keeping the eyes in place, toward an age target style (child, young adult, "
        "middle-aged, senior; targets with `hair` in their params repaint the hair too) or a "
        "free prompt. strength: how far the face changes (default: the style's). The "
        "portrait needs exactly one face facing the camera; the rest of the photo stays as "
        "it was. Styles: GET /v1/styles?task=age. 1 credit."
    )
    Params: ClassVar[type[BaseModel]] = PortraitEditParams
    # Not in Perfect's documented table; the same reading as its hair effects.
    input_limit: ClassVar[InputLimit | None] = PORTRAIT_EDIT
    default_style: ClassVar[str] = "senior"

    def cost(self, params: PortraitEditParams) -> int:
        return 1

    def run(self, params: PortraitEditParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Resolve the target and the model first: both fail without touching the photo
        prompt = edit_prompt(
            ctx,
            params,
            task=self.name,
            default_style=self.default_style,
            default_strength=_DEFAULT_STRENGTH,
        )
        profile = ctx.models.profile(prompt.model, task=INPAINT)

        # 2. Find the one face; the area is its oval without the eyes (plus the hair)
        img = ctx.load_image(params.image)
        face = portrait_face(ctx.models, img, self)
        rgb = img.convert("RGB")
        hair = hair_mask(ctx.models, rgb, face) if prompt.style_params.get("hair") else None
        mask = face_edit_mask(face, img.size, hair)

        # 3. Repaint around the face and paste back
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
            "face": {"box": list(face.box)},
        }
