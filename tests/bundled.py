"""One model manager for the tests that use the bundled models (MediaPipe, NudeNet, ncnn)."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from pixelforge.models.manager import ModelManager


@functools.cache
def bundled_models() -> ModelManager:
    """Shared by the session, as a worker process shares its manager: each model loads once.
    Its models directory stays empty: bundled weights live in their pip packages."""
    return ModelManager(Path(tempfile.mkdtemp(prefix="pixelforge-bundled-")), device="cpu")
