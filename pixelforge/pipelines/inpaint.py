"""Inpainting (repaint the white part of a mask) and outpainting (extend the canvas)."""

from __future__ import annotations

from typing import Any, ClassVar

from PIL import Image, ImageFilter
from pydantic import BaseModel, Field

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import INPAINT
from pixelforge.pipelines.contract import MediaRef, RunContext
from pixelforge.pipelines.diffusion import (
    GenerationParams,
    fit_to_multiple,
    loras_applied,
    run_args,
    sampling,
    save_images,
    styled_prompt,
)
from pixelforge.pipelines.limits import InputLimit


class InpaintParams(GenerationParams):
    image: MediaRef = Field(description="media id of the image")
    mask: MediaRef = Field(description="media id of the mask: white = repaint, black = keep")
    strength: float = Field(1.0, ge=0.0, le=1.0)
    num_images: int = Field(1, ge=1, le=4)


class OutpaintParams(GenerationParams):
    image: MediaRef = Field(description="media id of the image to extend")
    left: int = Field(0, ge=0, le=1024)
    right: int = Field(0, ge=0, le=1024)
    top: int = Field(0, ge=0, le=1024)
    bottom: int = Field(0, ge=0, le=1024)
    num_images: int = Field(1, ge=1, le=4)


def _paint(
    ctx: RunContext,
    params: GenerationParams,
    image: Image.Image,
    mask: Image.Image,
    *,
    strength: float,
    num_images: int,
) -> dict[str, Any]:
    prompt, negative, model_id = styled_prompt(ctx, params)
    profile = ctx.models.profile(model_id, task=INPAINT)
    steps, guidance = sampling(profile, params.steps, params.guidance)
    with ctx.models.load(profile.id, task=INPAINT) as pipe, loras_applied(pipe, ctx, params.loras):
        images = pipe(
            prompt=prompt,
            negative_prompt=negative or None,
            image=image,
            mask_image=mask,
            width=image.width,
            height=image.height,
            strength=strength,
            num_inference_steps=steps,
            guidance_scale=guidance,
            **run_args(ctx, num_images=num_images, preview_every=params.preview_every),
        ).images
    save_images(ctx, images, params.output_format)
    return {
        "model": profile.id,
        "width": image.width,
        "height": image.height,
        "steps": steps,
        "seeds": [ctx.seed + i for i in range(len(images))],
    }


class InpaintPipeline:
    name: ClassVar[str] = "inpaint"
    description: ClassVar[str] = (
        "Repaint the white area of a mask from a prompt. 1 credit per image."
    )
    Params: ClassVar[type[BaseModel]] = InpaintParams
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: InpaintParams) -> int:
        return params.num_images

    def run(self, params: InpaintParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load inputs: the mask must cover the image exactly
        source = ctx.load_image(params.image).convert("RGB")
        mask = ctx.load_image(params.mask).convert("L")
        if mask.size != source.size:
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"mask: its size {mask.size} differs from the image's {source.size}",
            )
        image = fit_to_multiple(source)
        mask = mask.resize(image.size, Image.Resampling.NEAREST)
        # 2. Denoise and 3. save
        return _paint(
            ctx, params, image, mask, strength=params.strength, num_images=params.num_images
        )


class OutpaintPipeline:
    name: ClassVar[str] = "outpaint"
    description: ClassVar[str] = (
        "Extend an image beyond its borders (padding + inpainting). 1 credit per image."
    )
    Params: ClassVar[type[BaseModel]] = OutpaintParams
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: OutpaintParams) -> int:
        return params.num_images

    def run(self, params: OutpaintParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Pad the canvas: the new border starts as a blurred stretch of the edge
        src = ctx.load_image(params.image).convert("RGB")
        pad = (params.left, params.top, params.right, params.bottom)
        if not any(pad):
            raise PixelForgeError(
                ErrorCode.invalid_parameter, "left/right/top/bottom: extend at least one side"
            )
        w, h = src.width + pad[0] + pad[2], src.height + pad[1] + pad[3]
        canvas = src.resize((w, h), Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(16))
        canvas.paste(src, (pad[0], pad[1]))
        mask = Image.new("L", (w, h), 255)
        # A few pixels of overlap let the model blend the seam.
        keep = (pad[0] + 4, pad[1] + 4, pad[0] + src.width - 4, pad[1] + src.height - 4)
        mask.paste(0, keep)
        canvas, mask = fit_to_multiple(canvas), fit_to_multiple(mask)
        # 2. Denoise the border and 3. save
        return _paint(ctx, params, canvas, mask, strength=1.0, num_images=params.num_images)
