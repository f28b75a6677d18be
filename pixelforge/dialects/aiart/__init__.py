"""The AiArt dialect: its text-to-image, image-to-image and image-to-video REST API.

Mounted under `/aiart`; see docs/dialects/aiart.md. Its options (`AiartSettings`) are kept in
`Services.extensions["aiart"]`, read at startup.
"""

from __future__ import annotations

from pixelforge.dialects.aiart import settings
from pixelforge.dialects.aiart.auth import anonymous_account
from pixelforge.dialects.aiart.errors import AiArtError as ERROR_MODEL
from pixelforge.dialects.aiart.errors import format_error
from pixelforge.dialects.aiart.routes import router
from pixelforge.dialects.aiart.translate import PREFIX
from pixelforge.services import Services

NAME = "aiart"

__all__ = ["ERROR_MODEL", "NAME", "PREFIX", "format_error", "on_startup", "router"]


def on_startup(services: Services) -> None:
    """Read the options; create the anonymous account (with its grant) if it is missing."""
    services.extensions[NAME] = settings.load(services.settings)
    anonymous_account(services)
