"""Sampling options from an engine call's keyword arguments, checked once for every backend."""

from __future__ import annotations

from typing import Any

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.llm import Sampling


def sampling_from(sampling: dict[str, Any]) -> Sampling:
    """`Sampling` from keyword arguments; `stop` may be one string or a list (empty strings
    dropped). An unknown option is an invalid_parameter, not a TypeError."""
    stop = sampling.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(s for s in stop or () if s)
    try:
        return Sampling(**{**sampling, "stop": stops})
    except TypeError as e:
        raise PixelForgeError(ErrorCode.invalid_parameter, f"unknown sampling option: {e}") from e
