"""Colourise a greyscale photo: classical (from a reference photo and/or colour hints, no
model), or with a downloaded colourisation model (a ControlNet over Stable Diffusion)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import COLORIZE
from pixelforge.pipelines.contract import MediaRef, OutputFormat, Quality, RunContext
from pixelforge.pipelines.limits import PHOTO_EFFECT, InputLimit
from pixelforge.pipelines.limits import check_long_side as _check_side

Array = np.ndarray[Any, Any]
# Perfect's documented limit for these effects; it also bounds a job's memory (~2 GB).
NEEDS_GUIDANCE = (
    "the bundled colouriser is classical and needs guidance: give a colour reference photo "
    "(reference) whose colours it transfers by matching brightness and texture, and/or "
    "colour hints (hints: [{x, y, color}]) that it spreads within the regions they touch; "
    "or name a colourisation model (model, e.g. controlnet-colorize)"
)
CLASSICAL = "classical"
_COLOR_PROMPT = "a color photograph, natural colors, realistic, detailed"
_COLOR_NEGATIVE = "black and white, monochrome, grayscale, sepia, desaturated"
# Chroma scales tried, largest first, to bring an out-of-gamut colour inside the RGB cube
# without touching its lightness (0 always fits: grey).
_GAMUT_SCALES = (0.85, 0.7, 0.55, 0.4, 0.25, 0.1, 0.0)
# Features are matched at this size: texture statistics then mean the same in both photos.
_WORK_SIDE = 512
_L_BINS, _STD_BINS = 32, 16  # the (brightness, local contrast) lookup grid
_STD_WINDOW = 5  # Welsh et al.'s 5x5 neighbourhood, at the working size
_EDGE_COST = 300.0  # geodesic step cost per unit of L gradient (L in 0..1): edges stop hints


class ColorHint(BaseModel):
    """One colour scribble: the region around (x, y) takes this colour's hue."""

    model_config = ConfigDict(extra="forbid")

    x: int = Field(ge=0, description="Column in pixels of the input image.", examples=[120])
    y: int = Field(ge=0, description="Row in pixels of the input image.", examples=[80])
    color: str = Field(
        pattern=r"^#[0-9a-fA-F]{6}$",
        description="#rrggbb; only its hue and saturation are used, brightness stays the photo's.",
        examples=["#c0392b"],
    )


