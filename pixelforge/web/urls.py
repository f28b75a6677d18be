"""Absolute URLs for responses: the configured public URL, else the request's own."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from pixelforge.services import Services


def base_url(services: Services, conn: HTTPConnection) -> str:
    """Where clients reach this server (`public_url` behind a proxy), without a final slash."""
    return (services.settings.public_url or str(conn.base_url)).rstrip("/")
