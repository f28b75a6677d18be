"""Tests for pixelforge/pipelines/stylize.py: every filter through the real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import get_args

import numpy as np
import pytest
from PIL import Image

from pixelforge.pipelines.stylize import FILTERS, FilterName
from tests.pipelines.effects_server import EffectsServer, effects_server, photo, rgb


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EffectsServer]:
    with effects_server(tmp_path_factory.mktemp("stylize")) as server:
        yield server


def test_filters_catalogue_matches_the_parameter() -> None:
    assert list(FILTERS) == list(get_args(FilterName))
    assert all(len(text) > 20 for text in FILTERS.values())


def test_every_filter_keeps_the_size_and_changes_the_picture(srv: EffectsServer) -> None:
    s = srv.session(credits=20)
    img = photo("astronaut", 256).resize((256, 192))
    image = s.upload(img)
    outputs = {}
    for name in FILTERS:
        job = s.run("stylize", {"image": image, "filter": name})
        out = s.image(job)
        assert out.size == (256, 192), name
        assert job["result"]["filter"] == name
        diff = np.abs(rgb(out) - rgb(img)).mean()
        assert diff > 4, (name, diff)
        outputs[name] = rgb(out)
    assert s.credits() == (20 - len(FILTERS), 0)

    # The filters look like what they are named after.
    sketch, lines = outputs["pencil_sketch"], outputs["line_art"]
    assert np.array_equal(sketch[..., 0], sketch[..., 2])  # greyscale
    assert (lines > 250).mean() > 0.7 and (lines < 60).mean() > 0.01  # black lines on white
    comic = outputs["comic"].reshape(-1, 3)
    assert (comic.max(1) < 40).mean() > 0.03  # ink
    assert len(np.unique(comic[comic.max(1) >= 40], axis=0)) <= 8  # the 8-colour palette


def test_pixel_art_blocks_and_palette(srv: EffectsServer) -> None:
    s = srv.session()
    img = photo("coffee", 240)  # 240x160
    job = s.run(
        "stylize", {"image": s.upload(img), "filter": "pixel_art", "pixel_size": 16, "colors": 6}
    )
    out = rgb(s.image(job))
    assert out.shape == (160, 240, 3)
    blocks = out.reshape(10, 16, 15, 16, 3)
    assert np.all(blocks == blocks[:, :1, :, :1])  # every 16x16 block is one colour
    assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 6


def test_strength_blends_and_results_repeat(srv: EffectsServer) -> None:
    s = srv.session()
    img = photo("chelsea", 200)
    image = s.upload(img)
    full = rgb(s.image(s.run("stylize", {"image": image, "filter": "comic"})))
    again = rgb(s.image(s.run("stylize", {"image": image, "filter": "comic"})))
    half = rgb(s.image(s.run("stylize", {"image": image, "filter": "comic", "strength": 0.5})))
    assert np.array_equal(full, again)  # a filter is a function of the photo
    assert np.abs(half - (full + rgb(img)) / 2).max() <= 1


def test_images_over_4096_px_are_refused_without_charge(srv: EffectsServer) -> None:
    s = srv.session(credits=5)
    strip = Image.new("RGB", (4100, 16), "gray")
    job = s.run("stylize", {"image": s.upload(strip), "filter": "line_art"})
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_parameter"
    assert "4100x16 is over 4096 px" in job["error"]["message"]
    assert s.credits() == (5, 0)
