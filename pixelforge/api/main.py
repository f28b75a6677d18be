"""The application factory: `create_app(settings)` builds services in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pixelforge import __version__, dialects
from pixelforge.api.errors import install_error_handlers
from pixelforge.api.middleware import LimitsMiddleware
from pixelforge.api.routes import (
    admin,
    analyze,
    auth,
    catalog,
    events,
    jobs,
    me,
    media,
    models,
    pipelines,
)
from pixelforge.services import Services, build_services
from pixelforge.settings import Settings

DESCRIPTION = """
Self-hosted generative-media API: submit jobs to pipelines, follow them over websockets,
download results by signed URL. Credits are held when a job is accepted and charged only
when it succeeds.

Authenticate with `Authorization: Bearer <API key or access token>`, `Authorization: Key
<API key>` or `X-API-Key: <API key>`. Every error is `{"error": {"code", "message"}}`.
"""


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """A new app. Pass `services` to share already-built ones (the CLI's `serve` does)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = services or build_services(settings)
        app.state.services = built
        # FastAPI prepares included routers' routes lazily, on the first request that reaches
        # them; doing it once here keeps that work out of concurrent first requests.
        for route in app.router.routes:
            prepare = getattr(route, "effective_candidates", None)
            if callable(prepare):
                prepare()
        dialects.start(mounted, built)
        built.start()
        try:
            yield
        finally:
            built.close()

    app = FastAPI(
        title="PixelForge",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(LimitsMiddleware)
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
        events,
    ):
        app.include_router(module.router)
    mounted = dialects.mount(app, settings.dialects)

    @app.get(
        "/healthz",
        tags=["meta"],
        summary="Liveness",
        responses={200: {"content": {"application/json": {"example": {"status": "ok"}}}}},
    )
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
