"""Dialects: foreign APIs (the seeds' and OpenAI's) translated into core jobs and back.

Each dialect is a module here with:
- `NAME`, `PREFIX`: its settings name and the path prefix its routes live under;
- `router`: a FastAPI `APIRouter` with its routes (full paths, prefix included);
- `format_error(err) -> Response`: its error shape, used for every error under `PREFIX`;
- optionally `on_startup(services)`: one-time preparation (keys, accounts) at app start.

A dialect holds no business logic: credits, idempotency, limits, storage and running are the
core's (`pixelforge.dialects.common` is the door to them).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from fastapi import FastAPI

from pixelforge.services import Services
from pixelforge.web.errors import register_error_format

KNOWN = ("aiart", "eventstation", "perfect", "aliveai", "openai")


def enabled(names: list[str]) -> list[ModuleType]:
    unknown = sorted(set(names) - set(KNOWN))
    if unknown:
        raise ValueError(f"unknown dialects {unknown}; known: {', '.join(KNOWN)}")
    return [importlib.import_module(f"pixelforge.dialects.{n}") for n in KNOWN if n in names]


def mount(app: FastAPI, names: list[str]) -> list[ModuleType]:
    """Include the enabled dialects' routes and error shapes in the app."""
    modules = enabled(names)
    for module in modules:
        app.include_router(module.router)
        register_error_format(app, module.PREFIX, module.format_error)
    return modules


def start(modules: list[ModuleType], services: Services) -> None:
    for module in modules:
        hook = getattr(module, "on_startup", None)
        if hook is not None:
            hook(services)
