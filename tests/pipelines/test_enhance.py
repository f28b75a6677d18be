"""Tests for pixelforge/pipelines/enhance.py: real Real-ESRGAN weights through the real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from pixelforge.pipelines.enhance import _sharpen_faces
from tests.pipelines.effects_server import EffectsServer, effects_server, photo, rgb


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EffectsServer]:
    with effects_server(tmp_path_factory.mktemp("enhance")) as server:
        yield server


def psnr(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_enhance_keeps_the_size_and_finds_the_face(srv: EffectsServer) -> None:
    s = srv.session(credits=10)
    img = photo("astronaut", 160)
    job = s.run("enhance", {"image": s.upload(img), "tile": 96, "output_format": "png"})
    out = s.image(job)
    assert out.size == img.size and out.mode == "RGB"
    assert job["result"]["faces"] == 1
    # Like the picture (a wrong normalisation lands far below), but not a copy of it.
    assert 22 < psnr(rgb(out), rgb(img)) < 60
    assert job["total"] == 4  # progress per tile: 160 px in 96 px tiles
    assert s.credits() == (9, 0)


def test_face_sharpening_stays_inside_the_face_box() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(60, 190, (100, 100, 3)).astype(np.float32)
    out = _sharpen_faces(img, [(20, 20, 80, 80)], amount=1.0)
    assert np.array_equal(out[:20], img[:20]) and np.array_equal(out[:, 80:], img[:, 80:])
    centre = (slice(40, 60), slice(40, 60))
    assert np.std(out[centre]) > 1.3 * np.std(img[centre])  # more local contrast
