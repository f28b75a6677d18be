"""Classical photo filters (OpenCV): comic, cartoon, sketch, line art, pixel art, paint."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.pipelines.contract import MediaRef, OutputFormat, Quality, RunContext
from pixelforge.pipelines.limits import InputLimit
from pixelforge.pipelines.limits import check_long_side as _check_side

Array = np.ndarray[Any, Any]
# Perfect's documented limit for these effects; it also bounds a job's memory (~2 GB).
FilterName = Literal[
    "comic", "cartoon", "pencil_sketch", "line_art", "pixel_art", "oil", "watercolor"
]
FILTERS: dict[str, str] = {
    "comic": "Bold black ink outlines over a few flat colours (k-means palette), like a comic.",
    "cartoon": "Smoothed, posterised colours with thin dark outlines.",
    "pencil_sketch": "Greyscale pencil drawing with shading (OpenCV pencilSketch).",
    "line_art": "Clean black lines on white (difference of Gaussians), for colouring pages.",
    "pixel_art": "Big square pixels in a small palette (pixel_size, colors).",
    "oil": "Painterly: edge-preserving smoothing with boosted brush detail.",
    "watercolor": "Soft washes of colour with darkened edges (OpenCV stylization).",
}
# The OpenCV filters' spatial sigmas are tuned for about this side; they scale with the image.
_BASE_SIDE = 1024
_DEFAULT_COLORS = {"comic": 8, "cartoon": 8, "pixel_art": 16}


class StylizeParams(BaseModel):
    """Parameters of the `stylize` pipeline."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(description="Media id of the photo.", examples=["med_3f9a1c2b7d4e"])
    filter: FilterName = Field(
        description="The look: " + "; ".join(f"{k}: {v}" for k, v in FILTERS.items()),
        examples=["comic"],
    )
    strength: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Blend of the filtered image over the photo: 1 = fully filtered.",
        examples=[1.0],
    )
    colors: int | None = Field(
        default=None,
        ge=2,
        le=64,
        description=(
            "Palette size for comic (default 8), cartoon (levels per channel, default 8) "
            "and pixel_art (default 16); ignored by the others."
        ),
        examples=[8],
    )
    pixel_size: int | None = Field(
        default=None,
        ge=2,
        le=256,
        description="pixel_art: side of one big pixel; omit for 1/64 of the longest side.",
        examples=[16],
    )
    line_width: int | None = Field(
        default=None,
        ge=1,
        le=15,
        description="comic, cartoon, line_art: outline width in pixels; omit to scale with size.",
        examples=[2],
    )
    output_format: OutputFormat = "png"
    quality: Quality = 92


class StylizePipeline:
    """One of a few classical photo filters, chosen by name."""

    name: ClassVar[str] = "stylize"
    description: ClassVar[str] = (
        "Turn a photo into a comic, cartoon, pencil sketch, line art, pixel art, oil or "
        "watercolour picture (OpenCV filters; same size as the input)."
    )
    Params: ClassVar[type[BaseModel]] = StylizeParams
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: StylizeParams) -> int:
        return 1

    def run(self, params: StylizeParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load inputs (an alpha channel is put back afterwards)
        src = ctx.load_image(params.image)
        _check_side(src)
        rgb = np.asarray(src.convert("RGB"), dtype=np.uint8)
        ctx.progress(1, 3)

        # 2. Filter, then blend over the photo by strength
        # A fixed seed: a filter is a function of the photo, the same every time.
        rng = np.random.default_rng(0)
        out = _apply(params, rgb, rng)
        if params.strength < 1.0:
            mixed = out.astype(np.float32) * params.strength + rgb * (1.0 - params.strength)
            out = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(out, "RGB")
        if src.mode == "RGBA" and params.output_format != "jpg":
            img.putalpha(src.getchannel("A"))
        ctx.progress(2, 3)

        # 3. Save outputs
        ctx.save_image(img, format=params.output_format, quality=params.quality)
        ctx.progress(3, 3)
        return {"width": img.width, "height": img.height, "filter": params.filter}


def _apply(params: StylizeParams, rgb: Array, rng: np.random.Generator) -> Array:
    import cv2

    h, w = rgb.shape[:2]
    unit = max(h, w) / _BASE_SIDE  # 1.0 at 1024 px
    line = params.line_width or max(1, round(2 * unit))
    colors = params.colors or _DEFAULT_COLORS.get(params.filter, 8)
    sigma_s = float(np.clip(60 * unit, 5, 200))
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if params.filter == "comic":
        flat = _quantize(_smooth(rgb, unit), colors, rng)
        flat = _saturate(flat, 1.25)
        return _ink(flat, _edges(rgb, unit, line, bold=True))
    if params.filter == "cartoon":
        smooth = _smooth(rgb, unit, passes=4)
        step = 256 / colors
        poster = (np.floor(smooth / step) * step + step / 2).astype(np.uint8)
        return _ink(poster, _edges(rgb, unit, line, bold=False))
    if params.filter == "pencil_sketch":
        grey, _ = cv2.pencilSketch(bgr, sigma_s=sigma_s, sigma_r=0.07, shade_factor=0.05)
        return np.asarray(cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB))
    if params.filter == "line_art":
        return _line_art(rgb, unit, line)
    if params.filter == "pixel_art":
        size = params.pixel_size or max(2, round(max(h, w) / 64))
        return _pixelate(rgb, size, colors, rng)
    if params.filter == "oil":
        painted = cv2.edgePreservingFilter(
            bgr, flags=cv2.RECURS_FILTER, sigma_s=sigma_s, sigma_r=0.4
        )
        detailed = cv2.detailEnhance(painted, sigma_s=max(2.0, 10 * unit), sigma_r=0.15)
        return np.asarray(cv2.cvtColor(detailed, cv2.COLOR_BGR2RGB))
    washed = cv2.stylization(bgr, sigma_s=sigma_s, sigma_r=0.45)  # watercolor
    return np.asarray(cv2.cvtColor(washed, cv2.COLOR_BGR2RGB))


