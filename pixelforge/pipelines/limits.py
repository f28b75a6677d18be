"""Input limits a pipeline declares (long/short side, formats, face width), checked at submit.

Each pipeline states its own `input_limit` (None: whatever uploads accept). It is checked
when a job is accepted, from the stored media rows (size and type are known from upload), so
a photo a pipeline cannot take is refused with 400/415 before any credit is held. Pipelines
still call `check_long_side` on what they load, as a second line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from pixelforge.errors import ErrorCode, PixelForgeError

# Perfect's documented long-side limit; it also bounds memory (a 4096 px photo already needs
# about 2 GB and tens of seconds in the heavier effects on a CPU).
EFFECT_MAX_SIDE = 4096

JPG_PNG = frozenset({"image/jpeg", "image/png"})
JPG = frozenset({"image/jpeg"})
_FORMAT_NAMES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


@dataclass(frozen=True)
class InputLimit:
    """What one pipeline accepts as its input photos (every media field of its params)."""

    max_long_side: int = EFFECT_MAX_SIDE
    min_short_side: int = 0
    max_short_side: int | None = None
    formats: frozenset[str] | None = None  # content types; None = whatever uploads accept
    min_face_width: int = 0  # checked by the pipeline once it has found the face

    def describe(self) -> str:
        parts = [f"long side <= {self.max_long_side}"]
        if self.min_short_side:
            parts.append(f"short side >= {self.min_short_side}")
        if self.max_short_side:
            parts.append(f"short side <= {self.max_short_side}")
        if self.min_face_width:
            parts.append(f"face width >= {self.min_face_width}")
        if self.formats:
            parts.append("/".join(sorted(_FORMAT_NAMES.get(f, f) for f in self.formats)))
        return ", ".join(parts)


# Presets from Perfect's "Supported Formats & Dimensions" table, which pipelines declare as
# their `input_limit`. HEIC, which Perfect also lists for some effects, is not decoded by
# PixelForge (uploads refuse it).
PHOTO_EFFECT = InputLimit(formats=JPG_PNG)
PORTRAIT_EDIT = InputLimit(max_long_side=1024, min_face_width=128, formats=JPG_PNG)


class Limited(Protocol):
    """What the checks read from a pipeline: its name (for messages) and its own limit."""

    @property
    def name(self) -> str: ...

    @property
    def input_limit(self) -> InputLimit | None: ...


def check_input(
    pipeline: Limited,
    field: str,
    *,
    width: int | None,
    height: int | None,
    content_type: str,
) -> None:
    """Refuse an input photo outside the pipeline's declared limit (400 size, 415 format)."""
    limit, name = pipeline.input_limit, pipeline.name
    if limit is None or not content_type.startswith("image/"):
        return
    if limit.formats is not None and content_type not in limit.formats:
        given = _FORMAT_NAMES.get(content_type, content_type)
        allowed = "/".join(sorted(_FORMAT_NAMES.get(f, f) for f in limit.formats))
        raise PixelForgeError(
            ErrorCode.unsupported_media_type,
            f"{field}: {name} takes {allowed} photos, this one is {given}; "
            "convert it first (the convert pipeline with format jpg)",
        )
    if width is None or height is None:
        return
    long_side, short_side = max(width, height), min(width, height)
    problem = None
    if long_side > limit.max_long_side:
        problem = f"is over {limit.max_long_side} px on its longest side"
    elif short_side < limit.min_short_side:
        problem = f"is under {limit.min_short_side} px on its shortest side"
    elif limit.max_short_side is not None and short_side > limit.max_short_side:
        problem = f"is over {limit.max_short_side} px on its shortest side"
    if problem:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"{field}: {width}x{height} {problem}; {name} accepts {limit.describe()} "
            "(resize it first, e.g. the convert pipeline with max_side)",
        )


def check_face_width(pipeline: Limited, face_width: float) -> None:
    """Refuse a face too small for the pipeline's declared limit (error_no_face: none usable)."""
    limit = pipeline.input_limit
    if limit is not None and face_width < limit.min_face_width:
        raise PixelForgeError(
            ErrorCode.error_no_face,
            f"the face is {face_width:.0f} px wide; {pipeline.name} needs a face at least "
            f"{limit.min_face_width} px wide (use a closer or larger photo)",
        )


def check_long_side(img: Image.Image, what: str = "image", limit: int = EFFECT_MAX_SIDE) -> None:
    if max(img.size) > limit:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"{what}: {img.width}x{img.height} is over {limit} px on its longest side; "
            f"downscale it first (e.g. the convert pipeline with max_side {limit})",
        )
