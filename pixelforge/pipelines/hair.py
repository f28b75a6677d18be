"""Hair edits on a portrait: new hairstyle, wig, extensions, bangs, volume.

The five pipelines share one flow: find the one face (mesh), derive the hair and the area
the edit repaints (pixelforge.vision.regions), repaint a crop around the head with the
inpainting model and the chosen style's prompt, and paste it back through a feathered mask,
so every pixel beyond the mask's feathering stays as it was (pixelforge.pipelines.portrait,
shared with the `age` and `extract_clothes` pipelines).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from pixelforge.models.base import INPAINT
from pixelforge.pipelines.contract import RunContext
from pixelforge.pipelines.limits import JPG, PORTRAIT_EDIT, InputLimit
from pixelforge.pipelines.portrait import (
    PortraitEditParams,
    edit_prompt,
    portrait_face,
    repaint,
    save_like,
)
from pixelforge.vision.regions import HairEdit, coverage, hair_edit_mask, hair_mask

_FEATHER = 0.12  # feathering of the pasted repaint, in eye distances


class _HairPipeline:
    """One hair edit: the shared flow with its own mask shape, styles and default style."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = PortraitEditParams
    edit: ClassVar[HairEdit]
    default_style: ClassVar[str]
    # Perfect's documented limits for its hair effects (try_wig, not in its table, reads
    # the same).
    input_limit: ClassVar[InputLimit | None] = PORTRAIT_EDIT

    def cost(self, params: PortraitEditParams) -> int:
        return 1

    def run(self, params: PortraitEditParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Resolve the style and the model first: both fail without touching the photo
        prompt = edit_prompt(ctx, params, task=self.name, default_style=self.default_style)
        profile = ctx.models.profile(prompt.model, task=INPAINT)

        # 2. Find the one face, its hair, and the area this edit repaints
        img = ctx.load_image(params.image)
        face = portrait_face(ctx.models, img, self)
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
    # Perfect's table: jpg only for its hairstyle changer.
    input_limit: ClassVar[InputLimit | None] = InputLimit(
        max_long_side=1024, min_face_width=128, formats=JPG
    )
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
