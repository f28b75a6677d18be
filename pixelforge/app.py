"""The composition root: `create_app(settings)` wires services, the native API and the
dialects into one ASGI app. Nothing below imports this module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pixelforge import __version__, dialects
from pixelforge.api.main import DESCRIPTION, include_routes
from pixelforge.services import Services, build_services
from pixelforge.settings import Settings
from pixelforge.web.errors import install_error_handlers
from pixelforge.web.middleware import LimitsMiddleware
from pixelforge.web.openapi import install_openapi


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
    include_routes(app)
    mounted = dialects.mount(app, settings.dialects)
    install_openapi(app)
    return app
