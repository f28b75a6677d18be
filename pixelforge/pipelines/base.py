"""The Pipeline contract, the RunContext facade a pipeline sees, and the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol, get_args, runtime_checkable

from PIL import Image
from pydantic import BaseModel, Field

from pixelforge.catalog.types import CatalogView
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import ModelProvider


class _MediaRefMarker:
    """Metadata marking a params field as the id of a media item the caller owns."""


MEDIA_REF = _MediaRefMarker()
MediaRef = Annotated[
    str,
    MEDIA_REF,
    Field(min_length=1, max_length=64, json_schema_extra={"format": "media-id"}),
]


# The encoding and jpg/webp quality of an effect's result (the default differs per pipeline:
# `output_format: OutputFormat = "jpg"`).
OutputFormat = Annotated[
    Literal["png", "jpg", "webp"],
    Field(description="Encoding of the result.", examples=["jpg", "png"]),
]
Quality = Annotated[int, Field(ge=1, le=100, description="jpg/webp quality.")]


def media_refs(params: BaseModel) -> list[str]:
    """The media ids a params object refers to (fields typed `MediaRef`)."""
    return [ref for _, ref in media_ref_fields(params)]


def media_ref_fields(params: BaseModel) -> list[tuple[str, str]]:
    """(field name, media id) for each field typed `MediaRef` that is set."""
    refs: list[tuple[str, str]] = []
    for name, info in type(params).model_fields.items():
        # `MediaRef` directly, or inside an optional (`MediaRef | None`).
        marked = any(m is MEDIA_REF for m in info.metadata) or any(
            any(m is MEDIA_REF for m in getattr(arg, "__metadata__", ()))
            for arg in get_args(info.annotation)
        )
        if marked:
            value = getattr(params, name)
            if isinstance(value, str):
                refs.append((name, value))
    return refs


class JobCanceled(Exception):
    """Raised inside a pipeline when the job was canceled; the worker records it."""


@runtime_checkable
class RunContext(Protocol):
    """Everything a pipeline may touch: no database, no HTTP, no other accounts."""

    seed: int
    device: str
    threads: int
    models: ModelProvider  # diffusion models (generation pipelines)
    catalog: CatalogView  # style presets and LoRA templates

    def progress(self, step: int, total: int, preview: Image.Image | None = None) -> None:
        """Report progress; raises JobCanceled if the job was canceled meanwhile."""

    def cancelled(self) -> bool:
        """True once the job has been canceled."""

    def load_image(self, ref: str) -> Image.Image:
        """Open a media item of the job's account (RGB or RGBA)."""

    def save_image(self, img: Image.Image, *, format: str = "png", quality: int = 95) -> str:
        """Store an output image (quality applies to jpg/webp); returns its media id."""

    def save_video(self, path: Path, *, content_type: str = "video/mp4") -> str:
        """Store an output video file; returns its media id."""


class Pipeline(Protocol):
    """One capability. `run` reads as numbered steps and reports progress."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    def cost(self, params: Any) -> int:
        """Credits charged on success."""

    def run(self, params: Any, ctx: RunContext) -> dict[str, Any]:
        """Compute; outputs go through ctx.save_*; returns extra result fields (JSON)."""


class PipelineRegistry:
    """Name -> pipeline. Built by `default_registry()` in the app's wiring, never at import."""

    def __init__(self, pipelines: list[Pipeline] | None = None) -> None:
        self._by_name: dict[str, Pipeline] = {}
        for p in pipelines or []:
            self.register(p)

    def register(self, pipeline: Pipeline) -> None:
        if pipeline.name in self._by_name:
            raise ValueError(f"pipeline {pipeline.name!r} registered twice")
        self._by_name[pipeline.name] = pipeline

    def get(self, name: str) -> Pipeline:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._by_name))
            raise PixelForgeError(
                ErrorCode.unknown_pipeline,
                f"pipeline {name!r} does not exist; known pipelines: {known}",
            ) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_name[n] for n in self.names())


def default_registry() -> PipelineRegistry:
    """The pipelines that ship with PixelForge."""
    from pixelforge.pipelines.age import AgePipeline
    from pixelforge.pipelines.background import (
        BlurBackgroundPipeline,
        RemoveBackgroundPipeline,
        ReplaceBackgroundPipeline,
    )
    from pixelforge.pipelines.colorize import ColorizePipeline
    from pixelforge.pipelines.convert import ConvertPipeline
    from pixelforge.pipelines.correct_color import CorrectColorPipeline, RelightPipeline
    from pixelforge.pipelines.detect_nsfw import DetectNsfwPipeline
    from pixelforge.pipelines.edit import EditPipeline
    from pixelforge.pipelines.enhance import EnhancePipeline
    from pixelforge.pipelines.extract_clothes import ExtractClothesPipeline
    from pixelforge.pipelines.face_swap import FaceSwapPipeline
    from pixelforge.pipelines.hair import (
        ChangeHairstylePipeline,
        HairBangsPipeline,
        HairExtensionPipeline,
        HairVolumePipeline,
        TryWigPipeline,
    )
    from pixelforge.pipelines.image_to_image import ImageToImagePipeline
    from pixelforge.pipelines.image_to_video import ImageToVideoPipeline
    from pixelforge.pipelines.inpaint import InpaintPipeline, OutpaintPipeline
    from pixelforge.pipelines.pose_transfer import PoseTransferPipeline
    from pixelforge.pipelines.refine_skin import RefineSkinPipeline
    from pixelforge.pipelines.remove_object import RemoveObjectPipeline
    from pixelforge.pipelines.stylize import StylizePipeline
    from pixelforge.pipelines.text_to_image import TextToImagePipeline
    from pixelforge.pipelines.transfer_makeup import TransferMakeupPipeline
    from pixelforge.pipelines.upscale import UpscalePipeline

    return PipelineRegistry(
        [
            ConvertPipeline(),
            UpscalePipeline(),
            TextToImagePipeline(),
            ImageToImagePipeline(),
            InpaintPipeline(),
            OutpaintPipeline(),
            EditPipeline(),
            ImageToVideoPipeline(),
            PoseTransferPipeline(),
            DetectNsfwPipeline(),
            FaceSwapPipeline(),
            RefineSkinPipeline(),
            TransferMakeupPipeline(),
            RemoveBackgroundPipeline(),
            BlurBackgroundPipeline(),
            ReplaceBackgroundPipeline(),
            RemoveObjectPipeline(),
            ColorizePipeline(),
            CorrectColorPipeline(),
            RelightPipeline(),
            StylizePipeline(),
            EnhancePipeline(),
            ChangeHairstylePipeline(),
            TryWigPipeline(),
            HairExtensionPipeline(),
            HairBangsPipeline(),
            HairVolumePipeline(),
            AgePipeline(),
            ExtractClothesPipeline(),
        ]
    )
