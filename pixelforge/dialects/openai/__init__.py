"""The openai dialect package: the mount contract (see pixelforge.dialects)."""

from __future__ import annotations

from pixelforge.dialects.openai.routes import NAME, PREFIX, format_error, router

__all__ = ["NAME", "PREFIX", "format_error", "router"]
