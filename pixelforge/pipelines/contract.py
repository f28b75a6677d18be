"""The Pipeline contract: the protocols pipelines implement, the RunContext, params field types."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol, get_args, runtime_checkable

from PIL import Image
from pydantic import BaseModel, Field

from pixelforge.catalog.types import CatalogView
from pixelforge.models.base import ModelProvider
from pixelforge.pipelines.limits import InputLimit


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
    """Raised inside a pipeline when the job was canceled; the worker records it.

    A pipeline may raise it again with `partial`, the result fields of what it had done so
    far (a language model's text up to the cancel): they are kept on the canceled job."""

    def __init__(self, partial: dict[str, Any] | None = None) -> None:
        super().__init__("canceled")
        self.partial = partial


@runtime_checkable
class RunContext(Protocol):
    """Everything a pipeline may touch: no database, no HTTP, no other accounts."""

    seed: int
    device: str
    threads: int
    models: ModelProvider  # every model: diffusion, ONNX, MediaPipe, NudeNet, Real-ESRGAN
    catalog: CatalogView  # style presets and LoRA templates

    def progress(self, step: int, total: int, preview: Image.Image | None = None) -> None:
        """Report progress; raises JobCanceled if the job was canceled meanwhile."""

    def cancelled(self) -> bool:
        """True once the job has been canceled."""

    def emit_text(self, index: int, text: str, finish_reason: str | None = None) -> None:
        """Publish a piece of candidate `index`'s generated text (a `token` event); raises
        JobCanceled if the job was canceled meanwhile."""

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
    # What its input photos may be, checked at submit (pipelines.limits); None: whatever
    # uploads accept.
    input_limit: ClassVar[InputLimit | None]

    def cost(self, params: Any) -> int:
        """Credits charged on success."""

    def run(self, params: Any, ctx: RunContext) -> dict[str, Any]:
        """Compute; outputs go through ctx.save_*; returns extra result fields (JSON)."""


@runtime_checkable
class BatchingPipeline(Pipeline, Protocol):
    """A pipeline that can run several queued jobs of the same shape in one call.

    Ask with `isinstance(pipeline, BatchingPipeline)`; the worker then claims the queued jobs
    whose `batch_key` equals the first one's.
    """

    def batch_key(self, params: Any) -> Hashable | None:
        """Jobs with equal keys can share one call; None: this job runs alone."""

    def run_batch(
        self, batch: list[Any], ctxs: list[RunContext]
    ) -> Sequence[dict[str, Any] | Exception]:
        """One call for all jobs; per job (in order) its result fields or its error."""
