"""Tests for pixelforge/pipelines/colorize.py on the real server with real photos."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from pixelforge.pipelines.colorize import _geodesic_voronoi
from tests.pipelines.effects_server import EffectsServer, effects_server, lab, photo


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EffectsServer]:
    with effects_server(tmp_path_factory.mktemp("colorize")) as server:
        yield server


def grey(img: Image.Image) -> Image.Image:
    return img.convert("L").convert("RGB")


def test_reference_transfer_restores_colour_and_keeps_lightness(srv: EffectsServer) -> None:
    s = srv.session()
    truth = photo("chelsea")
    target = grey(truth)
    # The reference is another framing of the same scene: mirrored and cropped.
    reference = truth.transpose(Image.Transpose.FLIP_LEFT_RIGHT).crop((0, 50, 300, 300))
    job = s.run(
        "colorize",
        {"image": s.upload(target), "reference": s.upload(reference), "output_format": "png"},
    )
    out = lab(s.image(job))
    truth_lab, target_lab = lab(truth), lab(target)

    assert np.abs(out[..., 0] - target_lab[..., 0]).mean() < 1.0  # lightness kept
    grey_error = np.abs(truth_lab[..., 1:]).mean()  # a grey picture's a/b are all 0
    error = np.abs(out[..., 1:] - truth_lab[..., 1:]).mean()
    assert error < 0.4 * grey_error, (error, grey_error)
    assert job["result"]["mean_chroma"] > 10


def test_a_different_reference_pulls_the_colours_toward_it(srv: EffectsServer) -> None:
    s = srv.session()
    target = grey(photo("astronaut", 256))
    reference = photo("coffee", 256)  # warm: red saucer, brown wood
    job = s.run("colorize", {"image": s.upload(target), "reference": s.upload(reference)})
    out, ref = lab(s.image(job)), lab(reference)
    ref_ab = ref[..., 1:].reshape(-1, 2).mean(0)
    out_ab = out[..., 1:].reshape(-1, 2).mean(0)
    assert np.linalg.norm(out_ab - ref_ab) < 0.5 * np.linalg.norm(ref_ab)  # grey: distance 1x
    assert np.abs(out[..., 0] - lab(target)[..., 0]).mean() < 1.5  # jpg, lightness kept


def test_hints_spread_within_regions(srv: EffectsServer) -> None:
    s = srv.session()
    truth = photo("chelsea")
    truth_lab = lab(truth)
    points = [(130, 110), (300, 120), (200, 60), (220, 230), (400, 50), (30, 250), (420, 250)]
    pixels = np.asarray(truth)
    hints = [{"x": x, "y": y, "color": "#" + pixels[y, x].tobytes().hex()} for x, y in points]
    job = s.run(
        "colorize", {"image": s.upload(grey(truth)), "hints": hints, "output_format": "png"}
    )
    out = lab(s.image(job))
    grey_error = np.abs(truth_lab[..., 1:]).mean()
    error = np.abs(out[..., 1:] - truth_lab[..., 1:]).mean()
    assert error < 0.5 * grey_error, (error, grey_error)


def test_without_guidance_or_with_a_hint_outside_it_is_refused(srv: EffectsServer) -> None:
    s = srv.session(credits=5)
    image = s.upload(grey(photo("chelsea")))
    r = s.submit("colorize", {"image": image})
    assert r.status_code == 400
    assert "reference" in r.json()["error"]["message"] and "hints" in r.json()["error"]["message"]
    job = s.run("colorize", {"image": image, "hints": [{"x": 451, "y": 0, "color": "#ff0000"}]})
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_parameter"
    assert "hints[0]" in job["error"]["message"]
    assert s.credits() == (5, 0)


def test_geodesic_voronoi_stops_at_an_edge() -> None:
    # Two seeds on the left half; a wall of high cost down the middle except a gap at the
    # bottom: the right half is reached through the gap, so its distance exceeds the straight
    # line, and the nearest seed is the one closer to the gap.
    cost = np.ones((40, 40))
    cost[:30, 20] = 1000.0
    labels = np.full((40, 40), -1, np.int64)
    labels[5, 5], labels[35, 5] = 0, 1
    dist, nearest = _geodesic_voronoi(labels, cost)
    assert nearest[5, 30] == 1 and nearest[35, 30] == 1 and nearest[5, 10] == 0
    assert dist[5, 30] > 50  # around the wall, not through it (25 straight)
    assert dist[5, 6] == pytest.approx(1.0)
