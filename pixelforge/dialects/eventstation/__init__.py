"""The Eventstation.AI dialect: filter ids, self prompting and photo tools, polled by job id.

Mounts its routes under `/eventstation` and, beside them, the administrators' filter routes
under `/v1/admin/filters` (they exist only while this dialect is enabled). Its filters are
kept in `Services.extensions["eventstation"]` (a `FilterService`), seeded at startup.
See docs/dialects/eventstation.md.
"""

from __future__ import annotations

from fastapi import APIRouter

from pixelforge.dialects.eventstation import routes, routes_admin
from pixelforge.dialects.eventstation.errors import EventstationError as ERROR_MODEL
from pixelforge.dialects.eventstation.errors import format_error
from pixelforge.dialects.eventstation.filters import FilterService
from pixelforge.services import Services

NAME = "eventstation"
PREFIX = routes.PREFIX
router = APIRouter()
router.include_router(routes.router)
router.include_router(routes_admin.router)

__all__ = ["ERROR_MODEL", "NAME", "PREFIX", "format_error", "on_startup", "router"]


def on_startup(services: Services) -> None:
    """Seed the shipped filters (edits and deletions kept) and keep the service for the routes."""
    filters = FilterService(services.db)
    filters.seed()
    services.extensions[NAME] = filters
