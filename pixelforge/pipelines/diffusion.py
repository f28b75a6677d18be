"""Pieces every diffusion pipeline shares: sizes, styles, LoRAs, seeds, step callbacks."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import ModelProfile
from pixelforge.pipelines.contract import JobCanceled, RunContext

AspectRatio = Literal["1:1", "16:9", "9:16", "4:3", "3:4", "square", "portrait", "landscape"]
_RATIOS = {
    "1:1": (1, 1),
    "square": (1, 1),
    "16:9": (16, 9),
    "landscape": (16, 9),
    "9:16": (9, 16),
    "portrait": (9, 16),
    "4:3": (4, 3),
    "3:4": (3, 4),
}
MAX_SIDE = 2048
MAX_PIXELS = 2048 * 2048

# Approximate SD latent -> RGB projection for previews (no VAE decode; a few ms a step).
_LATENT_RGB = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)


class LoraRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=100, description="a LoRA template id (GET /v1/lora-templates)")
    strength: float = Field(1.0, ge=0.0, le=2.0)


class GenerationParams(BaseModel):
    """The knobs every diffusion pipeline takes."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=2000, examples=["a lighthouse at dusk"])
    negative_prompt: str | None = Field(None, max_length=2000, examples=["blurry, lowres"])
    model: str | None = Field(None, max_length=100, description="model id; default per task")
    steps: int | None = Field(None, ge=1, le=150, description="default: the model's")
    guidance: float | None = Field(None, ge=0.0, le=30.0, description="CFG scale")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="0 = random; the used seed is returned")
    style: str | None = Field(None, max_length=100, examples=["neon-punk"])
    loras: list[LoraRef] = Field(default_factory=list, max_length=4)
    output_format: Literal["png", "jpg", "webp"] = "png"
    preview_every: int = Field(0, ge=0, le=50, description="a preview image every N steps")
    fast_decode: bool = Field(
        False,
        description="decode with the model's tiny VAE (TAESD) when pulled: much faster, "
        "slightly softer; ignored when it is not on disk",
    )


def resolve_size(
    width: int | None, height: int | None, aspect: str | None, *, base_w: int, base_h: int
) -> tuple[int, int]:
    """Explicit size wins; else the aspect ratio at the model's native area; multiples of 8."""
    fw, fh = float(base_w), float(base_h)
    if width is not None or height is not None:
        fw, fh = float(width or base_w), float(height or base_h)
    elif aspect is not None:
        rw, rh = _RATIOS[aspect]
        area = base_w * base_h
        fw, fh = math.sqrt(area * rw / rh), math.sqrt(area * rh / rw)
    w, h = max(8, int(fw) // 8 * 8), max(8, int(fh) // 8 * 8)
    if max(w, h) > MAX_SIDE or w * h > MAX_PIXELS:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"width/height: {w}x{h} is too large; at most {MAX_SIDE} px a side",
        )
    return w, h