class ColorizeParams(BaseModel):
    """Parameters of the `colorize` pipeline."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(
        description="Media id of the photo to colourise (greyscale; a colour photo is recoloured).",
        examples=["med_3f9a1c2b7d4e"],
    )
    model: str = Field(
        default=CLASSICAL,
        min_length=1,
        max_length=100,
        description=(
            "classical (bundled, always available): colours from reference and/or hints, "
            "one of which is then required. Or a colourisation model (GET /v1/models, task "
            "colorize, e.g. controlnet-colorize after `pixelforge models pull "
            "controlnet-colorize`): it invents plausible colours on its own; hints and "
            "prompt steer it. Either way the photo's lightness is kept exactly."
        ),
        examples=["classical", "controlnet-colorize"],
    )
    prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="With a model: what the photo shows, to steer its colours.",
        examples=["a red tram on a sunny street, blue sky"],
    )
    steps: int | None = Field(
        default=None, ge=1, le=100, description="With a model: denoising steps (default: its own)."
    )
    reference: MediaRef | None = Field(
        default=None,
        description=(
            "Media id of a colour photo of a similar scene (classical only). Each pixel "
            "takes the colour of reference pixels with the same brightness and local texture."
        ),
        examples=["med_8a1b2c3d4e5f"],
    )
    hints: list[ColorHint] = Field(
        default_factory=list,
        max_length=256,
        description=(
            "Colour scribbles. Each spreads along the photo's regions and stops at edges; "
            "with a reference they override it near themselves."
        ),
        examples=[[{"x": 120, "y": 80, "color": "#c0392b"}]],
    )
    hint_radius: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Radius of each hint dot in pixels; omit for about 1% of the longest side.",
    )
    saturation: float = Field(
        default=1.0, ge=0.0, le=3.0, description="Multiplier on the transferred colourfulness."
    )
    output_format: OutputFormat = "jpg"
    quality: Quality = 92

    @model_validator(mode="after")
    def _guided(self) -> ColorizeParams:
        if self.model == CLASSICAL:
            if self.reference is None and not self.hints:
                raise ValueError(NEEDS_GUIDANCE)
            if self.prompt is not None or self.steps is not None:
                raise ValueError(
                    "prompt and steps steer a colourisation model (model=...); the classical "
                    "colouriser takes reference and hints"
                )
        elif self.reference is not None:
            raise ValueError(
                "reference: only the classical colouriser uses one; with a model, steer the "
                "colours with prompt and hints"
            )
        return self


class ColorizePipeline:
    """Reference colour transfer (Welsh-style) plus edge-aware hint propagation."""

    name: ClassVar[str] = "colorize"
    description: ClassVar[str] = (
        "Colourise a black-and-white photo. Classical and honest: colours come from a "
        "reference photo (matched by brightness and texture) and/or colour hints spread "
        "along the photo's regions; the photo's brightness is kept exactly. Without either "
        "it is refused (no learned colouriser is bundled); a downloaded colourisation model "
        "(model=controlnet-colorize) needs neither and keeps the brightness too."
    )
    Params: ClassVar[type[BaseModel]] = ColorizeParams
    # Perfect's table: AI Photo Colorize.
    input_limit: ClassVar[InputLimit | None] = PHOTO_EFFECT

    def cost(self, params: ColorizeParams) -> int:
        return 1

    def run(self, params: ColorizeParams, ctx: RunContext) -> dict[str, Any]:
        import cv2

        from pixelforge.vision.segmentation import guided_filter

        # 1. Load inputs: the photo's lightness is all that is kept of it
        src = ctx.load_image(params.image).convert("RGB")
        _check_side(src)
        w, h = src.size
        lightness = _lab(np.asarray(src))[..., 0]
        work = _fit(src.size, _WORK_SIDE)
        small = cv2.resize(lightness, work, interpolation=cv2.INTER_AREA)
        ctx.progress(1, 4)

        # 2. Colours from the model, or from the reference looked up by (lightness, local
        #    contrast)
        ab = np.zeros((*small.shape, 2), dtype=np.float32)
        if params.model != CLASSICAL:
            ab = _model_colours(ctx, params, src, work)
        elif params.reference is not None:
            ref = ctx.load_image(params.reference).convert("RGB")
            ref_lab = _lab(
                np.asarray(ref.resize(_fit(ref.size, _WORK_SIDE), Image.Resampling.BILINEAR))
            )
            ab = _transfer(small, ref_lab)
        ctx.progress(2, 4)

        # 3. Hints spread along the regions they touch and override the reference near them
        if params.hints:
            radius = params.hint_radius or max(2, round(max(w, h) * 0.01))
            hint_ab, distance = _spread_hints(small, params.hints, radius, (w, h))
            if params.reference is None and params.model == CLASSICAL:
                ab = hint_ab
            else:
                near = np.exp(-distance / (0.08 * max(work)))[..., None]
                ab = near * hint_ab + (1.0 - near) * ab
        ctx.progress(3, 4)

        # 4. Back to full size, edges from the photo's own lightness, and save
        ab = cv2.resize(ab, (w, h), interpolation=cv2.INTER_LINEAR) * params.saturation
        side = max(w, h)
        ab = guided_filter(
            lightness / 100.0,
            ab,
            radius=max(2, round(side / 64)),
            eps=2.5e-3,
            subsample=max(1, side // 1024),
        )
        rgb = _in_gamut_rgb(lightness, ab)
        out = Image.fromarray((rgb * 255.0 + 0.5).astype(np.uint8), "RGB")
        ctx.progress(4, 4)
        ctx.save_image(out, format=params.output_format, quality=params.quality)
        chroma = float(np.mean(np.hypot(ab[..., 0], ab[..., 1])))
        return {"width": w, "height": h, "model": params.model, "mean_chroma": round(chroma, 2)}


def _model_colours(
    ctx: RunContext, params: ColorizeParams, src: Image.Image, work: tuple[int, int]
) -> Array:
    """a/b at the working size from a ControlNet colourisation model: it paints a colour
    photo conditioned on the greyscale one, at its own resolution; only the colours are
    kept (the lightness stays the input's)."""
    from pixelforge.pipelines.diffusion import fit_to_multiple, run_args

    profile = ctx.models.profile(params.model, task=COLORIZE)
    w, h = src.size
    scale = max(profile.default_width, profile.default_height) / max(w, h)
    control = fit_to_multiple(src.convert("L").convert("RGB"), (round(w * scale), round(h * scale)))
    guidance = profile.default_guidance
    with ctx.models.load(profile.id, task=COLORIZE) as pipe:
        painted = pipe(
            prompt=params.prompt or _COLOR_PROMPT,
            negative_prompt=_COLOR_NEGATIVE if guidance > 1.0 else None,
            image=control,
            width=control.width,
            height=control.height,
            num_inference_steps=params.steps or profile.default_steps,
            guidance_scale=guidance,
            **run_args(ctx),
        ).images[0]
    colour = painted.convert("RGB").resize(work, Image.Resampling.BICUBIC)
    ab: Array = _lab(np.asarray(colour))[..., 1:]
    return ab


def _in_gamut_rgb(lightness: Array, ab: Array) -> Array:
    """Lab -> RGB 0..1 keeping each pixel's lightness: a colour outside the RGB cube has its
    chroma reduced (hue kept) until it fits, instead of each channel being clipped, which
    would change its lightness. (OpenCV clips silently, so a colour fits when converting
    back gives the same Lab.)"""
    import cv2

    def convert(lum: Array, chroma: Array) -> tuple[Array, Array]:
        lab = np.dstack([lum, chroma]).astype(np.float32)
        rgb = np.asarray(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB))
        back = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab))
        fits = (np.abs(back[..., 0] - lab[..., 0]) < 0.3) & (
            np.abs(back[..., 1:] - lab[..., 1:]).max(axis=-1) < 1.0
        )
        return rgb, fits

    rgb, fits = convert(lightness, ab)
    flat_l, flat_ab, flat_rgb = lightness.reshape(-1), ab.reshape(-1, 2), rgb.reshape(-1, 3)
    pending = np.flatnonzero(~fits.reshape(-1))
    for s in _GAMUT_SCALES:
        if pending.size == 0:
            break
        trial, ok = convert(flat_l[pending, None], flat_ab[pending, None] * s)
        ok = ok.reshape(-1) | (s == 0.0)
        flat_rgb[pending[ok]] = trial.reshape(-1, 3)[ok]
        pending = pending[~ok]
    out: Array = np.clip(flat_rgb.reshape(rgb.shape), 0.0, 1.0)
    return out


