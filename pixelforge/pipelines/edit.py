"""Instruction edits ("make it winter"): InstructPix2Pix-family models."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from pixelforge.models.base import EDIT
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


class EditParams(GenerationParams):
    prompt: str = Field(
        min_length=1, max_length=2000, description="the instruction", examples=["make it winter"]
    )
    image: MediaRef = Field(description="media id of the image to edit")
    image_guidance: float = Field(
        1.5, ge=0.0, le=10.0, description="how closely to keep the input image"
    )
    num_images: int = Field(1, ge=1, le=4)


class EditPipeline:
    name: ClassVar[str] = "edit"
    description: ClassVar[str] = "Edit an image by instruction. 1 credit per image."
    Params: ClassVar[type[BaseModel]] = EditParams
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: EditParams) -> int:
        return params.num_images

    def run(self, params: EditParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load inputs
        image = fit_to_multiple(ctx.load_image(params.image).convert("RGB"))
        prompt, negative, model_id = styled_prompt(ctx, params)
        profile = ctx.models.profile(model_id, task=EDIT)
        steps, guidance = sampling(profile, params.steps, params.guidance)

        # 2. Denoise conditioned on the image and the instruction. The edit families name
        # their guidance knobs differently: pix2pix has a separate image guidance, Qwen's
        # true CFG takes a negative prompt, Kontext has neither.
        family_args: dict[str, Any] = {}
        family = profile.family.removeprefix("tiny-")
        if family == "instruct-pix2pix":
            family_args = {
                "image_guidance_scale": params.image_guidance,
                "negative_prompt": negative or None,
            }
        elif family == "qwen-image-edit":
            family_args = {"true_cfg_scale": guidance, "negative_prompt": negative or " "}
        with ctx.models.load(profile.id, task=EDIT) as pipe, loras_applied(pipe, ctx, params.loras):
            images = pipe(
                prompt=prompt,
                image=image,
                num_inference_steps=steps,
                guidance_scale=guidance,
                **family_args,
                **run_args(ctx, num_images=params.num_images, preview_every=params.preview_every),
            ).images

        # 3. Save outputs
        save_images(ctx, images, params.output_format)
        return {
            "model": profile.id,
            "width": image.width,
            "height": image.height,
            "steps": steps,
            "seeds": [ctx.seed + i for i in range(len(images))],
        }
