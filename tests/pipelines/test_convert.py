"""Tests for pixelforge/pipelines/convert.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from skimage import data

from pixelforge.pipelines.contract import JobCanceled, media_refs
from pixelforge.pipelines.convert import ConvertParams, ConvertPipeline

if TYPE_CHECKING:  # conftest is not importable by name once several test dirs have one
    from conftest import FakeRunContext


def convert(ctx: FakeRunContext, img: Image.Image, **params: object) -> dict[str, object]:
    ref = ctx.add_image(img)
    return ConvertPipeline().run(ConvertParams.model_validate({"image": ref, **params}), ctx)


@pytest.mark.parametrize(("fmt", "pil_format"), [("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP")])
def test_format_is_honoured(ctx: FakeRunContext, fmt: str, pil_format: str) -> None:
    result = convert(ctx, Image.fromarray(data.astronaut()), format=fmt, max_side=64)

    assert result == {"width": 64, "height": 64, "format": fmt}
    [saved] = ctx.saved
    assert saved.format == fmt
    assert saved.image.format == pil_format
    assert ctx.progress_calls == [(1, 1)]


def test_max_side_keeps_the_aspect_ratio(ctx: FakeRunContext) -> None:
    img = Image.fromarray(data.coffee())  # 600x400
    result = convert(ctx, img, max_side=150)

    assert (result["width"], result["height"]) == (150, 100)
    assert ctx.saved[0].image.size == (150, 100)


def test_max_side_on_a_portrait_image(ctx: FakeRunContext) -> None:
    img = Image.fromarray(data.coffee()).transpose(Image.Transpose.ROTATE_90)  # 400x600
    result = convert(ctx, img, max_side=300)

    assert (result["width"], result["height"]) == (200, 300)


def test_never_upscales(ctx: FakeRunContext) -> None:
    img = Image.fromarray(data.astronaut()).resize((40, 30))
    result = convert(ctx, img, max_side=4096)

    assert (result["width"], result["height"]) == (40, 30)
    assert ctx.saved[0].image.size == (40, 30)


def test_png_keeps_pixels_and_alpha(ctx: FakeRunContext) -> None:
    rgba = Image.fromarray(data.astronaut()).resize((32, 32)).convert("RGBA")
    rgba.putalpha(128)
    convert(ctx, rgba)

    out = ctx.saved[0].image
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out), np.asarray(rgba))


def test_rgba_to_jpg_is_flattened(ctx: FakeRunContext) -> None:
    rgba = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    convert(ctx, rgba, format="jpg")

    out = ctx.saved[0].image
    assert out.mode == "RGB"
    assert np.asarray(out).min() > 250


def test_canceled_job_saves_nothing(ctx: FakeRunContext) -> None:
    ctx.cancel()
    ref = ctx.add_image(Image.new("RGB", (8, 8)))

    with pytest.raises(JobCanceled):
        ConvertPipeline().run(ConvertParams(image=ref), ctx)
    assert ctx.saved == []


def test_params_contract() -> None:
    params = ConvertParams(image="med_1")
    assert (params.format, params.max_side, params.quality) == ("png", None, 90)
    assert media_refs(params) == ["med_1"]
    assert ConvertPipeline().cost(params) == 1
    for bad in ({"format": "gif"}, {"max_side": 0}, {"max_side": 9000}, {"quality": 0}, {"x": 1}):
        with pytest.raises(ValidationError):
            ConvertParams.model_validate({"image": "med_1", **bad})
