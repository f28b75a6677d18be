"""Colour correction (white balance, exposure, saturation, contrast) and relighting (CLAHE)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.pipelines.contract import MediaRef, OutputFormat, Quality, RunContext
from pixelforge.pipelines.limits import JPG_PNG, PHOTO_EFFECT, InputLimit
from pixelforge.pipelines.limits import check_long_side as _check_side

Array = np.ndarray[Any, Any]
# Perfect's documented limit for these effects; it also bounds a job's memory (~2 GB).
_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)  # Rec. 709 / sRGB primaries


class CorrectColorParams(BaseModel):
    """Parameters of the `correct_color` pipeline."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(description="Media id of the photo.", examples=["med_3f9a1c2b7d4e"])
    white_balance: Literal["none", "gray_world", "white_patch"] = Field(
        default="gray_world",
        description=(
            "gray_world: the scene's average is neutral grey (good for busy scenes); "
            "white_patch: its brightest tones are white (good with a white object or sky); "
            "none: keep the colours. Both work on linear light."
        ),
        examples=["gray_world"],
    )
    white_patch_percentile: float = Field(
        default=99.0,
        ge=90.0,
        le=100.0,
        description="white_patch: the per-channel percentile taken as white (ignores speculars).",
    )
    exposure: float = Field(
        default=0.0,
        ge=-3.0,
        le=3.0,
        description="Exposure change in stops (EV): +1 doubles the light, -1 halves it.",
        examples=[0.5],
    )
    saturation: float = Field(
        default=1.0,
        ge=0.0,
        le=3.0,
        description="Colourfulness multiplier: 0 = greyscale, 1 = unchanged.",
        examples=[1.1],
    )
    contrast: float = Field(
        default=1.0,
        ge=0.0,
        le=3.0,
        description="Contrast multiplier around the photo's mean brightness: 1 = unchanged.",
        examples=[1.1],
    )
    output_format: OutputFormat = "jpg"
    quality: Quality = 92


