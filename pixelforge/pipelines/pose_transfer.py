"""Generate images of a new subject in the pose of a reference photo (OpenPose ControlNet)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import POSE_TRANSFER
from pixelforge.pipelines.contract import MediaRef, RunContext
from pixelforge.pipelines.diffusion import (
    GenerationParams,
    loras_applied,
    resolve_size,
    run_args,
    sampling,
    save_images,
    styled_prompt,
)
from pixelforge.pipelines.limits import InputLimit
from pixelforge.vision.pose import draw_openpose, extract_pose

# Fewer visible OpenPose keypoints than this cannot make a limb: nothing to condition on.
_MIN_KEYPOINTS = 2


class PoseTransferParams(GenerationParams):
    pose_image: MediaRef = Field(
        description="Media id of a photo of a person whose pose the output copies.",
        examples=["med_3f9a1c2b7d4e"],
    )
    width: int | None = Field(
        None, ge=32, le=2048, description="default: the reference's aspect at the model's size"
    )
    height: int | None = Field(None, ge=32, le=2048)
    num_images: int = Field(1, ge=1, le=4)
    controlnet_scale: float = Field(
        1.0, ge=0.0, le=2.0, description="how strictly the output follows the pose"
    )


class PoseTransferPipeline:
    name: ClassVar[str] = "pose_transfer"
    description: ClassVar[str] = (
        "Generate images from a prompt in the pose of the person in a reference photo: "
        "MediaPipe finds the pose, an OpenPose ControlNet follows its skeleton (returned as "
        "an extra output). Styles, LoRA templates, seeds. 1 credit per image."
    )
    Params: ClassVar[type[BaseModel]] = PoseTransferParams
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: PoseTransferParams) -> int:
        return params.num_images

    def run(self, params: PoseTransferParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Resolve the prompt and the model; find the pose in the reference
        prompt, negative, model_id = styled_prompt(ctx, params)
        profile = ctx.models.profile(model_id, task=POSE_TRANSFER)
        reference = ctx.load_image(params.pose_image)
        pose = extract_pose(ctx.models, reference)
        if pose is None:
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                "pose_image: no person found; use a photo showing at least a person's head "
                "and shoulders",
            )
        keypoints = [p for p in pose.openpose_keypoints() if p is not None]
        if len(keypoints) < _MIN_KEYPOINTS:
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                "pose_image: too little of the person is visible to copy a pose",
            )

        # 2. Draw the skeleton at the output size
        width, height = _output_size(
            params, reference.size, profile.default_width, profile.default_height
        )
        skeleton = draw_openpose(pose, (width, height))
        steps, guidance = sampling(profile, params.steps, params.guidance)

        # 3. Denoise, following the skeleton
        with (
            ctx.models.load(profile.id, task=POSE_TRANSFER) as pipe,
            loras_applied(pipe, ctx, params.loras),
        ):
            images = pipe(
                prompt=prompt,
                negative_prompt=negative or None,
                image=skeleton,
                width=width,
                height=height,
                num_inference_steps=steps,
                guidance_scale=guidance,
                controlnet_conditioning_scale=params.controlnet_scale,
                **run_args(ctx, num_images=params.num_images, preview_every=params.preview_every),
            ).images

        # 4. Save the images, then the skeleton (lossless, so its lines stay crisp)
        save_images(ctx, images, params.output_format)
        skeleton_id = ctx.save_image(skeleton, format="png")
        return {
            "model": profile.id,
            "width": width,
            "height": height,
            "steps": steps,
            "guidance": guidance,
            "seeds": [ctx.seed + i for i in range(len(images))],
            "prompt": prompt,
            "skeleton": skeleton_id,
        }


def _output_size(
    params: PoseTransferParams, reference: tuple[int, int], base_w: int, base_h: int
) -> tuple[int, int]:
    """Explicit width/height win; a missing side follows the reference's aspect ratio; with
    neither, the reference's aspect at the model's native area."""
    aspect = reference[0] / reference[1]
    width, height = params.width, params.height
    if width is None and height is None:
        area = base_w * base_h
        width, height = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
    elif width is None:
        assert height is not None
        width = max(8, round(height * aspect))
    elif height is None:
        height = max(8, round(width / aspect))
    return resolve_size(width, height, None, base_w=base_w, base_h=base_h)
