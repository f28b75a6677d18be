"""Text to image with a diffusion model (sd-turbo by default), styles and LoRA templates."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from pixelforge.models.base import TEXT_TO_IMAGE
from pixelforge.pipelines.base import RunContext
from pixelforge.pipelines.diffusion import (
    AspectRatio,
    GenerationParams,
    generators,
    loras_applied,
    resolve_size,
    save_images,
    step_callback,
    styled_prompt,
)


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

    def cost(self, params: TextToImageParams) -> int:
        return params.num_images

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
        steps = params.steps or profile.default_steps
        guidance = profile.default_guidance if params.guidance is None else params.guidance

        # 2. Denoise
        with (
            ctx.models.load(profile.id, task=TEXT_TO_IMAGE) as pipe,
            loras_applied(pipe, ctx, params.loras),
        ):
            images = pipe(
                prompt=prompt,
                negative_prompt=negative or None,
                width=width,
                height=height,
                num_inference_steps=steps,
                guidance_scale=guidance,
                num_images_per_prompt=params.num_images,
                generator=generators(ctx.seed, params.num_images),
                callback_on_step_end=step_callback(ctx, params.preview_every),
                callback_on_step_end_tensor_inputs=["latents"],
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
