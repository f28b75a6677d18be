"""The Perfect AI dialect (Perfect Corp's S2S API v1.0), mounted under /perfect.

A Perfect client changes only its base URL to `<server>/perfect`; see docs/dialects/perfect.md.
Its options (`PerfectSettings`, key path resolved) are kept in `Services.extensions["perfect"]`.
"""

from __future__ import annotations

from pixelforge.dialects.perfect import settings
from pixelforge.dialects.perfect.auth import ensure_key, server_key
from pixelforge.dialects.perfect.errors import PerfectErrorOut as ERROR_MODEL
from pixelforge.dialects.perfect.errors import format_error
from pixelforge.dialects.perfect.features import PREFIX
from pixelforge.dialects.perfect.routes import router
from pixelforge.services import Services

NAME = "perfect"

__all__ = ["ERROR_MODEL", "NAME", "PREFIX", "format_error", "on_startup", "router"]


def on_startup(services: Services) -> None:
    """Read the options; generate the server's RSA key pair once (mode 0600)."""
    options = settings.load(services.settings)
    services.extensions[NAME] = options
    ensure_key(settings.key_path(options))
    server_key(options)
