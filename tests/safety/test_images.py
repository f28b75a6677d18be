"""Tests for pixelforge.safety.images: limits, hostile files and clean re-encoding."""

from __future__ import annotations

import io
import resource
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image
from skimage import data

from pixelforge.errors import ErrorCode, PixelForgeError, human_size
from pixelforge.safety.images import encode_image, open_image, validate_image

MB = 1024 * 1024
LIMITS = {"max_bytes": 20 * MB, "max_pixels": 40_000_000}


def _encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bomb(side: int) -> bytes:
    """A valid 1-bit PNG of side x side zero pixels, built by streaming zlib over zero rows."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_block = 1000
    idat = b"".join(compressor.compress(row * rows_per_block) for _ in range(side // 1000))
    idat += compressor.compress(row * (side % rows_per_block)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="module")
def chelsea() -> Image.Image:
    return Image.fromarray(data.chelsea())


@pytest.mark.parametrize(
    ("pil_format", "params", "expected"),
    [
        ("PNG", {}, "png"),
        ("JPEG", {"quality": 90}, "jpeg"),
        ("WEBP", {"quality": 80}, "webp"),
        ("WEBP", {"lossless": True}, "webp"),
        ("GIF", {}, "png"),
        ("BMP", {}, "png"),
        ("TIFF", {}, "png"),
    ],
)
def test_round_trip_keeps_size_and_format(
    chelsea: Image.Image, pil_format: str, params: dict[str, object], expected: str
) -> None:
    result = validate_image(_encode(chelsea, pil_format, **params), **LIMITS)

    assert (result.width, result.height) == chelsea.size
    assert result.format == expected
    assert result.content_type == f"image/{expected}"
    assert result.has_alpha is False
    decoded = Image.open(io.BytesIO(result.data))
    assert decoded.format == expected.upper()
    assert decoded.size == chelsea.size


def test_lossless_sources_stay_pixel_exact(astronaut: Image.Image) -> None:
    for raw in (_encode(astronaut, "PNG"), _encode(astronaut, "WEBP", lossless=True)):
        result = validate_image(raw, **LIMITS)
        assert np.array_equal(np.asarray(open_image(result.data)), np.asarray(astronaut))


def test_jpeg_reencode_is_close_to_source(astronaut: Image.Image) -> None:
    result = validate_image(_encode(astronaut, "JPEG", quality=95), **LIMITS)
    diff = np.abs(np.asarray(open_image(result.data), dtype=np.int16) - np.asarray(astronaut))
    assert diff.mean() < 3


def test_oversize_file_is_refused_with_413(astronaut: Image.Image) -> None:
    raw = _encode(astronaut, "PNG")
    with pytest.raises(PixelForgeError) as info:
        validate_image(raw, max_bytes=len(raw) - 1, max_pixels=LIMITS["max_pixels"])
    assert info.value.code is ErrorCode.exceed_max_filesize
    assert info.value.status == 413
    assert human_size(len(raw) - 1) in info.value.message


@pytest.mark.parametrize(
    "raw",
    [
        b"<!DOCTYPE html><html><body>not a png</body></html>",
        b"just some text",
        b"PK\x03\x04" + b"\x00" * 100,  # a zip archive
        b"%PDF-1.7\n" + b"\x00" * 100,
        b"",
    ],
)
def test_non_images_are_unsupported_media_type(raw: bytes) -> None:
    with pytest.raises(PixelForgeError) as info:
        validate_image(raw, **LIMITS)
    assert info.value.code is ErrorCode.unsupported_media_type
    assert info.value.status == 415


def test_exotic_formats_are_refused(astronaut: Image.Image) -> None:
    # Pillow can read these, but they are not on the allow-list.
    for pil_format in ("ICO", "PPM", "TGA"):
        with pytest.raises(PixelForgeError) as info:
            validate_image(_encode(astronaut, pil_format), **LIMITS)
        assert info.value.code is ErrorCode.unsupported_media_type


def test_png_bomb_is_refused_from_the_header_without_allocating() -> None:
    bomb = _png_bomb(20_000)
    assert len(bomb) < 1 * MB

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(PixelForgeError) as info:
            validate_image(bomb, **LIMITS)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024

    assert info.value.code is ErrorCode.image_too_large
    assert info.value.status == 400
    assert elapsed < 1.0
    assert peak < 100 * MB
    assert rss_growth_mb < 100  # decoding would have needed 400 MB


def test_images_over_max_pixels_are_too_large(astronaut: Image.Image) -> None:
    with pytest.raises(PixelForgeError) as info:
        validate_image(_encode(astronaut, "PNG"), max_bytes=20 * MB, max_pixels=512 * 512 - 1)
    assert info.value.code is ErrorCode.image_too_large
    assert "512x512" in info.value.message


def test_bomb_under_pillow_limit_is_refused_by_our_header_check() -> None:
    # 8000x8000 is under Pillow's own limit, so only max_pixels stands in the way.
    tracemalloc.start()
    try:
        with pytest.raises(PixelForgeError) as info:
            validate_image(_png_bomb(8_000), max_bytes=20 * MB, max_pixels=40_000_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code is ErrorCode.image_too_large
    assert "8000x8000" in info.value.message
    assert peak < 20 * MB


def test_pillow_bomb_warning_range_is_too_large() -> None:
    # 10000x10000 is past Image.MAX_IMAGE_PIXELS (a warning) but under twice it (an error).
    with pytest.raises(PixelForgeError) as info:
        validate_image(_png_bomb(10_000), max_bytes=20 * MB, max_pixels=10**9)
    assert info.value.code is ErrorCode.image_too_large


def test_truncated_jpeg_is_a_decode_error(astronaut: Image.Image) -> None:
    raw = _encode(astronaut, "JPEG", quality=90)
    with pytest.raises(PixelForgeError) as info:
        validate_image(raw[: len(raw) // 2], **LIMITS)
    assert info.value.code is ErrorCode.error_decode_image
    assert info.value.status == 400


def test_corrupt_png_is_a_decode_error(astronaut: Image.Image) -> None:
    raw = bytearray(_encode(astronaut, "PNG"))
    raw[200:400] = b"\xff" * 200  # inside IDAT: the header still identifies
    with pytest.raises(PixelForgeError) as info:
        validate_image(bytes(raw), **LIMITS)
    assert info.value.code is ErrorCode.error_decode_image


def test_exif_orientation_is_applied_and_metadata_dropped(chelsea: Image.Image) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    exif[0x010F] = "SecretCam"  # Make
    raw = _encode(chelsea, "JPEG", quality=95, exif=exif.tobytes())

    result = validate_image(raw, **LIMITS)

    assert (result.width, result.height) == (chelsea.height, chelsea.width)
    out = Image.open(io.BytesIO(result.data))
    assert out.size == (chelsea.height, chelsea.width)
    assert not out.getexif()
    assert b"SecretCam" not in result.data
    # The top-left source pixel ends up at the top-right after a clockwise turn.
    rotated = np.asarray(open_image(result.data), dtype=np.int16)
    assert np.abs(rotated[0, -1] - np.asarray(chelsea)[0, 0]).max() < 24


def test_cmyk_jpeg_comes_out_rgb(chelsea: Image.Image) -> None:
    result = validate_image(_encode(chelsea.convert("CMYK"), "JPEG", quality=95), **LIMITS)
    out = open_image(result.data)
    assert result.format == "jpeg"
    assert out.mode == "RGB"
    assert result.has_alpha is False


def test_palette_png_with_transparency_comes_out_rgba(chelsea: Image.Image) -> None:
    palette = chelsea.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    palette.info["transparency"] = 0
    result = validate_image(_encode(palette, "PNG", transparency=0), **LIMITS)
    out = open_image(result.data)
    assert result.has_alpha is True
    assert out.mode == "RGBA"
    assert result.format == "png"


@pytest.mark.parametrize("mode", ["L", "LA", "1", "I;16"])
def test_odd_modes_become_rgb_or_rgba(chelsea: Image.Image, mode: str) -> None:
    if mode == "I;16":
        wide = (np.asarray(chelsea.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
        source = Image.fromarray(wide)
    else:
        source = chelsea.convert(mode)
    result = validate_image(_encode(source, "PNG"), **LIMITS)
    out = open_image(result.data)
    assert out.mode == ("RGBA" if mode == "LA" else "RGB")
    if mode == "I;16":
        # Scaled down, not clipped to white.
        expected = np.asarray(chelsea.convert("L"), dtype=np.int16)
        assert np.abs(np.asarray(out.convert("L"), dtype=np.int16) - expected).max() <= 1


def test_animated_gif_keeps_the_first_frame(chelsea: Image.Image) -> None:
    small = chelsea.resize((64, 48))
    frames = [small, small.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    raw = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    result = validate_image(raw, **LIMITS)
    assert (result.width, result.height) == (64, 48)
    assert result.format == "png"


def test_png_text_metadata_is_dropped(astronaut: Image.Image) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "gps 48.8584 2.2945")
    result = validate_image(_encode(astronaut, "PNG", pnginfo=info), **LIMITS)
    assert b"gps 48.8584" not in result.data


@pytest.mark.parametrize(("fmt", "content_type"), [("png", "image/png"), ("webp", "image/webp")])
def test_encode_image_keeps_alpha(fmt: str, content_type: str) -> None:
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    raw, ctype = encode_image(img, fmt=fmt)
    assert ctype == content_type
    assert Image.open(io.BytesIO(raw)).mode == "RGBA"


@pytest.mark.parametrize("fmt", ["jpg", "jpeg", "JPEG"])
def test_encode_image_jpeg_flattens_alpha_onto_white(fmt: str) -> None:
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    raw, ctype = encode_image(img, fmt=fmt)
    out = Image.open(io.BytesIO(raw))
    assert ctype == "image/jpeg"
    assert out.mode == "RGB"
    pixel = out.getpixel((4, 4))
    assert isinstance(pixel, tuple)
    assert min(pixel) > 245


def test_encode_image_unknown_format_is_invalid_parameter() -> None:
    with pytest.raises(PixelForgeError) as info:
        encode_image(Image.new("RGB", (4, 4)), fmt="tiff")
    assert info.value.code is ErrorCode.invalid_parameter


def test_open_image_refuses_garbage() -> None:
    with pytest.raises(PixelForgeError) as info:
        open_image(b"<html></html>")
    assert info.value.code is ErrorCode.unsupported_media_type
