"""Dialects: foreign APIs (the seeds' and OpenAI's) translated into core jobs and back.

Each dialect is a package here with the same file roles:
- `__init__.py`: the mount contract: `NAME`, `PREFIX` (its settings name and the path prefix
  its routes live under), `router` (a FastAPI `APIRouter` with its routes, full paths),
  `format_error(err) -> Response` (its error shape, used for every error under `PREFIX`, or
  under each of `PREFIXES` when a dialect's routes live under several),
  `ERROR_MODEL` (a pydantic model of that shape, for the OpenAPI document) and
  optionally `on_startup(services)` (one-time preparation: options, keys, accounts);
- `routes.py` (or `routes_*.py`), `schemas.py` (request/response models and examples),
  `translate.py` (request -> core job params, job/result -> response), `errors.py` (its error
  shape and code mapping), `settings.py` when it has options; plus its own modules.

A dialect holds no business logic: credits, idempotency, limits, storage and running are the
core's (`pixelforge.dialects.common` is the door to them). What it keeps for itself lives in
`Services.extensions[NAME]`, set by its on_startup.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TypeVar

from fastapi import FastAPI
from pydantic_settings import BaseSettings

from pixelforge.services import Services
from pixelforge.settings import Settings
from pixelforge.web.errors import register_error_format

KNOWN = ("aiart", "eventstation", "perfect", "aliveai", "openai")
_S = TypeVar("_S", bound=BaseSettings)


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
        for prefix in getattr(module, "PREFIXES", (module.PREFIX,)):
            register_error_format(app, prefix, module.format_error, module.ERROR_MODEL)
    return modules


def start(modules: list[ModuleType], services: Services) -> None:
    unknown = sorted(set(services.settings.dialect_options) - set(KNOWN))
    if unknown:
        raise ValueError(f"dialect_options for unknown dialects {unknown}")
    for module in modules:
        hook = getattr(module, "on_startup", None)
        if hook is not None:
            hook(services)


def load_options(settings: Settings, name: str, kind: type[_S]) -> _S:
    """A dialect's options: `settings.dialect_options[name]` over its environment variables."""
    return kind(**settings.dialect_options.get(name, {}))