def _transfer(lightness: Array, ref_lab: Array) -> Array:
    """a/b for each pixel from reference pixels of matching (lightness, local std), after
    Welsh et al. (2002): the reference's lightness is remapped to the target's mean and
    spread; a lookup grid over both features holds each cell's mean colour (rescaled to
    the cell's mean chroma, so mixed hues do not wash out), empty cells borrow from the
    nearest filled one, and targets read it bilinearly."""
    import cv2

    ref_l = ref_lab[..., 0]
    spread = (lightness.std() + 1e-6) / (ref_l.std() + 1e-6)
    ref_l = (ref_l - ref_l.mean()) * spread + lightness.mean()
    target_std, ref_std = _local_std(lightness), _local_std(ref_l)
    std_max = max(float(np.percentile(target_std, 99)), 1e-3)

    def coords(lum: Array, std: Array) -> tuple[Array, Array]:
        return (
            np.clip(lum / 100.0 * (_L_BINS - 1), 0, _L_BINS - 1),
            np.clip(std / std_max * (_STD_BINS - 1), 0, _STD_BINS - 1),
        )

    cl, cs = coords(ref_l, ref_std)
    cell = (np.rint(cl).astype(np.int64) * _STD_BINS + np.rint(cs).astype(np.int64)).ravel()
    n = _L_BINS * _STD_BINS
    count = np.bincount(cell, minlength=n).astype(np.float64)
    a, b = ref_lab[..., 1].ravel(), ref_lab[..., 2].ravel()
    mean_a = np.bincount(cell, a, n) / np.maximum(count, 1)
    mean_b = np.bincount(cell, b, n) / np.maximum(count, 1)
    mean_c = np.bincount(cell, np.hypot(a, b), n) / np.maximum(count, 1)
    gain = mean_c / np.maximum(np.hypot(mean_a, mean_b), 1e-3)
    filled = np.flatnonzero(count > 0)
    grid = np.stack(np.divmod(np.arange(n), _STD_BINS), axis=-1).astype(np.float64)
    # Lightness differences count double: a texture mismatch is the lesser evil.
    gap = ((grid[:, None, :] - grid[None, filled, :]) ** 2 * np.array([4.0, 1.0])).sum(-1)
    source = filled[np.argmin(gap, axis=1)]
    table = np.stack([mean_a * gain, mean_b * gain], axis=-1)[source]
    table = table.reshape(_L_BINS, _STD_BINS, 2).astype(np.float32)
    tl, ts = coords(lightness, target_std)
    looked_up = cv2.remap(
        table,
        ts.astype(np.float32),
        tl.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(looked_up, dtype=np.float32)


def _spread_hints(
    lightness: Array, hints: list[ColorHint], radius: int, size: tuple[int, int]
) -> tuple[Array, Array]:
    """(a/b of the geodesically nearest hint, geodesic distance to it) at the working size.
    A step costs 1 + _EDGE_COST x the lightness gradient, so colours fill regions and stop
    at edges (a cheap stand-in for Levin et al.'s optimisation)."""
    import cv2

    h, w = lightness.shape
    scale = w / size[0]
    labels = np.full((h, w), -1, dtype=np.int64)
    colors = np.zeros((len(hints), 2), dtype=np.float32)
    for i, hint in enumerate(hints):
        if hint.x >= size[0] or hint.y >= size[1]:
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"hints[{i}]: ({hint.x}, {hint.y}) lies outside the {size[0]}x{size[1]} image",
            )
        rgb = np.array([[[int(hint.color[j : j + 2], 16) for j in (1, 3, 5)]]], np.uint8)
        colors[i] = _lab(rgb)[0, 0, 1:]
        center = (round(hint.x * scale), round(hint.y * scale))
        dot = np.zeros((h, w), np.uint8)
        cv2.circle(dot, center, max(1, round(radius * scale)), 1, thickness=-1)
        labels[dot > 0] = i
    smooth = cv2.GaussianBlur(lightness / 100.0, (0, 0), sigmaX=1.0)
    gy, gx = np.gradient(smooth)
    cost = 1.0 + _EDGE_COST * np.hypot(gx, gy)
    distance, nearest = _geodesic_voronoi(labels, cost)
    return colors[nearest], distance.astype(np.float32)