def _smooth(rgb: Array, unit: float, passes: int = 2) -> Array:
    """Repeated bilateral filtering at half size: flat regions, kept edges, and 4x cheaper."""
    import cv2

    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
    d = max(5, round(9 * unit) | 1)
    for _ in range(passes):
        small = cv2.bilateralFilter(small, d, 40, 7 * unit + 3)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))


def _edges(rgb: Array, unit: float, line: int, *, bold: bool) -> Array:
    """Ink mask (True = ink): adaptive threshold of a median-blurred grey, thickened."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    grey = cv2.medianBlur(grey, max(3, round(7 * unit) | 1))
    block = max(5, round(9 * unit) | 1)
    ink = cv2.adaptiveThreshold(
        grey, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, 2 if bold else 4
    )
    # Specks of one or two pixels are noise, not lines.
    ink = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    if line > 1:
        ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (line, line)))
    return np.asarray(ink > 0)


def _ink(colour: Array, ink: Array) -> Array:
    out = colour.copy()
    out[ink] = (out[ink] * 0.1).astype(np.uint8)  # near black, a trace of the colour under it
    return out


def _line_art(rgb: Array, unit: float, line: int) -> Array:
    """Black lines where a difference of Gaussians dips (the dark side of an edge)."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    sigma = max(0.6, 1.2 * unit) * (1 + (line - 1) * 0.5)
    fine = cv2.GaussianBlur(grey, (0, 0), sigma)
    coarse = cv2.GaussianBlur(grey, (0, 0), sigma * 1.6)
    dog = fine - coarse
    lines = np.clip(1.0 + np.tanh(60.0 * (dog + 0.01)), 0.0, 1.0)  # XDoG soft threshold
    lines[dog > -0.01] = 1.0
    out = (lines * 255.0).astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=2)


def _pixelate(rgb: Array, size: int, colors: int, rng: np.random.Generator) -> Array:
    import cv2

    h, w = rgb.shape[:2]
    small = cv2.resize(
        rgb, (math.ceil(w / size), math.ceil(h / size)), interpolation=cv2.INTER_AREA
    )
    small = _quantize(small, colors, rng)
    big = np.repeat(np.repeat(small, size, axis=0), size, axis=1)
    return np.ascontiguousarray(big[:h, :w])


def _quantize(rgb: Array, colors: int, rng: np.random.Generator, iters: int = 12) -> Array:
    """Colour quantisation by k-means (k-means++ seeds, Lloyd steps) on a pixel sample in
    Lab, every pixel then mapped to its nearest centre."""
    import cv2

    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float32)
    sample = lab[rng.choice(len(lab), size=min(len(lab), 20_000), replace=False)]
    k = min(colors, len(np.unique(sample, axis=0)))
    centres = sample[[rng.integers(len(sample))]]
    for _ in range(1, k):
        d2 = ((sample[:, None, :] - centres[None]) ** 2).sum(-1).min(1)
        centres = np.vstack([centres, sample[rng.choice(len(sample), p=d2 / d2.sum())]])
    for _ in range(iters):
        nearest = ((sample[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        for c in range(k):
            members = sample[nearest == c]
            if len(members):
                centres[c] = members.mean(0)
    labels = np.empty(len(lab), dtype=np.int64)
    for start in range(0, len(lab), 262_144):  # bounded memory on large photos
        chunk = lab[start : start + 262_144]
        labels[start : start + len(chunk)] = (
            ((chunk[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        )
    palette = cv2.cvtColor(centres.astype(np.uint8)[None], cv2.COLOR_Lab2RGB)[0]
    return np.asarray(palette[labels].reshape(rgb.shape))


def _saturate(rgb: Array, factor: float) -> Array:
    import cv2

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * factor, 0, 255)
    return np.asarray(cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB))
