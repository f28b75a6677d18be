"""The native API: its routers, in the order they appear in the OpenAPI document."""

from __future__ import annotations

from fastapi import FastAPI

from pixelforge import __version__
from pixelforge.api.routes import (
    admin,
    analyze,
    auth,
    catalog,
    character_cards,
    characters,
    chat_images,
    chats,
    events,
    jobs,
    me,
    media,
    models,
    personas,
    pipelines,
    prompts,
)

DESCRIPTION = """
Self-hosted generative-media API: submit jobs to pipelines, follow them over websockets,
download results by signed URL. Credits are held when a job is accepted and charged only
when it succeeds.

Authenticate with `Authorization: Bearer <API key or access token>`, `Authorization: Key
<API key>` or `X-API-Key: <API key>`. Every error is `{"error": {"code", "message"}}`.
"""


def include_routes(app: FastAPI) -> None:
    """The native API's routers, and the liveness probe."""
    for module in (
        auth,
        me,
        admin,
        jobs,
        media,
        pipelines,
        catalog,
        models,
        analyze,
        characters,
        character_cards,
        personas,
        chats,
        chat_images,
        prompts,
        events,
    ):
        app.include_router(module.router)

    @app.get(
        "/healthz",
        tags=["meta"],
        summary="Liveness",
        responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
    )
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}