def _geodesic_voronoi(labels: Array, cost: Array, passes: int = 2) -> tuple[Array, Array]:
    """Geodesic distance to the nearest seed (labels >= 0) and that seed's label, by raster
    sweeps: rows down then up, each row relaxed from its neighbour row and then scanned both
    ways exactly with a prefix minimum (d[x] = C[x] + min_k (d[k] - C[k]))."""
    h, w = labels.shape
    dist = np.where(labels >= 0, 0.0, np.inf)
    near = labels.copy()
    index = np.arange(w)
    for _ in range(passes):
        for rows in (range(h), range(h - 1, -1, -1)):
            prev = -1
            for y in rows:
                d, lab, c = dist[y], near[y], cost[y]
                if prev >= 0:
                    step = dist[prev] + c
                    better = step < d
                    d[better], lab[better] = step[better], near[prev][better]
                for s in (slice(None), slice(None, None, -1)):
                    ds, ls, cs = d[s], lab[s], c[s]
                    total = np.cumsum(cs)
                    u = ds - total
                    best = np.minimum.accumulate(u)
                    arg = np.maximum.accumulate(np.where(u <= best, index, 0))
                    cand = best + total
                    better = cand < ds
                    ds[better], ls[better] = cand[better], ls[arg][better]
                prev = y
    return dist, np.maximum(near, 0)


def _local_std(lightness: Array) -> Array:
    import cv2

    k = (_STD_WINDOW, _STD_WINDOW)
    mean = cv2.blur(lightness, k)
    var = cv2.blur(lightness * lightness, k) - mean * mean
    return np.sqrt(np.maximum(var, 0.0))


def _lab(rgb: Array) -> Array:
    """CIE Lab (L 0..100) of an RGB uint8 array, in float32."""
    import cv2

    return np.asarray(cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab))


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    w, h = size
    s = min(1.0, side / max(w, h))
    return max(1, round(w * s)), max(1, round(h * s))
