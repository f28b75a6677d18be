"""Background removal, blur and replacement around the subject of a photo: the person by
MediaPipe (bundled), or any foreground by a downloaded matting model (BiRefNet, U2-Net)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import MATTING
from pixelforge.models.onnx_model import OnnxModel
from pixelforge.pipelines.contract import MediaRef, OutputFormat, Quality, RunContext
from pixelforge.pipelines.limits import PHOTO_EFFECT, InputLimit
from pixelforge.pipelines.limits import check_long_side as _check_side

Array = np.ndarray[Any, Any]
# Perfect's documented limit for these effects; it also bounds a job's memory (~2 GB).
# The bundled MediaPipe selfie segmentation models; any other name is a matting model id.
_MEDIAPIPE: dict[str, Literal[0, 1]] = {"mediapipe": 0, "general": 0, "landscape": 1}
NO_PERSON = (
    "image: no person found; background removal, blur and replacement work on photos of "
    "people (a face or upper body must be visible)"
)
NO_SUBJECT = "image: the matting model found no foreground subject in this photo"
# Below this share of the image a matte is noise, not a subject.
_MIN_SUBJECT_AREA = 0.002


class _PersonParams(BaseModel):
    """The fields every background pipeline shares: the photo and how its matte is cut."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(
        description="Media id of a photo of a person (RGB; an alpha channel is ignored).",
        examples=["med_3f9a1c2b7d4e"],
    )
    model: str = Field(
        default="mediapipe",
        min_length=1,
        max_length=100,
        description=(
            "What cuts the matte. Bundled, always available, people only: mediapipe (MediaPipe "
            "selfie segmentation, 256x256; 'general' is the same model) or landscape "
            "(144x256, a little faster on wide frames). Or the id of a downloaded matting "
            "model (GET /v1/models, task matting), e.g. birefnet (best edges and hair), "
            "u2net or u2netp, after `pixelforge models pull <id>`: these cut out any "
            "foreground subject, not only people."
        ),
        examples=["mediapipe", "birefnet"],
    )
    threshold: float = Field(
        default=0.5,
        ge=0.05,
        le=0.95,
        description=(
            "Person probability above which a pixel belongs to the person, before the edges "
            "are refined. Lower keeps more (hair, loose clothes), higher cuts tighter."
        ),
        examples=[0.5],
    )
    feather: float = Field(
        default=0.0,
        ge=0.0,
        le=50.0,
        description="Extra softening of the matte's edge: Gaussian sigma in pixels (0 = none).",
        examples=[0.0, 2.0],
    )
    spill_suppression: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description=(
            "How much of the old background's colour is taken out of the person's soft "
            "edges (0 = keep the edge pixels as they are, 1 = full estimate)."
        ),
        examples=[0.5],
    )


class RemoveBackgroundParams(_PersonParams):
    """Parameters of the `remove_background` pipeline."""

    output_format: Literal["png", "webp"] = Field(
        default="png",
        description="png or webp, both with an alpha channel. jpg is refused: it has no alpha.",
        examples=["png", "webp"],
    )

    @field_validator("output_format", mode="before")
    @classmethod
    def _no_jpeg(cls, value: object) -> object:
        if isinstance(value, str) and value.lower() in ("jpg", "jpeg"):
            raise ValueError(
                "jpg has no alpha channel, so it cannot hold a cut-out; use png or webp "
                "(or replace_background with a colour for an opaque result)"
            )
        return value


class BlurBackgroundParams(_PersonParams):
    """Parameters of the `blur_background` pipeline."""

    strength: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description=(
            "Blur of the background: Gaussian sigma = strength x 2.5% of the longest side "
            "(1.0 on a 1024 px photo: 25.6 px). 0 returns the photo unchanged."
        ),
        examples=[0.5],
    )
    output_format: OutputFormat = "jpg"
    quality: Quality = 92


class ReplaceBackgroundParams(_PersonParams):
    """Parameters of the `replace_background` pipeline."""

    background_color: str | None = Field(
        default=None,
        pattern=r"^#[0-9a-fA-F]{6}$",
        description="New background as a colour, #rrggbb. Give this or background_image.",
        examples=["#2e86de"],
    )
    background_image: MediaRef | None = Field(
        default=None,
        description=(
            "Media id of a new background photo; it is scaled to cover the frame and "
            "centre-cropped. Give this or background_color."
        ),
        examples=["med_8a1b2c3d4e5f"],
    )
    output_format: OutputFormat = "jpg"
    quality: Quality = 92

    @model_validator(mode="after")
    def _one_background(self) -> ReplaceBackgroundParams:
        if (self.background_color is None) == (self.background_image is None):
            raise ValueError("give exactly one of background_color and background_image")
        return self


