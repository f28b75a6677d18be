"""Tiny models built once per session, and a CPU manager over them."""

from __future__ import annotations

import pytest

from pixelforge.models.manager import ModelManager
from tests.conftest import TinyModels


@pytest.fixture(scope="session")
def manager(tiny: TinyModels) -> ModelManager:
    # One thread: toy models gain nothing from more, and a busy 2-core box thrashes.
    return ModelManager(tiny.dir, device="cpu", threads=1)
