"""Tests for pixelforge/pipelines/background.py (and vision/segmentation.py) on the real server.

The ground truth is a composite: the astronaut, cut out of her photo with a reference mask
derived once here (MediaPipe seed, GrabCut refinement, the flag's stripes removed, largest
component, holes filled; sanity-checked below), pasted onto two other real photos. The
composite's true mask is that reference, exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pixelforge.vision.segmentation import find_person, guided_filter, person_mask
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
    seed = person_mask(pixels, refine=False)
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
    mask = person_mask(composite(background))
    assert mask.dtype == np.float32 and mask.shape == truth.shape
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert iou(mask > 0.5, truth) >= 0.9


def test_no_person_in_cat_or_coffee_photos() -> None:
    assert find_person(photo("chelsea")) is None
    assert find_person(photo("coffee")) is None
    assert find_person(composite("coffee")) is not None


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
