"""Tests for pixelforge/pipelines/colorize.py on the real server with real photos."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import COLORIZE
from pixelforge.models.catalog import Catalog
from pixelforge.models.manager import ModelManager
from pixelforge.pipelines.colorize import ColorizeParams, ColorizePipeline, _geodesic_voronoi
from tests.conftest import TinyModels
from tests.pipelines.conftest import FakeRunContext
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


# -- a colourisation model: a ControlNet over SD (the tiny ControlNet, random weights) -------


@pytest.fixture
def model_ctx(ctx: FakeRunContext, tmp_path: Path, tiny: TinyModels) -> FakeRunContext:
    """A manager with a colorize profile over the tiny ControlNet (and its base, tiny-sd)."""
    models_dir = tmp_path / "colour-models"
    catalog = Catalog(models_dir)
    sd = next(p for p in tiny.profiles if p.id == "tiny-sd")
    catalog.add_profile(replace(sd, source=str(tiny.dir / "tiny-sd")))
    pose = next(p for p in tiny.profiles if p.id == "tiny-controlnet-openpose")
    catalog.add_profile(
        replace(
            pose,
            id="tiny-controlnet-colorize",
            tasks=(COLORIZE,),
            source=str(tiny.dir / "tiny-controlnet-openpose"),
        )
    )
    ctx.models = ModelManager(models_dir, device="cpu", threads=1)
    return ctx


def test_a_model_colourises_without_guidance_and_keeps_the_lightness(
    model_ctx: FakeRunContext,
) -> None:
    target = grey(photo("chelsea", 160))
    params = ColorizeParams(
        image=model_ctx.add_image(target), model="tiny-controlnet-colorize", output_format="png"
    )
    result = ColorizePipeline().run(params, model_ctx)
    out = model_ctx.saved[0].image
    assert out.size == target.size
    out_lab, in_lab = lab(out), lab(target)
    error = np.abs(out_lab[..., 0] - in_lab[..., 0])
    assert error.mean() < 0.3 and error.max() < 1.5, (error.mean(), error.max())  # rounding
    assert result["model"] == "tiny-controlnet-colorize" and result["mean_chroma"] > 1.0
    assert np.abs(out_lab[..., 1:]).mean() > 1.0  # the model's colours, not grey


def test_hints_steer_a_model(model_ctx: FakeRunContext) -> None:
    target = grey(photo("chelsea", 160))
    hints = [{"x": 40, "y": 40, "color": "#2e86de"}]
    params = ColorizeParams(
        image=model_ctx.add_image(target),
        model="tiny-controlnet-colorize",
        hints=hints,
        prompt="a cat",
        steps=1,
        output_format="png",
    )
    ColorizePipeline().run(params, model_ctx)
    out = lab(model_ctx.saved[0].image)
    hint = lab(np.array([[[0x2E, 0x86, 0xDE]]], np.uint8))[0, 0]
    assert np.sign(out[40, 40, 2]) == np.sign(hint[2])  # blue: b < 0 at the hint


def test_model_parameters_are_checked() -> None:
    assert ColorizeParams(image="med_x", model="controlnet-colorize").reference is None
    with pytest.raises(ValidationError, match="only the classical colouriser"):
        ColorizeParams(image="med_x", model="controlnet-colorize", reference="med_y")
    with pytest.raises(ValidationError, match="prompt and steps"):
        ColorizeParams(image="med_x", reference="med_y", prompt="a cat")


def test_a_missing_colourisation_model_is_model_unavailable(ctx: FakeRunContext) -> None:
    params = ColorizeParams(
        image=ctx.add_image(grey(photo("chelsea", 64))), model="controlnet-colorize"
    )
    with pytest.raises(PixelForgeError) as e:
        ColorizePipeline().run(params, ctx)
    assert e.value.code == ErrorCode.model_unavailable
    assert "pixelforge models pull controlnet-colorize" in e.value.message
