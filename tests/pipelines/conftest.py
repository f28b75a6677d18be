"""An in-process RunContext for pipeline unit tests: media in a dict, outputs on disk."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelforge.catalog.types import CatalogView, LoraTemplate, StylePreset
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import ModelProvider
from pixelforge.models.manager import ModelManager
from pixelforge.pipelines.contract import JobCanceled, RunContext

_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}


@dataclass
class SavedImage:
    media_id: str
    format: str
    path: Path
    image: Image.Image  # decoded back from the stored bytes, as a client would see it


class _EmptyCatalog:
    def style(self, name: str, *, task: str = "text_to_image") -> StylePreset | None:
        return None

    def lora(self, template_id: str) -> LoraTemplate | None:
        return None


@dataclass
class FakeRunContext:
    """Implements the RunContext protocol faithfully, and records what the pipeline did."""

    root: Path
    seed: int = 0
    device: str = "cpu"
    threads: int = 2
    media: dict[str, Image.Image] = field(default_factory=dict)
    saved: list[SavedImage] = field(default_factory=list)
    saved_videos: list[Path] = field(default_factory=list)
    progress_calls: list[tuple[int, int]] = field(default_factory=list)
    texts: list[tuple[int, str, str | None]] = field(default_factory=list)
    # Called with (step, total) after a progress call is recorded, before the cancel check,
    # so a test can cancel the job at a chosen step.
    on_progress: Callable[[int, int], None] | None = None
    _canceled: bool = False
    # Upscale and convert use neither; a real (lazy, torch-free until used) manager and an
    # empty catalog keep the protocol whole.
    models: ModelProvider = field(init=False)
    catalog: CatalogView = field(default_factory=lambda: _EmptyCatalog())

    def __post_init__(self) -> None:
        self.models = ModelManager(self.root / "models")

    def add_image(self, img: Image.Image | np.ndarray, media_id: str | None = None) -> str:
        if isinstance(img, np.ndarray):
            img = Image.fromarray(img)
        media_id = media_id or f"med_in{len(self.media)}"
        self.media[media_id] = img.copy()
        return media_id

    def cancel(self) -> None:
        self._canceled = True

    # --- the RunContext protocol ---

    def progress(self, step: int, total: int, preview: Image.Image | None = None) -> None:
        self.progress_calls.append((step, total))
        if self.on_progress is not None:
            self.on_progress(step, total)
        if self._canceled:
            raise JobCanceled()

    def cancelled(self) -> bool:
        return self._canceled

    def emit_text(self, index: int, text: str, finish_reason: str | None = None) -> None:
        self.texts.append((index, text, finish_reason))
        if self._canceled:
            raise JobCanceled()

    def load_image(self, ref: str) -> Image.Image:
        try:
            img = self.media[ref]
        except KeyError:
            raise PixelForgeError(ErrorCode.not_found, f"media {ref} not found") from None
        if img.mode not in ("RGB", "RGBA"):
            has_alpha = img.mode in ("LA", "PA") or "transparency" in img.info
            img = img.convert("RGBA" if has_alpha else "RGB")
        return img.copy()

    def save_image(self, img: Image.Image, *, format: str = "png", quality: int = 95) -> str:
        fmt = format.lower()
        if fmt not in _PIL_FORMATS:
            raise ValueError(f"unsupported output format {format!r}")
        media_id = f"med_out{len(self.saved)}"
        path = self.root / f"{media_id}.{fmt}"
        buf = io.BytesIO()
        # Encoding for real catches what a media store would reject (e.g. RGBA as JPEG).
        img.save(buf, format=_PIL_FORMATS[fmt], **({} if fmt == "png" else {"quality": quality}))
        path.write_bytes(buf.getvalue())
        decoded = Image.open(io.BytesIO(buf.getvalue()))
        decoded.load()
        self.saved.append(SavedImage(media_id, fmt, path, decoded))
        return media_id

    def save_video(self, path: Path, *, content_type: str = "video/mp4") -> str:
        media_id = f"med_vid{len(self.saved_videos)}"
        target = self.root / f"{media_id}{path.suffix}"
        shutil.copyfile(path, target)
        self.saved_videos.append(target)
        return media_id


@pytest.fixture
def ctx(tmp_path: Path) -> FakeRunContext:
    context = FakeRunContext(root=tmp_path)
    assert isinstance(context, RunContext)
    return context
