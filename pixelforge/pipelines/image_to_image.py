"""Image to image: re-imagine a picture guided by a prompt, keeping `1 - strength` of it."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from pixelforge.models.base import IMAGE_TO_IMAGE
from pixelforge.pipelines.contract import MediaRef, RunContext
from pixelforge.pipelines.diffusion import (
    AspectRatio,
    GenerationParams,
    fit_to_multiple,
    loras_applied,
    resolve_size,
    run_args,
    sampling,
    save_images,
    styled_prompt,
)
from pixelforge.pipelines.limits import InputLimit


class ImageToImageParams(GenerationParams):
    image: MediaRef = Field(description="media id of the source image")
    strength: float = Field(
        0.7, gt=0.0, le=1.0, description="near 0 keeps the image, 1 repaints it"
    )
    width: int | None = Field(None, ge=32, le=2048, description="default: the image's size")
    height: int | None = Field(None, ge=32, le=2048)
    aspect_ratio: AspectRatio | None = None
    num_images: int = Field(1, ge=1, le=4)


class ImageToImagePipeline:
    name: ClassVar[str] = "image_to_image"
    description: ClassVar[str] = (
        "Transform an image with a prompt; strength sets how much changes. 1 credit per image."
    )
    Params: ClassVar[type[BaseModel]] = ImageToImageParams
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: ImageToImageParams) -> int:
        return params.num_images

    def run(self, params: ImageToImageParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load inputs and resolve the model and size
        source = ctx.load_image(params.image).convert("RGB")
        prompt, negative, model_id = styled_prompt(ctx, params)
        profile = ctx.models.profile(model_id, task=IMAGE_TO_IMAGE)
        if params.width or params.height or params.aspect_ratio:
            size = resolve_size(
                params.width,
                params.height,
                params.aspect_ratio,
                base_w=source.width,
                base_h=source.height,
            )
            source = fit_to_multiple(source, size)
        else:
            source = fit_to_multiple(source)
        steps, guidance = sampling(profile, params.steps, params.guidance)
        # diffusers runs int(steps * strength) steps: raise `steps` so that is at least one.
        steps = max(steps, math.ceil(1 / params.strength))

        # 2. Denoise from the noised source
        with (
            ctx.models.load(
                profile.id, task=IMAGE_TO_IMAGE, fast_decoder=params.fast_decode
            ) as pipe,
            loras_applied(pipe, ctx, params.loras),
        ):
            images = pipe(
                prompt=prompt,
                negative_prompt=negative or None,
                image=source,
                strength=params.strength,
                num_inference_steps=steps,
                guidance_scale=guidance,
                **run_args(ctx, num_images=params.num_images, preview_every=params.preview_every),
            ).images

        # 3. Save outputs
        save_images(ctx, images, params.output_format)
        return {
            "model": profile.id,
            "width": source.width,
            "height": source.height,
            "steps": steps,
            "strength": params.strength,
            "seeds": [ctx.seed + i for i in range(len(images))],
        }
