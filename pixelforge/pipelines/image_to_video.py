"""Image to video with Stable Video Diffusion (AiArt's seed, cfg_scale, motion_bucket_id)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.models.base import IMAGE_TO_VIDEO
from pixelforge.pipelines.contract import MediaRef, RunContext
from pixelforge.pipelines.diffusion import fit_to_multiple, generators, step_callback
from pixelforge.pipelines.limits import InputLimit


class ImageToVideoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(description="media id of the first frame")
    model: str | None = Field(None, max_length=100, description="default: svd-xt")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="0 = random")
    cfg_scale: float = Field(
        1.5, ge=0.0, le=10.0, description="how strongly the video adheres to the image"
    )
    motion_bucket_id: int = Field(127, ge=1, le=255, description="amount of motion")
    frames: int | None = Field(None, ge=2, le=50, description="default: the model's")
    fps: int = Field(7, ge=1, le=30)
    steps: int | None = Field(None, ge=1, le=100)
    noise_aug_strength: float = Field(0.02, ge=0.0, le=1.0)
    width: int | None = Field(None, ge=64, le=1024)
    height: int | None = Field(None, ge=64, le=1024)


def encode_mp4(frames: list[Image.Image], fps: int, path: Path) -> None:
    """H.264 in MP4 (yuv420p, the format every player takes; sides must be even)."""
    import av

    w, h = frames[0].width // 2 * 2, frames[0].height // 2 * 2
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for img in frames:
            rgb = img.convert("RGB").crop((0, 0, w, h))
            frame = av.VideoFrame.from_image(rgb)  # type: ignore[no-untyped-call]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def animated_webp(frames: list[Image.Image], fps: int) -> bytes:
    buf = io.BytesIO()
    frames[0].save(
        buf,
        format="WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=int(1000 / fps),
        loop=0,
        quality=80,
    )
    return buf.getvalue()


class ImageToVideoPipeline:
    name: ClassVar[str] = "image_to_video"
    description: ClassVar[str] = (
        "Animate an image into a short MP4 with Stable Video Diffusion, plus an animated "
        "WebP preview. 1 credit per video."
    )
    Params: ClassVar[type[BaseModel]] = ImageToVideoParams
    input_limit: ClassVar[InputLimit | None] = None

    def cost(self, params: ImageToVideoParams) -> int:
        return 1

    def run(self, params: ImageToVideoParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load the first frame at the model's size (or the one asked for)
        profile = ctx.models.profile(params.model, task=IMAGE_TO_VIDEO)
        size = (params.width or profile.default_width, params.height or profile.default_height)
        first = fit_to_multiple(ctx.load_image(params.image).convert("RGB"), size)
        steps = params.steps or profile.default_steps
        num_frames = params.frames or int(profile.extra.get("num_frames", 14))

        # 2. Denoise all frames together
        with ctx.models.load(profile.id, task=IMAGE_TO_VIDEO) as pipe:
            frames = pipe(
                image=first,
                width=first.width,
                height=first.height,
                num_frames=num_frames,
                num_inference_steps=steps,
                min_guidance_scale=min(1.0, params.cfg_scale),
                max_guidance_scale=params.cfg_scale,
                fps=params.fps,
                motion_bucket_id=params.motion_bucket_id,
                noise_aug_strength=params.noise_aug_strength,
                decode_chunk_size=4,
                generator=generators(ctx.seed, 1)[0],
                callback_on_step_end=step_callback(ctx, 0),
            ).frames[0]

        # 3. Save the MP4 and the animated preview
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "video.mp4"
            encode_mp4(frames, params.fps, path)
            video_id = ctx.save_video(path, content_type="video/mp4")
            preview = Path(tmp) / "preview.webp"
            preview.write_bytes(animated_webp(frames, params.fps))
            preview_id = ctx.save_video(preview, content_type="image/webp")
        return {
            "model": profile.id,
            "frames": len(frames),
            "fps": params.fps,
            "width": first.width,
            "height": first.height,
            "video": video_id,
            "preview": preview_id,
            "seed": ctx.seed,
        }