def fit_to_multiple(img: Image.Image, size: tuple[int, int] | None = None) -> Image.Image:
    """Resize to `size` (or the image's own size) rounded down to multiples of 8."""
    w, h = size or img.size
    w, h = max(8, w // 8 * 8), max(8, h // 8 * 8)
    if max(w, h) > MAX_SIDE:
        scale = MAX_SIDE / max(w, h)
        w, h = max(8, int(w * scale) // 8 * 8), max(8, int(h * scale) // 8 * 8)
    return img if img.size == (w, h) else img.resize((w, h), Image.Resampling.LANCZOS)


def styled_prompt(ctx: RunContext, params: GenerationParams) -> tuple[str, str, str | None]:
    """(prompt, negative, preferred model) after the style preset and LoRA triggers."""
    prompt, negative, model = params.prompt, params.negative_prompt or "", params.model
    if params.style:
        preset = ctx.catalog.style(params.style)
        if preset is None:
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"style: {params.style!r} is not a style; see GET /v1/styles",
            )
        prompt, negative = preset.apply(prompt, negative)
        model = model or preset.model
    for ref in params.loras:
        tpl = ctx.catalog.lora(ref.id)
        if tpl is not None and tpl.trigger:
            prompt = f"{prompt}, {tpl.trigger}"
    return prompt, negative, model


@contextmanager
def loras_applied(pipe: Any, ctx: RunContext, refs: list[LoraRef]) -> Iterator[None]:
    """Load the requested LoRAs at their strengths for one call, then unload them.

    The pipeline object is shared through the model cache, so adapters never outlive the job.
    """
    if not refs:
        yield
        return
    names, weights = [], []
    try:
        for i, ref in enumerate(refs):
            tpl = ctx.catalog.lora(ref.id)
            if tpl is None:
                raise PixelForgeError(
                    ErrorCode.invalid_parameter,
                    f"loras[{i}].id: {ref.id!r} is not a LoRA template; see GET /v1/lora-templates",
                )
            name = f"pf_{i}"
            kwargs = {"weight_name": tpl.weight_name} if tpl.weight_name else {}
            try:
                pipe.load_lora_weights(tpl.source, adapter_name=name, **kwargs)
            except (OSError, ValueError) as e:
                raise PixelForgeError(
                    ErrorCode.model_unavailable, f"LoRA {ref.id!r} could not be loaded: {e}"
                ) from None
            names.append(name)
            weights.append(ref.strength)
        pipe.set_adapters(names, adapter_weights=weights)
        yield
    finally:
        if names:
            pipe.unload_lora_weights()


def generators(seed: int, count: int) -> list[Any]:
    """One CPU generator per image (seed, seed+1, ...): each image reproducible on its own."""
    import torch

    return [torch.Generator("cpu").manual_seed((seed + i) % 2**32) for i in range(count)]


def sampling(profile: ModelProfile, steps: int | None, guidance: float | None) -> tuple[int, float]:
    """Steps and guidance scale: the request's where given, else the model's defaults."""
    return steps or profile.default_steps, (
        profile.default_guidance if guidance is None else guidance
    )


def run_args(ctx: RunContext, *, num_images: int = 1, preview_every: int = 0) -> dict[str, Any]:
    """The arguments every diffusers call here shares: one seeded generator per image, and
    progress, previews and cancel between steps."""
    return {
        "num_images_per_prompt": num_images,
        "generator": generators(ctx.seed, num_images),
        "callback_on_step_end": step_callback(ctx, preview_every),
        "callback_on_step_end_tensor_inputs": ["latents"],
    }


def latents_preview(latents: Any) -> Image.Image | None:
    """A rough RGB picture of SD-style 4-channel latents, without running the VAE."""
    import torch

    if latents.ndim != 4 or latents.shape[1] != 4:
        return None
    proj = torch.tensor(_LATENT_RGB, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latents[0].float().cpu(), proj)
    arr = ((rgb + 1) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    return Image.fromarray(arr).resize((arr.shape[1] * 8, arr.shape[0] * 8))


def step_callback(ctx: RunContext, preview_every: int) -> Callable[..., dict[str, Any]]:
    """diffusers' callback_on_step_end: progress per step, previews, cancel between steps."""

    def on_step_end(pipe: Any, step: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        total = int(getattr(pipe, "num_timesteps", 0) or step + 1)
        preview = None
        if preview_every and (step + 1) % preview_every == 0 and "latents" in kwargs:
            preview = latents_preview(kwargs["latents"])
        ctx.progress(step + 1, total, preview)  # raises JobCanceled when canceled
        return kwargs

    return on_step_end


def batch_step_callback(ctxs: list[RunContext]) -> Callable[..., dict[str, Any]]:
    """Progress for every job of a batch; the call stops only once all are canceled."""
    alive = [True] * len(ctxs)

    def on_step_end(pipe: Any, step: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        total = int(getattr(pipe, "num_timesteps", 0) or step + 1)
        for i, ctx in enumerate(ctxs):
            if alive[i]:
                try:
                    ctx.progress(step + 1, total)
                except JobCanceled:
                    alive[i] = False  # its result is discarded; the others go on
        if not any(alive):
            raise JobCanceled()
        return kwargs

    return on_step_end


def save_images(ctx: RunContext, images: list[Image.Image], fmt: str) -> list[str]:
    return [ctx.save_image(img, format=fmt) for img in images]
