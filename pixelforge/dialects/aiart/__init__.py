"""The aiart dialect package: the mount contract (see pixelforge.dialects)."""

from __future__ import annotations

from pixelforge.dialects.aiart.routes import NAME, PREFIX, format_error, on_startup, router

__all__ = ["NAME", "PREFIX", "format_error", "on_startup", "router"]
