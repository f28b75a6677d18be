"""Decode untrusted image bytes within size limits and re-encode them without metadata."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pixelforge.errors import ErrorCode, PixelForgeError, too_large

# Only the plugins a user would upload; PSD, EPS, ICO and friends widen the attack surface.
_ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


@dataclass(frozen=True)
class ValidatedImage:
    data: bytes
    format: str
    content_type: str
    width: int
    height: int
    has_alpha: bool


def validate_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ValidatedImage:
    """Check limits, decode the first frame, and re-encode it without metadata.

    JPEG stays JPEG (quality 95) and WebP stays WebP (lossless if the upload was lossless,
    quality 95 otherwise) so a re-encode costs no more than one generation; every other
    format becomes PNG.
    """
    if len(data) > max_bytes:
        raise too_large("the image", max_bytes)
    with _bomb_guard(max_pixels):
        src = _identify(data)
        try:
            width, height = src.size
            # Checked from the header alone: nothing has been decoded yet.
            if width * height > max_pixels:
                raise _too_large(max_pixels, f"{width}x{height}")
            source_format = (src.format or "").upper()
            img = _decode(src)
        finally:
            src.close()

    if source_format in ("JPEG", "MPO"):
        out, content_type = encode_image(img, fmt="jpeg", quality=95)
        fmt = "jpeg"
    elif source_format == "WEBP" and _webp_is_lossless(data):
        out, content_type = _save(img, "WEBP", lossless=True, method=2), _CONTENT_TYPES["webp"]
        fmt = "webp"
    elif source_format == "WEBP":
        out, content_type = encode_image(img, fmt="webp", quality=95)
        fmt = "webp"
    else:
        out, content_type = encode_image(img, fmt="png")
        fmt = "png"
    return ValidatedImage(
        data=out,
        format=fmt,
        content_type=content_type,
        width=img.width,
        height=img.height,
        has_alpha=img.mode == "RGBA",
    )


def open_image(data: bytes) -> Image.Image:
    """Decode bytes that went through validate_image into a loaded RGB or RGBA image."""
    # Pillow's own bomb limit still applies; the caller already enforced max_pixels.
    with _bomb_guard(Image.MAX_IMAGE_PIXELS or 2**31):
        src = _identify(data)
        try:
            return _decode(src)
        finally:
            src.close()


def encode_image(img: Image.Image, *, fmt: str, quality: int = 95) -> tuple[bytes, str]:
    """Encode an image as png, jpg/jpeg or webp; JPEG flattens transparency onto white."""
    fmt = fmt.lower()
    if not 1 <= quality <= 100:
        raise PixelForgeError(
            ErrorCode.invalid_parameter, f"quality must be between 1 and 100, got {quality}"
        )
    img = _to_rgb_or_rgba(img)
    if fmt == "png":
        return _save(img, "PNG"), _CONTENT_TYPES["png"]
    if fmt in ("jpg", "jpeg"):
        if img.mode == "RGBA":
            flat = Image.new("RGB", img.size, (255, 255, 255))
            flat.paste(img, mask=img.getchannel("A"))
            img = flat
        return _save(img, "JPEG", quality=quality), _CONTENT_TYPES["jpeg"]
    if fmt == "webp":
        return _save(img, "WEBP", quality=quality), _CONTENT_TYPES["webp"]
    raise PixelForgeError(
        ErrorCode.invalid_parameter, f"unsupported image format {fmt!r}; use png, jpeg or webp"
    )


@contextmanager
def _bomb_guard(max_pixels: int) -> Iterator[None]:
    """Turn Pillow's decompression-bomb warning and error into image_too_large.

    The warning filter is scoped with catch_warnings rather than by changing
    Image.MAX_IMAGE_PIXELS, which other code in the process relies on.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_large(max_pixels) from exc


def _identify(data: bytes) -> Image.Image:
    try:
        return Image.open(BytesIO(data), formats=_ACCEPTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise PixelForgeError(
            ErrorCode.unsupported_media_type,
            "file is not a supported image (PNG, JPEG, WebP, GIF, BMP or TIFF)",
        ) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise
    except Exception as exc:
        raise _decode_error(exc) from exc


def _decode(src: Image.Image) -> Image.Image:
    """Load the first frame, apply EXIF orientation and drop everything but the pixels."""
    try:
        src.load()
        oriented = ImageOps.exif_transpose(src) or src
        img = _to_rgb_or_rgba(oriented)
        # A fresh image carries no info dict, so EXIF, ICC, XMP and text chunks stay behind.
        clean = Image.new(img.mode, img.size)
        clean.paste(img)
        return clean
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise
    except Exception as exc:
        raise _decode_error(exc) from exc


def _to_rgb_or_rgba(img: Image.Image) -> Image.Image:
    if img.mode in ("RGB", "RGBA"):
        return img
    if img.mode in _SIXTEEN_BIT_MODES:
        # Pillow's own I;16 -> L conversion clips instead of scaling, turning most pixels white.
        wide = np.clip(np.asarray(img).astype(np.int64), 0, 65535)
        return Image.fromarray((wide // 257).astype(np.uint8)).convert("RGB")
    if img.mode == "F":
        return img.convert("L").convert("RGB")
    return img.convert("RGBA" if img.has_transparency_data else "RGB")


def _save(img: Image.Image, pil_format: str, **params: object) -> bytes:
    buf = BytesIO()
    img.save(buf, format=pil_format, **params)
    return buf.getvalue()


def _webp_is_lossless(data: bytes) -> bool:
    """Read the RIFF chunk list: VP8L carries lossless data, VP8 lossy."""
    pos = 12
    while pos + 8 <= len(data):
        fourcc = data[pos : pos + 4]
        if fourcc == b"VP8L":
            return True
        if fourcc in (b"VP8 ", b"ANMF"):
            return False
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        pos += 8 + size + (size & 1)
    return False


def _too_large(max_pixels: int, dims: str | None = None) -> PixelForgeError:
    what = f"image is {dims} pixels" if dims else "image dimensions are too large"
    return PixelForgeError(
        ErrorCode.image_too_large,
        f"{what}; the limit is {max_pixels:,} pixels in total, so resize it and try again",
    )


def _decode_error(exc: Exception) -> PixelForgeError:
    return PixelForgeError(
        ErrorCode.error_decode_image,
        f"image could not be decoded; it may be truncated or corrupt ({exc})",
    )
