"""The AliveAI dialect under /aliveai: members, upload, prompts, websockets, catalog listings.

See docs/dialects/aliveai.md. Its options (`AliveaiSettings`) are kept in
`Services.extensions["aliveai"]`, read at startup.
"""

from __future__ import annotations

from pixelforge.dialects.aliveai import settings
from pixelforge.dialects.aliveai.errors import AliveAIError as ERROR_MODEL
from pixelforge.dialects.aliveai.errors import format_error
from pixelforge.dialects.aliveai.routes import PREFIX, router
from pixelforge.services import Services

NAME = "aliveai"

__all__ = ["ERROR_MODEL", "NAME", "PREFIX", "format_error", "on_startup", "router"]


def on_startup(services: Services) -> None:
    services.extensions[NAME] = settings.load(services.settings)