class RelightParams(BaseModel):
    """Parameters of the `relight` pipeline."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(description="Media id of the photo.", examples=["med_3f9a1c2b7d4e"])
    clip_limit: float = Field(
        default=2.0,
        ge=0.5,
        le=10.0,
        description=(
            "CLAHE contrast limit: how far local contrast may be stretched (1-2 natural, "
            "4+ dramatic, noise shows)."
        ),
        examples=[2.0],
    )
    tile_grid: int = Field(
        default=8,
        ge=2,
        le=32,
        description="CLAHE tiles per side: more tiles = more local (and more halo-prone).",
        examples=[8],
    )
    shadows: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="Lift of dark regions (0 = none, 1 = dark areas up to about 2.5x brighter).",
        examples=[0.3],
    )
    highlights: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description="Recovery of bright regions (0 = none, 1 = strongest pull-down).",
        examples=[0.2],
    )
    output_format: OutputFormat = "jpg"
    quality: Quality = 92


class CorrectColorPipeline:
    """Global colour correction in linear light."""

    name: ClassVar[str] = "correct_color"
    description: ClassVar[str] = (
        "Correct a photo's colour: white balance (grey world or white patch), exposure in "
        "stops, saturation and contrast."
    )
    Params: ClassVar[type[BaseModel]] = CorrectColorParams
    # Perfect's table: AI Photo Color Correction.
    input_limit: ClassVar[InputLimit | None] = PHOTO_EFFECT

    def cost(self, params: CorrectColorParams) -> int:
        return 1

    def run(self, params: CorrectColorParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load inputs (an alpha channel is kept as it is)
        src = ctx.load_image(params.image)
        _check_side(src)
        rgb = np.asarray(src.convert("RGB"), dtype=np.float32) / 255.0
        ctx.progress(1, 3)

        # 2. White balance and exposure in linear light, where light adds up
        linear = _to_linear(rgb)
        gains = _white_balance_gains(linear, params.white_balance, params.white_patch_percentile)
        linear = linear * (gains * 2.0**params.exposure)
        out = _to_srgb(np.clip(linear, 0.0, 1.0))
        ctx.progress(2, 3)

        # 3. Contrast around the mean brightness, saturation around each pixel's luma
        luma = out @ _LUMA
        if params.contrast != 1.0:
            mean = float(luma.mean())
            out = (out - mean) * params.contrast + mean
            luma = (luma - mean) * params.contrast + mean
        if params.saturation != 1.0:
            out = luma[..., None] + (out - luma[..., None]) * params.saturation
        img = _image(out, src, params.output_format)
        ctx.progress(3, 3)

        # 4. Save outputs
        ctx.save_image(img, format=params.output_format, quality=params.quality)
        return {
            "width": img.width,
            "height": img.height,
            "white_balance_gains": [round(float(g), 4) for g in gains],
        }


class RelightPipeline:
    """Local contrast and shadow/highlight recovery on the lightness channel."""

    name: ClassVar[str] = "relight"
    description: ClassVar[str] = (
        "Relight a photo: lift shadows and recover highlights relative to their surroundings, "
        "then raise local contrast with CLAHE on the lightness channel (colours untouched)."
    )
    Params: ClassVar[type[BaseModel]] = RelightParams
    # Perfect's table: AI Photo Lighting.
    input_limit: ClassVar[InputLimit | None] = InputLimit(min_short_side=256, formats=JPG_PNG)

    def cost(self, params: RelightParams) -> int:
        return 1

    def run(self, params: RelightParams, ctx: RunContext) -> dict[str, Any]:
        import cv2

        from pixelforge.vision.segmentation import guided_filter

        # 1. Load inputs; work on Lab lightness (0..1) so hues stay where they are
        src = ctx.load_image(params.image)
        _check_side(src)
        rgb = np.asarray(src.convert("RGB"), dtype=np.float32) / 255.0
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
        lightness = lab[..., 0] / 100.0
        ctx.progress(1, 3)

        # 2. Shadows and highlights, weighted by an edge-aware local brightness (a guided
        #    filter rather than a blur, so bright and dark regions do not bleed: no halos)
        side = max(lightness.shape)
        base = np.clip(
            guided_filter(
                lightness,
                lightness,
                radius=max(2, round(side / 50)),
                eps=0.01,
                subsample=max(1, side // 1024),
            ),
            0.0,
            1.0,
        )
        lit = lightness * (1.0 + 1.5 * params.shadows * (1.0 - base) ** 2)
        lit = 1.0 - (1.0 - np.clip(lit, 0.0, 1.0)) * (1.0 + 1.5 * params.highlights * base**2)
        ctx.progress(2, 3)

        # 3. Local contrast: CLAHE on the 8-bit lightness
        clahe = cv2.createCLAHE(
            clipLimit=params.clip_limit, tileGridSize=(params.tile_grid, params.tile_grid)
        )
        l8 = np.clip(lit * 255.0 + 0.5, 0, 255).astype(np.uint8)
        lab[..., 0] = clahe.apply(l8).astype(np.float32) * (100.0 / 255.0)
        out = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
        img = _image(out, src, params.output_format)
        ctx.progress(3, 3)

        # 4. Save outputs
        ctx.save_image(img, format=params.output_format, quality=params.quality)
        return {
            "width": img.width,
            "height": img.height,
            "mean_lightness_before": round(float(lightness.mean() * 100), 2),
            "mean_lightness_after": round(float(lab[..., 0].mean()), 2),
        }


def _white_balance_gains(linear: Array, method: str, percentile: float) -> Array:
    """Per-channel gains that make the chosen reference neutral, normalised to keep the
    luminance of that reference."""
    if method == "none":
        return np.ones(3, dtype=np.float32)
    flat = linear.reshape(-1, 3)
    gray_world = method == "gray_world"
    ref = flat.mean(axis=0) if gray_world else np.percentile(flat, percentile, axis=0)
    ref = np.maximum(ref, 1e-4)
    gains: Array = (float(ref @ _LUMA) / ref).astype(np.float32)
    return gains


def _to_linear(srgb: Array) -> Array:
    out: Array = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    return out


def _to_srgb(linear: Array) -> Array:
    out: Array = np.where(
        linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055
    )
    return out


def _image(rgb: Array, src: Image.Image, fmt: str) -> Image.Image:
    """float RGB 0..1 -> PIL, with the source's alpha put back where the format holds it
    (jpg: flattened on white, as the media store does)."""
    img = Image.fromarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    if src.mode != "RGBA":
        return img
    if fmt == "jpg":
        flat = Image.new("RGB", img.size, (255, 255, 255))
        flat.paste(img, mask=src.getchannel("A"))
        return flat
    img.putalpha(src.getchannel("A"))
    return img
