"""Tests for pixelforge/pipelines/background.py (and vision/segmentation.py) on the real server.

The ground truth is a composite: the astronaut, cut out of her photo with a reference mask
derived once here (MediaPipe seed, GrabCut refinement, the flag's stripes removed, largest
component, holes filled; sanity-checked below), pasted onto two other real photos. The
composite's true mask is that reference, exactly. Downloadable matting models are tested
through the pipeline with a tiny ONNX model whose toy weights call bright pixels foreground.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.manager import ModelManager
from pixelforge.models.tiny_onnx import create_tiny_onnx_models
from pixelforge.pipelines.background import (
    BlurBackgroundParams,
    BlurBackgroundPipeline,
    RemoveBackgroundParams,
    RemoveBackgroundPipeline,
    ReplaceBackgroundParams,
    ReplaceBackgroundPipeline,
)
from pixelforge.vision.segmentation import find_person, guided_filter, person_mask
from tests.bundled import bundled_models
from tests.pipelines.conftest import FakeRunContext
from tests.pipelines.effects_server import EffectsServer, effects_server, photo, rgb

SIDE = 512
Array = np.ndarray[Any, Any]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EffectsServer]:
    with effects_server(tmp_path_factory.mktemp("background")) as server:
        yield server


@functools.cache
def astronaut_reference() -> tuple[Array, Array]:
    """(the astronaut photo uint8 [512, 512, 3], her person mask bool [512, 512])."""
    import cv2

    pixels = np.asarray(photo("astronaut"))
    seed = person_mask(bundled_models(), pixels, refine=False)
    trimap = np.full(seed.shape, cv2.GC_PR_BGD, np.uint8)
    trimap[seed > 0.5] = cv2.GC_PR_FGD
    trimap[cv2.erode((seed > 0.9).astype(np.uint8), np.ones((15, 15))) > 0] = cv2.GC_FGD
    trimap[cv2.dilate((seed > 0.1).astype(np.uint8), np.ones((15, 15))) == 0] = cv2.GC_BGD
    models = (np.zeros((1, 65)), np.zeros((1, 65)))
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    cv2.grabCut(bgr, trimap, None, *models, 5, cv2.GC_INIT_WITH_MASK)
    mask = np.isin(trimap, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    # GrabCut keeps the flag's red and white stripes beside her left arm (bottom left):
    # the suit is orange (green >= blue), the stripes crimson (blue > green) or white.
    hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV)
    stripes = (hsv[..., 1] < 70) | (pixels[..., 2].astype(int) > pixels[..., 1])
    corner = np.zeros_like(stripes)
    corner[320:, :64] = True
    mask[stripes & corner] = 0
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    mask = (labels == 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])).astype(np.uint8)
    holes, labels, stats, _ = cv2.connectedComponentsWithStats(1 - mask)
    for i in range(1, holes):
        if stats[i, cv2.CC_STAT_AREA] < 2000:
            mask[labels == i] = 1
    return pixels, mask.astype(bool)


def cover(img: Image.Image, side: int = SIDE) -> Array:
    scale = side / min(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.LANCZOS)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return np.asarray(img.crop((left, top, left + side, top + side)))


def composite(background: str) -> Array:
    person, mask = astronaut_reference()
    return np.where(mask[..., None], person, cover(photo(background)))


def iou(a: Array, b: Array) -> float:
    return float((a & b).sum() / (a | b).sum())


def band(mask: Array, px: int) -> tuple[Array, Array]:
    """(person interior, background exterior): the mask shrunk / grown by px."""
    import cv2

    kernel = np.ones((2 * px + 1, 2 * px + 1), np.uint8)
    inside = cv2.erode(mask.astype(np.uint8), kernel) > 0
    outside = cv2.dilate(mask.astype(np.uint8), kernel) == 0
    return inside, outside


def test_reference_mask_is_the_astronaut() -> None:
    _, mask = astronaut_reference()
    assert 0.45 < mask.mean() < 0.60
    assert mask[100, 230] and mask[300, 200] and mask[450, 380]  # face, suit, helmet
    assert not mask[:40, :40].any() and not mask[:60, 470:].any()  # top corners
    assert not mask[80:200, 400:450].any()  # the shuttle
    assert not mask[430:, :8].any()  # the flag's stripes


@pytest.mark.parametrize("background", ["coffee", "chelsea"])
def test_person_mask_on_two_backgrounds(background: str) -> None:
    _, truth = astronaut_reference()
    mask = person_mask(bundled_models(), composite(background))
    assert mask.dtype == np.float32 and mask.shape == truth.shape
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert iou(mask > 0.5, truth) >= 0.9


def test_no_person_in_cat_or_coffee_photos() -> None:
    assert find_person(bundled_models(), photo("chelsea")) is None
    assert find_person(bundled_models(), photo("coffee")) is None
    assert find_person(bundled_models(), composite("coffee")) is not None


def test_guided_filter_keeps_constants_and_snaps_edges() -> None:
    guide = np.zeros((64, 64), np.float32)
    guide[:, 32:] = 1.0
    flat = np.full((64, 64), 0.3, np.float32)
    assert np.allclose(guided_filter(guide, flat, radius=4, eps=1e-3), 0.3, atol=1e-4)
    # A ramp 12 px wide across the guide's sharp edge comes out as a step at that edge.
    ramp = np.clip((np.arange(64, dtype=np.float32) - 26) / 12, 0, 1)[None].repeat(64, 0)
    colour_guide = np.dstack([guide] * 3)
    for sub in (1, 2):  # the fast (subsampled) variant too
        snapped = guided_filter(colour_guide, ramp, radius=8, eps=1e-4, subsample=sub)
        assert np.all(snapped[:, 32] - snapped[:, 31] > 0.4)
        assert np.all(np.abs(np.diff(snapped[:, 24:32], axis=1)) < 0.05)


def test_remove_background_matches_the_true_mask_on_two_backgrounds(
    srv: EffectsServer,
) -> None:
    s = srv.session(credits=10)
    _, truth = astronaut_reference()
    inside, _ = band(truth, 4)
    for background, fmt in (("coffee", "png"), ("chelsea", "webp")):
        comp = composite(background)
        job = s.run("remove_background", {"image": s.upload(comp), "output_format": fmt})
        out = s.image(job)
        assert (out.format, out.mode, out.size) == (fmt.upper(), "RGBA", (SIDE, SIDE))
        alpha = np.asarray(out.getchannel("A"))
        assert iou(alpha > 127, truth) >= 0.9, background
        if fmt == "png":  # lossless: the person's solid interior is her own pixels
            same = np.abs(rgb(out)[inside] - comp[inside]).mean()
            assert same < 1.0
        assert 0.45 < job["result"]["person_fraction"] < 0.6
    assert s.credits() == (8, 0)


def test_remove_background_refuses_jpg_before_any_work(srv: EffectsServer) -> None:
    s = srv.session(credits=10)
    image = s.upload(composite("coffee"))
    r = s.submit("remove_background", {"image": image, "output_format": "jpg"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_parameter" and "alpha" in err["message"]
    assert s.credits() == (10, 0)


@pytest.mark.parametrize("pipeline", ["remove_background", "blur_background"])
def test_no_person_fails_clearly_and_charges_nothing(srv: EffectsServer, pipeline: str) -> None:
    s = srv.session(credits=10)
    job = s.run(pipeline, {"image": s.upload(photo("chelsea"))})
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_parameter"
    assert "no person found" in job["error"]["message"]
    assert s.credits() == (10, 0)


def laplacian_energy(img: Array, region: Array) -> float:
    import cv2

    grey = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.mean(cv2.Laplacian(grey, cv2.CV_32F)[region] ** 2))


def test_blur_background_blurs_the_background_only(srv: EffectsServer) -> None:
    s = srv.session()
    _, truth = astronaut_reference()
    inside, outside = band(truth, 8)
    comp = composite("coffee")
    job = s.run(
        "blur_background", {"image": s.upload(comp), "strength": 0.6, "output_format": "png"}
    )
    out = rgb(s.image(job))
    assert out.shape == comp.shape
    before_bg, after_bg = laplacian_energy(comp, outside), laplacian_energy(out, outside)
    before_fg, after_fg = laplacian_energy(comp, inside), laplacian_energy(out, inside)
    assert after_bg < 0.1 * before_bg, (before_bg, after_bg)
    assert after_fg > 0.9 * before_fg, (before_fg, after_fg)
    assert job["result"]["sigma"] == pytest.approx(0.6 * 0.025 * SIDE, abs=0.01)


def test_replace_background_with_a_colour_and_with_a_photo(srv: EffectsServer) -> None:
    s = srv.session()
    _, truth = astronaut_reference()
    inside, outside = band(truth, 6)
    comp = composite("chelsea")
    image = s.upload(comp)

    job = s.run(
        "replace_background",
        {"image": image, "background_color": "#2e86de", "output_format": "png"},
    )
    out = rgb(s.image(job))
    assert np.abs(out[outside] - np.array([0x2E, 0x86, 0xDE])).mean() < 3.0
    assert np.abs(out[inside] - comp[inside]).mean() < 1.0

    backdrop = photo("coffee")
    job = s.run(
        "replace_background",
        {"image": image, "background_image": s.upload(backdrop), "output_format": "png"},
    )
    out = rgb(s.image(job))
    assert np.abs(out[outside] - cover(backdrop)[outside]).mean() < 3.0
    assert np.abs(out[inside] - comp[inside]).mean() < 1.0


def test_replace_background_needs_exactly_one_background(srv: EffectsServer) -> None:
    s = srv.session()
    image = s.upload(composite("chelsea"))
    for extra in ({}, {"background_color": "#ffffff", "background_image": image}):
        r = s.submit("replace_background", {"image": image, **extra})
        assert r.status_code == 400 and "exactly one" in r.json()["error"]["message"]
    r = s.submit("replace_background", {"image": image, "background_color": "blue"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_parameter"


def test_spill_suppression_takes_the_old_background_out_of_the_edge() -> None:
    """A grey disc with a soft edge over pure green: the edge's estimated foreground colour
    is grey, not greenish."""
    from pixelforge.pipelines.background import _foreground

    yy, xx = np.mgrid[:128, :128]
    alpha = np.clip((40 - np.hypot(yy - 64, xx - 64)) / 6 + 0.5, 0, 1).astype(np.float32)
    fg, bg = np.array([0.5, 0.5, 0.5]), np.array([0.0, 1.0, 0.0])
    pixels = (alpha[..., None] * fg + (1 - alpha[..., None]) * bg).astype(np.float32)
    edge = (alpha > 0.3) & (alpha < 0.9)
    cleaned = _foreground(pixels, alpha, amount=1.0)
    before = np.abs(pixels[edge] - fg).mean()
    after = np.abs(cleaned[edge] - fg).mean()
    assert after < 0.2 * before


# -- a downloaded matting model instead of MediaPipe (tiny ONNX, toy weights) ----------------


@pytest.fixture
def onnx_ctx(ctx: FakeRunContext, tmp_path: Path) -> FakeRunContext:
    """The pipeline context with a manager over the tiny ONNX models (user models.json)."""
    models_dir = tmp_path / "onnx-models"
    create_tiny_onnx_models(models_dir)
    ctx.models = ModelManager(models_dir, device="cpu", threads=1)
    return ctx


def bright_disc(w: int = 120, h: int = 100) -> tuple[Array, Array]:
    """A bright disc on a dark backdrop (what tiny-matting calls foreground), and its mask."""
    yy, xx = np.mgrid[:h, :w]
    disc = np.hypot(yy - h / 2, xx - w / 2) < 30
    pixels = np.where(disc[..., None], [235, 225, 215], [25, 35, 45]).astype(np.uint8)
    return pixels, disc


def test_remove_background_with_a_matting_model(onnx_ctx: FakeRunContext) -> None:
    pixels, disc = bright_disc()
    params = RemoveBackgroundParams(
        image=onnx_ctx.add_image(pixels), model="tiny-matting", output_format="png"
    )
    result = RemoveBackgroundPipeline().run(params, onnx_ctx)
    out = onnx_ctx.saved[0].image
    assert (out.mode, out.size) == ("RGBA", (120, 100))
    alpha = np.asarray(out.getchannel("A"))
    assert iou(alpha > 127, disc) >= 0.9
    assert result["model"] == "tiny-matting" and result["width"] == 120
    # The model is resident now, loaded once through the manager.
    assert onnx_ctx.models.cache.loads == 1  # type: ignore[attr-defined]


def test_blur_and_replace_share_the_model_matte(onnx_ctx: FakeRunContext) -> None:
    pixels, disc = bright_disc()
    image = onnx_ctx.add_image(pixels)
    BlurBackgroundPipeline().run(
        BlurBackgroundParams(image=image, model="tiny-matting", output_format="png"), onnx_ctx
    )
    ReplaceBackgroundPipeline().run(
        ReplaceBackgroundParams(
            image=image, model="tiny-matting", background_color="#ff0000", output_format="png"
        ),
        onnx_ctx,
    )
    blurred, replaced = (rgb(s.image) for s in onnx_ctx.saved)
    assert blurred.shape == replaced.shape == (100, 120, 3)
    inside, outside = band(disc, 4)
    assert np.abs(replaced[outside] - [255, 0, 0]).mean() < 3.0
    assert np.abs(replaced[inside] - pixels[inside]).mean() < 1.0


def test_a_matting_model_that_finds_nothing_fails_clearly(onnx_ctx: FakeRunContext) -> None:
    dark = np.full((64, 64, 3), 30, np.uint8)
    params = RemoveBackgroundParams(image=onnx_ctx.add_image(dark), model="tiny-matting")
    with pytest.raises(PixelForgeError) as e:
        RemoveBackgroundPipeline().run(params, onnx_ctx)
    assert e.value.code == ErrorCode.invalid_parameter and "no foreground" in e.value.message


def test_missing_and_unknown_matting_models(ctx: FakeRunContext) -> None:
    image = ctx.add_image(bright_disc()[0])
    for model in ("birefnet", "u2net"):
        with pytest.raises(PixelForgeError) as e:
            RemoveBackgroundPipeline().run(RemoveBackgroundParams(image=image, model=model), ctx)
        assert e.value.code == ErrorCode.model_unavailable
        assert f"pixelforge models pull {model}" in e.value.message
    with pytest.raises(PixelForgeError) as e:
        RemoveBackgroundPipeline().run(RemoveBackgroundParams(image=image, model="nope"), ctx)
    assert e.value.code == ErrorCode.invalid_parameter and "unknown model 'nope'" in e.value.message


def test_the_bundled_model_names() -> None:
    assert RemoveBackgroundParams(image="med_x").model == "mediapipe"
    for name in ("general", "landscape", "mediapipe"):
        assert BlurBackgroundParams(image="med_x", model=name).model == name