class RemoveBackgroundPipeline:
    """Cut the person out: RGBA with the refined matte as alpha."""

    name: ClassVar[str] = "remove_background"
    description: ClassVar[str] = (
        "Remove the background behind a person: png/webp with the person's matte as alpha "
        "(MediaPipe selfie segmentation, edges refined with a guided filter). With a "
        "downloaded matting model (model=birefnet, u2net, ...) any foreground subject."
    )
    Params: ClassVar[type[BaseModel]] = RemoveBackgroundParams
    # Perfect's table: AI Photo Background Removal.
    input_limit: ClassVar[InputLimit | None] = PHOTO_EFFECT

    def cost(self, params: RemoveBackgroundParams) -> int:
        return 1

    def run(self, params: RemoveBackgroundParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load the photo and cut the person's matte
        src = ctx.load_image(params.image)
        rgb, alpha = _person_matte(src, params, ctx)
        ctx.progress(1, 2)

        # 2. Clean the edge colours; an input alpha still hides what it hid
        fg = _foreground(rgb, alpha, amount=params.spill_suppression)
        if src.mode == "RGBA":
            alpha = alpha * (np.asarray(src.getchannel("A"), dtype=np.float32) / 255.0)
        out = np.dstack([fg, alpha[..., None]])
        ctx.progress(2, 2)

        # 3. Save outputs
        ctx.save_image(Image.fromarray(_to_uint8(out), "RGBA"), format=params.output_format)
        return _result(alpha, params.output_format, params.model)


class BlurBackgroundPipeline:
    """Keep the person sharp and blur what is behind them."""

    name: ClassVar[str] = "blur_background"
    description: ClassVar[str] = (
        "Blur the background behind a person (portrait mode); the person stays sharp and the "
        "blur never smears the person's colours into the background."
    )
    Params: ClassVar[type[BaseModel]] = BlurBackgroundParams
    # Perfect's table: AI Photo Background Blur.
    input_limit: ClassVar[InputLimit | None] = PHOTO_EFFECT

    def cost(self, params: BlurBackgroundParams) -> int:
        return 1

    def run(self, params: BlurBackgroundParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load the photo and cut the person's matte
        rgb, alpha = _person_matte(ctx.load_image(params.image), params, ctx)
        ctx.progress(1, 2)

        # 2. Blur the background alone (the person is left out of the average), composite
        sigma = params.strength * 0.025 * max(rgb.shape[:2])
        background = _blur_excluding(rgb, 1.0 - alpha, sigma) if sigma >= 0.3 else rgb
        fg = _foreground(rgb, alpha, amount=params.spill_suppression)
        out = _composite(fg, background, alpha)
        ctx.progress(2, 2)

        # 3. Save outputs
        img = Image.fromarray(_to_uint8(out), "RGB")
        ctx.save_image(img, format=params.output_format, quality=params.quality)
        return {**_result(alpha, params.output_format, params.model), "sigma": round(sigma, 2)}


class ReplaceBackgroundPipeline:
    """Put the person in front of a colour or another photo."""

    name: ClassVar[str] = "replace_background"
    description: ClassVar[str] = (
        "Replace the background behind a person with a colour or another photo (scaled to "
        "cover); soft edges, with the old background's colour taken out of them."
    )
    Params: ClassVar[type[BaseModel]] = ReplaceBackgroundParams
    # Perfect's table: AI Photo Background Change.
    input_limit: ClassVar[InputLimit | None] = PHOTO_EFFECT

    def cost(self, params: ReplaceBackgroundParams) -> int:
        return 1

    def run(self, params: ReplaceBackgroundParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load inputs and cut the person's matte
        rgb, alpha = _person_matte(ctx.load_image(params.image), params, ctx)
        h, w = alpha.shape
        if params.background_image is not None:
            backdrop = _cover(ctx.load_image(params.background_image), (w, h))
        else:
            color = params.background_color or "#000000"
            rgb_color = [int(color[i : i + 2], 16) / 255.0 for i in (1, 3, 5)]
            backdrop = np.broadcast_to(np.asarray(rgb_color, dtype=np.float32), (h, w, 3))
        ctx.progress(1, 2)

        # 2. Composite the spill-suppressed person over the new background
        fg = _foreground(rgb, alpha, amount=params.spill_suppression)
        out = _composite(fg, backdrop, alpha)
        ctx.progress(2, 2)

        # 3. Save outputs
        img = Image.fromarray(_to_uint8(out), "RGB")
        ctx.save_image(img, format=params.output_format, quality=params.quality)
        return _result(alpha, params.output_format, params.model)


def _person_matte(src: Image.Image, params: _PersonParams, ctx: RunContext) -> tuple[Array, Array]:
    """(RGB float32 0..1, alpha float32 0..1); fails with a clear code when nobody is there."""
    from pixelforge.vision.segmentation import find_person, refine_matte

    _check_side(src)
    rgb = np.asarray(src.convert("RGB"), dtype=np.uint8)
    if params.model in _MEDIAPIPE:
        alpha = find_person(
            ctx.models,
            rgb,
            model=_MEDIAPIPE[params.model],
            threshold=params.threshold,
            feather=params.feather,
        )
        if alpha is None:
            raise PixelForgeError(ErrorCode.invalid_parameter, NO_PERSON)
    else:
        with ctx.models.load(params.model, task=MATTING) as net:
            prob = _model_matte(net, rgb)
        alpha = refine_matte(rgb, prob, threshold=params.threshold, feather=params.feather)
        if float(np.mean(alpha > 0.5)) < _MIN_SUBJECT_AREA:
            raise PixelForgeError(ErrorCode.invalid_parameter, NO_SUBJECT)
    return rgb.astype(np.float32) / 255.0, alpha


def _model_matte(net: OnnxModel, rgb: Array) -> Array:
    """Foreground probability float32 [H, W] from an ONNX matting model: the photo at the
    network's input size, normalised as its profile says; the map (sigmoid or stretched as
    the profile says) resized back to the photo's size."""
    import cv2

    prob: Array = net.activate(net.run(net.image_tensor(rgb)))
    h, w = rgb.shape[:2]
    if prob.shape != (h, w):
        prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(prob, 0.0, 1.0).astype(np.float32)


def _foreground(rgb: Array, alpha: Array, *, amount: float) -> Array:
    """The person's own colours in the soft edge: I = aF + (1-a)B solved for F with B taken
    from the solid background nearby; where alpha is too small for that to be stable, the
    colour of the solid person nearby. `amount` blends that estimate with the input."""
    if amount <= 0:
        return rgb
    sigma = max(2.0, max(alpha.shape) / 150)
    near_fg = _blur_excluding(rgb, (alpha > 0.98).astype(np.float32), sigma)
    near_bg = _blur_excluding(rgb, (alpha < 0.02).astype(np.float32), sigma)
    a = alpha[..., None]
    solved = (rgb - (1.0 - a) * near_bg) / np.maximum(a, 0.05)
    trust = np.clip((a - 0.15) / 0.35, 0.0, 1.0)  # 0 below alpha 0.15, 1 above 0.5
    estimate = np.clip(trust * solved + (1.0 - trust) * near_fg, 0.0, 1.0)
    edge = ((alpha > 0.02) & (alpha < 0.98))[..., None]
    out: Array = np.where(edge, rgb + amount * (estimate - rgb), rgb)
    return out


def _blur_excluding(rgb: Array, weight: Array, sigma: float) -> Array:
    """Gaussian blur of rgb in which each pixel counts by `weight` (normalised convolution),
    so excluded pixels lend no colour. Large sigmas run on a smaller copy: a blur that wide
    loses nothing to the resampling. Where no weighted pixel is near, rgb is returned."""
    import cv2

    h, w = weight.shape
    factor = max(1, int(sigma // 4))
    small = (max(1, w // factor), max(1, h // factor))
    num = rgb * weight[..., None]
    den = weight
    if factor > 1:
        num = cv2.resize(num, small, interpolation=cv2.INTER_AREA)
        den = cv2.resize(den, small, interpolation=cv2.INTER_AREA)
    s = sigma / factor
    num = cv2.GaussianBlur(num, (0, 0), sigmaX=s)
    den = cv2.GaussianBlur(den, (0, 0), sigmaX=s)
    if factor > 1:
        num = cv2.resize(num, (w, h), interpolation=cv2.INTER_LINEAR)
        den = cv2.resize(den, (w, h), interpolation=cv2.INTER_LINEAR)
    den = den[..., None]
    out: Array = np.where(den > 1e-3, num / np.maximum(den, 1e-3), rgb)
    return out


def _composite(fg: Array, bg: Array, alpha: Array) -> Array:
    a = alpha[..., None]
    out: Array = fg * a + bg * (1.0 - a)
    return out


def _cover(img: Image.Image, size: tuple[int, int]) -> Array:
    """img scaled to cover `size` (w, h) and centre-cropped; transparency flattened on white."""
    if img.mode == "RGBA":
        flat = Image.new("RGB", img.size, (255, 255, 255))
        flat.paste(img, mask=img.getchannel("A"))
        img = flat
    w, h = size
    scale = max(w / img.width, h / img.height)
    scaled = (max(w, round(img.width * scale)), max(h, round(img.height * scale)))
    img = img.convert("RGB").resize(scaled, Image.Resampling.LANCZOS)
    left, top = (scaled[0] - w) // 2, (scaled[1] - h) // 2
    cropped = img.crop((left, top, left + w, top + h))
    return np.asarray(cropped, dtype=np.float32) / 255.0


def _to_uint8(x: Array) -> Array:
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _result(alpha: Array, fmt: str, model: str) -> dict[str, Any]:
    h, w = alpha.shape
    return {
        "width": w,
        "height": h,
        "format": fmt,
        "model": "mediapipe" if model == "general" else model,
        "person_fraction": round(float(np.mean(alpha > 0.5)), 4),
    }
