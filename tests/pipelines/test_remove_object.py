"""Tests for pixelforge/pipelines/remove_object.py: OpenCV on the real server with a real
photo; model fills (tiny LaMa-style ONNX, tiny diffusion inpainting) through the pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.catalog import Catalog
from pixelforge.models.manager import ModelManager
from pixelforge.models.tiny_onnx import create_tiny_onnx_models
from pixelforge.pipelines.remove_object import RemoveObjectParams, RemoveObjectPipeline
from tests.conftest import TinyModels
from tests.pipelines.conftest import FakeRunContext
from tests.pipelines.effects_server import EffectsServer, effects_server, photo, rgb


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EffectsServer]:
    with effects_server(tmp_path_factory.mktemp("remove_object")) as server:
        yield server


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_a_pasted_square_leaves_no_trace(srv: EffectsServer, method: str) -> None:
    s = srv.session(credits=10)
    clean = photo("chelsea")  # 451x300, the cat's fur and the blurred room
    dirty = np.asarray(clean).copy()
    box = (slice(120, 150), slice(60, 90))  # 30x30 px on the fur of the cat's cheek
    dirty[box] = (250, 250, 255)
    mask = np.zeros(dirty.shape[:2], np.uint8)
    mask[box] = 255

    job = s.run(
        "remove_object",
        {
            "image": s.upload(dirty),
            "mask": s.upload(Image.fromarray(mask).convert("RGB")),
            "method": method,
            "output_format": "png",
        },
    )
    out = rgb(s.image(job))
    assert out.shape == dirty.shape

    truth = rgb(clean)
    before = np.abs(dirty[box].astype(float) - truth[box]).mean()
    after = np.abs(out[box] - truth[box]).mean()
    assert before > 100
    assert after < 0.15 * before, (before, after)
    # Far from the mask (beyond the dilation and feathering) nothing changed.
    far = np.ones(mask.shape, bool)
    far[100:170, 40:110] = False
    assert np.array_equal(out[far], np.asarray(dirty, dtype=float)[far])
    assert job["result"]["method"] == method
    assert s.credits() == (9, 0)


def test_mask_mismatch_and_empty_mask_fail_clearly(srv: EffectsServer) -> None:
    s = srv.session(credits=10)
    image = s.upload(photo("chelsea"))
    small = s.upload(Image.new("RGB", (100, 100), "white"))
    job = s.run("remove_object", {"image": image, "mask": small})
    assert job["status"] == "failed" and job["error"]["code"] == "invalid_parameter"
    assert "mask: must be 451x300" in job["error"]["message"]

    black = s.upload(Image.new("RGB", (451, 300), "black"))
    job = s.run("remove_object", {"image": image, "mask": black})
    assert job["status"] == "failed" and "nothing to remove" in job["error"]["message"]
    assert s.credits() == (10, 0)


# -- filling with a model: LaMa-style ONNX (erase) or diffusion inpainting -------------------


@pytest.fixture
def fill_ctx(ctx: FakeRunContext, tmp_path: Path, tiny: TinyModels) -> FakeRunContext:
    """The pipeline context with a manager that knows tiny-lama (ONNX) and tiny-sd-inpaint."""
    models_dir = tmp_path / "fill-models"
    create_tiny_onnx_models(models_dir)
    inpaint = next(p for p in tiny.profiles if p.id == "tiny-sd-inpaint")
    Catalog(models_dir).add_profile(replace(inpaint, source=str(tiny.dir / inpaint.id)))
    ctx.models = ModelManager(models_dir, device="cpu", threads=1)
    return ctx


def dirty_cat() -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]]:
    dirty = np.asarray(photo("chelsea")).copy()
    box = (slice(120, 150), slice(60, 90))
    dirty[box] = (250, 250, 255)
    mask = np.zeros(dirty.shape[:2], np.uint8)
    mask[box] = 255
    return dirty, mask, box


@pytest.mark.parametrize("model", ["tiny-lama", "tiny-sd-inpaint"])
def test_a_model_fills_the_hole_and_leaves_the_rest(fill_ctx: FakeRunContext, model: str) -> None:
    import cv2

    dirty, mask, box = dirty_cat()
    params = RemoveObjectParams(
        image=fill_ctx.add_image(dirty),
        mask=fill_ctx.add_image(Image.fromarray(mask).convert("RGB")),
        model=model,
        dilate=3,
        feather=2.0,
        output_format="png",
    )
    result = RemoveObjectPipeline().run(params, fill_ctx)
    out = rgb(fill_ctx.saved[0].image)
    assert out.shape == dirty.shape
    grown = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))) > 0
    # Outside the grown (feathered) hole: the photo exactly; inside: the model's paint.
    assert np.array_equal(out[~grown], dirty[~grown].astype(float))
    assert np.abs(out[box] - dirty[box]).mean() > 10
    assert result["model"] == model and "method" not in result


def test_missing_unknown_and_unfit_fill_models(
    fill_ctx: FakeRunContext, ctx: FakeRunContext
) -> None:
    dirty, mask, _ = dirty_cat()
    image, hole = ctx.add_image(dirty), ctx.add_image(Image.fromarray(mask).convert("RGB"))

    def run(context: FakeRunContext, model: str) -> PixelForgeError:
        params = RemoveObjectParams(image=image, mask=hole, model=model)
        with pytest.raises(PixelForgeError) as e:
            RemoveObjectPipeline().run(params, context)
        return e.value

    fresh = FakeRunContext(root=ctx.root / "fresh")  # nothing pulled
    fresh.media = ctx.media
    for model in ("lama", "sd-inpainting"):
        err = run(fresh, model)
        assert err.code == ErrorCode.model_unavailable
        assert f"pixelforge models pull {model}" in err.message
    fill_ctx.media = ctx.media
    for model in ("nope", "tiny-matting"):
        err = run(fill_ctx, model)
        assert err.code == ErrorCode.invalid_parameter and "neither opencv" in err.message
