"""Text to image with a diffusion model (sd-turbo by default), styles and LoRA templates."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from pixelforge.errors import PixelForgeError
from pixelforge.models.base import TEXT_TO_IMAGE
from pixelforge.pipelines.contract import RunContext
from pixelforge.pipelines.diffusion import (
    AspectRatio,
    GenerationParams,
    batch_step_callback,
    generators,
    loras_applied,
    resolve_size,
    run_args,
    sampling,
    save_images,
    styled_prompt,
)
from pixelforge.pipelines.limits import InputLimit


class TextToImageParams(GenerationParams):
    width: int | None = Field(None, ge=32, le=2048, description="default: the model's")
    height: int | None = Field(None, ge=32, le=2048)
    aspect_ratio: AspectRatio | None = Field(None, examples=["16:9"])
    num_images: int = Field(1, ge=1, le=4)


class TextToImagePipeline:
    name: ClassVar[str] = "text_to_image"
    description: ClassVar[str] = (
        "Generate images from a prompt with a diffusion model; styles, LoRA templates, "
        "aspect ratios, seeds. 1 credit per image."
    )
    Params: ClassVar[type[BaseModel]] = TextToImageParams
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: TextToImageParams) -> int:
        return params.num_images

    def batch_key(self, params: TextToImageParams) -> tuple[Any, ...] | None:
        """Jobs with equal keys can share one denoising call (prompts and seeds may differ)."""
        if params.num_images != 1 or params.loras or params.preview_every:
            return None
        return (
            params.model,
            params.style,
            params.width,
            params.height,
            params.aspect_ratio,
            params.steps,
            params.guidance,
            params.fast_decode,
        )

    def run_batch(
        self, batch: list[TextToImageParams], ctxs: list[RunContext]
    ) -> list[dict[str, Any] | PixelForgeError]:
        """One call for several same-shape jobs; each keeps its own seed, image and charge."""
        # 1. Resolve prompts, the shared model and size
        first, ctx0 = batch[0], ctxs[0]
        styled = [styled_prompt(c, p) for p, c in zip(batch, ctxs, strict=True)]
        profile = ctx0.models.profile(styled[0][2], task=TEXT_TO_IMAGE)
        width, height = resolve_size(
            first.width,
            first.height,
            first.aspect_ratio,
            base_w=profile.default_width,
            base_h=profile.default_height,
        )
        steps = first.steps or profile.default_steps
        guidance = profile.default_guidance if first.guidance is None else first.guidance

        # 2. Denoise all prompts together, one generator (seed) per job
        loaded = ctx0.models.load(profile.id, task=TEXT_TO_IMAGE, fast_decoder=first.fast_decode)
        with loaded as pipe:
            images = pipe(
                prompt=[p for p, _, _ in styled],
                negative_prompt=[n for _, n, _ in styled],
                width=width,
                height=height,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=[generators(c.seed, 1)[0] for c in ctxs],
                callback_on_step_end=batch_step_callback(ctxs),
            ).images

        # 3. Save each job's image through its own context
        out: list[dict[str, Any] | PixelForgeError] = []
        for img, p, c, (prompt, _, _) in zip(images, batch, ctxs, styled, strict=True):
            try:
                c.save_image(img, format=p.output_format)
            except PixelForgeError as e:  # e.g. the NSFW gate refused this one image
                out.append(e)
                continue
            out.append(
                {
                    "model": profile.id,
                    "width": width,
                    "height": height,
                    "steps": steps,
                    "guidance": guidance,
                    "seeds": [c.seed],
                    "prompt": prompt,
                    "batch_size": len(batch),
                }
            )
        return out

    def run(self, params: TextToImageParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Resolve the prompt, the model and the size
        prompt, negative, model_id = styled_prompt(ctx, params)
        profile = ctx.models.profile(model_id, task=TEXT_TO_IMAGE)
        width, height = resolve_size(
            params.width,
            params.height,
            params.aspect_ratio,
            base_w=profile.default_width,
            base_h=profile.default_height,
        )
        steps, guidance = sampling(profile, params.steps, params.guidance)

        # 2. Denoise
        with (
            ctx.models.load(
                profile.id, task=TEXT_TO_IMAGE, fast_decoder=params.fast_decode
            ) as pipe,
            loras_applied(pipe, ctx, params.loras),
        ):
            images = pipe(
                prompt=prompt,
                negative_prompt=negative or None,
                width=width,
                height=height,
                num_inference_steps=steps,
                guidance_scale=guidance,
                **run_args(ctx, num_images=params.num_images, preview_every=params.preview_every),
            ).images

        # 3. Save outputs
        save_images(ctx, images, params.output_format)
        return {
            "model": profile.id,
            "width": width,
            "height": height,
            "steps": steps,
            "guidance": guidance,
            "seeds": [ctx.seed + i for i in range(len(images))],
            "prompt": prompt,
        }
