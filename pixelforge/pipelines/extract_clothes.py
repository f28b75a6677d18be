"""Create clothes: cut the outfit out of a photo of a person and complete it, on a clean
background, into a front-view collage (AliveAI's "Create Clothes")."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import INPAINT
from pixelforge.pipelines.contract import RunContext
from pixelforge.pipelines.limits import InputLimit
from pixelforge.pipelines.portrait import PortraitEditParams, edit_prompt, repaint
from pixelforge.vision.face import FaceRequirements, Mask, analyze_faces, check_faces
from pixelforge.vision.pose import extract_pose
from pixelforge.vision.regions import clothes_mask, coverage, shoulders_visible

# One person; the head may be turned (only the clothes are used), and may be absent.
_ONE_PERSON = FaceRequirements(exactly_one=True, max_pitch=None, max_yaw=None, max_roll=None)
_BACKGROUND = (245, 245, 245)
_MIN_COVERAGE = 0.005  # less of the photo than this is no garment to extract
_MARGIN = 0.06  # collage margin around the clothes, as a share of their larger side
_CLOSE = 0.12  # gaps (hands, hair, the neck) closed across, as a share of that side
_EDGE = 3  # px of the clothes' own edge repainted too, so they blend into the background
_FEATHER = 3.0


class ExtractClothesParams(PortraitEditParams):
    """Parameters of the `extract_clothes` pipeline (style: a clothes category)."""


class ExtractClothesPipeline:
    """Pose + person segmentation -> clothes mask -> collage completed by inpainting."""

    name: ClassVar[str] = "extract_clothes"
    description: ClassVar[str] = (
        "Create clothes: finds the person's shoulders and body (MediaPipe Pose), cuts the "
        "clothes out (person segmentation without face, hair and skin), lays them on a clean "
        "background and lets the inpainting model complete what hands, hair or the neck "
        "hid, as a front-view flat lay; style: a clothes category (default outfit; GET "
        "/v1/styles?task=extract_clothes), prompt: words added to it. Outputs: the "
        "collage, then the clothes mask at the photo's size. error_no_shoulder when no "
        "shoulders are seen, error_multiple_people for more than one face. 1 credit."
    )
    Params: ClassVar[type[BaseModel]] = ExtractClothesParams
    input_limit: ClassVar[InputLimit | None] = None
    default_style: ClassVar[str] = "outfit"

    def cost(self, params: ExtractClothesParams) -> int:
        return 1

    def run(self, params: ExtractClothesParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Resolve the category and the model first: both fail without touching the photo.
        #    A free prompt still gets a category: its template asks for the flat lay.
        if params.style is None:
            params = params.model_copy(update={"style": self.default_style})
        prompt = edit_prompt(ctx, params, task=self.name, default_style=self.default_style)
        profile = ctx.models.profile(prompt.model, task=INPAINT)

        # 2. One person with visible shoulders; their clothes
        img = ctx.load_image(params.image)
        rgb = img.convert("RGB")
        faces = analyze_faces(ctx.models, rgb)
        face = check_faces(faces, _ONE_PERSON, what="the photo") if faces else None
        pose = extract_pose(ctx.models, rgb)
        if pose is None or not shoulders_visible(pose):
            raise PixelForgeError(
                ErrorCode.error_no_shoulder,
                "no shoulders found in the photo; use a photo showing the person from the "
                "shoulders down, facing the camera",
            )
        mask = clothes_mask(ctx.models, rgb, pose, face)
        if coverage(mask) < _MIN_COVERAGE:
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                "no clothes found on the person in the photo; use a photo where the outfit "
                "is clearly visible",
            )

        # 3. The clothes on a clean background; the gaps in them are what gets completed
        collage, holes, box = _collage(np.asarray(rgb), mask)
        result, info = repaint(
            ctx,
            profile=profile,
            image=collage,
            mask=holes,
            prompt=prompt,
            feather_px=_FEATHER,
            preview_every=params.preview_every,
        )

        # 4. Save outputs: the collage, then the mask
        ctx.save_image(result, format=params.output_format)
        ctx.save_image(Image.fromarray(mask).convert("RGB"), format="png")
        return {
            **info,
            "width": result.width,
            "height": result.height,
            "mask_coverage": coverage(mask),
            "completed_share": coverage(holes),
            "clothes_box": list(box),
        }


def _collage(rgb: np.ndarray[Any, Any], mask: Mask) -> tuple[Image.Image, Mask, list[int]]:
    """(the clothes cropped onto the background, the area to complete, their box x, y, w, h).
    The area to complete: holes and notches in the clothes' outline (closed across hands,
    hair, the neck opening) and a thin band along their edge."""
    import cv2

    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    side = max(x1 - x0, y1 - y0)
    pad = round(side * _MARGIN) + 4
    height, width = mask.shape
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad)
    crop, cut = rgb[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    collage = np.where((cut > 0)[..., None], crop, np.array(_BACKGROUND, dtype=np.uint8))
    r = max(1, round(side * _CLOSE))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    # Padded by the kernel, so closing does not stick to the crop's border.
    padded = cv2.copyMakeBorder(cut, r, r, r, r, cv2.BORDER_CONSTANT, value=0)
    outline = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, kernel)[r:-r, r:-r]
    outline = _fill_holes(outline)
    band = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _EDGE + 1, 2 * _EDGE + 1))
    holes = cv2.subtract(outline, cv2.erode(cut, band))
    return Image.fromarray(collage.astype(np.uint8)), holes, [x0, y0, x1 - x0, y1 - y0]


def _fill_holes(mask: Mask) -> Mask:
    """`mask` with the enclosed background regions filled."""
    import cv2

    height, width = mask.shape
    flood = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    seeds = np.zeros((height + 4, width + 4), dtype=np.uint8)
    cv2.floodFill(flood, seeds, (0, 0), 255)
    enclosed = cv2.bitwise_not(flood[1:-1, 1:-1])
    filled: Mask = cv2.bitwise_or(mask, enclosed)
    return filled
