"""The aliveai dialect package: the mount contract (see pixelforge.dialects)."""

from __future__ import annotations

from pixelforge.dialects.aliveai import settings
from pixelforge.dialects.aliveai.routes import NAME, PREFIX, format_error, router
from pixelforge.services import Services

__all__ = ["NAME", "PREFIX", "format_error", "on_startup", "router"]


def on_startup(services: Services) -> None:
    services.extensions[NAME] = settings.load(services.settings)
