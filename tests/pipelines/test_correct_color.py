"""Tests for pixelforge/pipelines/correct_color.py (correct_color, relight) on the real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.pipelines.effects_server import EffectsServer, effects_server, lab, photo, rgb

Array = np.ndarray[Any, Any]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EffectsServer]:
    with effects_server(tmp_path_factory.mktemp("correct_color")) as server:
        yield server


def linear(img: Image.Image | Array) -> Array:
    x = (rgb(img) if isinstance(img, Image.Image) else img) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def srgb(lin: Array) -> Image.Image:
    lin = np.clip(lin, 0, 1)
    x = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055)
    return Image.fromarray((x * 255 + 0.5).astype(np.uint8))


def cast(img: Image.Image, gains: tuple[float, float, float]) -> Image.Image:
    """A colour cast as a camera's wrong white balance makes it: gains in linear light."""
    return srgb(linear(img) * np.array(gains))


def spread(means: Array) -> float:
    return float(means.max() - means.min())


def test_gray_world_removes_a_colour_cast(srv: EffectsServer) -> None:
    s = srv.session(credits=10)
    original = photo("coffee", 384)
    warm = cast(original, (1.0, 0.8, 0.5))
    job = s.run("correct_color", {"image": s.upload(warm), "output_format": "png"})
    out = s.image(job)
    before, after = rgb(warm).reshape(-1, 3).mean(0), rgb(out).reshape(-1, 3).mean(0)
    assert spread(after) < 0.3 * spread(before), (before, after)
    # Gray world makes the means equal in linear light (in sRGB a red saucer keeps them apart).
    lin_before, lin_after = linear(warm).reshape(-1, 3).mean(0), linear(out).reshape(-1, 3).mean(0)
    assert spread(lin_after) < 0.1 * spread(lin_before), (lin_before, lin_after)
    gains = job["result"]["white_balance_gains"]
    assert gains[2] > gains[1] > gains[0]  # blue was cut most, so it is lifted most
    assert s.credits() == (9, 0)


def test_white_patch_makes_the_brightest_tones_white(srv: EffectsServer) -> None:
    s = srv.session()
    tinted = cast(photo("astronaut", 256), (0.7, 0.9, 1.0))  # bluish; her suit has whites
    job = s.run(
        "correct_color",
        {"image": s.upload(tinted), "white_balance": "white_patch", "output_format": "png"},
    )
    before = np.percentile(rgb(tinted).reshape(-1, 3), 99, axis=0)
    after = np.percentile(rgb(s.image(job)).reshape(-1, 3), 99, axis=0)
    assert spread(after) < 0.25 * spread(before), (before, after)


def test_exposure_saturation_contrast(srv: EffectsServer) -> None:
    s = srv.session()
    img = photo("astronaut", 256)
    image = s.upload(img)

    base = {"image": image, "white_balance": "none", "output_format": "png"}
    brighter = s.image(s.run("correct_color", {**base, "exposure": 1.0}))
    unclipped = linear(img) < 0.45
    ratio = linear(brighter)[unclipped].sum() / linear(img)[unclipped].sum()
    assert 1.9 < ratio < 2.1  # +1 EV doubles the light

    grey = rgb(s.image(s.run("correct_color", {**base, "saturation": 0.0})))
    assert np.abs(grey[..., 0] - grey[..., 2]).max() <= 1

    flat = rgb(s.image(s.run("correct_color", {**base, "contrast": 0.5})))
    assert flat.std() < 0.6 * rgb(img).std()


def local_contrast(lightness: Array) -> float:
    import cv2

    mean = cv2.blur(lightness, (9, 9))
    var = cv2.blur(lightness * lightness, (9, 9)) - mean * mean
    return float(np.sqrt(np.maximum(var, 0)).mean())


def test_relight_raises_local_contrast_in_a_dark_photo(srv: EffectsServer) -> None:
    s = srv.session()
    dark = srgb(linear(photo("astronaut", 384)) * 0.08)  # about 3.6 stops under
    job = s.run("relight", {"image": s.upload(dark), "output_format": "png"})
    before, after = lab(dark), lab(s.image(job))
    assert local_contrast(after[..., 0]) > 1.5 * local_contrast(before[..., 0])
    assert after[..., 0].mean() > before[..., 0].mean() + 5
    assert job["result"]["mean_lightness_after"] > job["result"]["mean_lightness_before"]
    # Colours stay where they were: the hue of the orange suit does not turn.
    suit = (slice(300, 380), slice(60, 140))
    hue_before = np.arctan2(before[suit][..., 2], before[suit][..., 1]).mean()
    hue_after = np.arctan2(after[suit][..., 2], after[suit][..., 1]).mean()
    assert abs(hue_after - hue_before) < 0.15
