"""The OpenAPI document says what the server answers: every error status, in its real shape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel

from pixelforge.web.errors import error_model

_F = TypeVar("_F", bound=Callable[..., Any])
_MARK = "__pixelforge_answers__"
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
_VALIDATION_REF = "#/components/schemas/HTTPValidationError"
DESCRIPTIONS = {
    400: "Invalid request (bad parameter, body or header)",
    401: "Missing or invalid credentials",
    402: "Not enough credits",
    403: "Not allowed for these credentials",
    404: "Not found",
    408: "The request body did not arrive in time",
    409: "Conflict with the current state",
    410: "Expired",
    413: "Body or upload too large",
    415: "Unsupported media type",
    422: "The idempotency key was used with another request",
    429: "Too many requests (rate limited); see Retry-After",
    501: "Not available on this server",
    503: "The model is not available right now",
    504: "Timed out",
}


def answers(*codes: int) -> Callable[[_F], _F]:
    """Marks an endpoint or dependency that can answer these error statuses beyond the ones
    every route of its kind documents (e.g. 409, 501): its routes document them too."""

    def mark(fn: _F) -> _F:
        setattr(fn, _MARK, frozenset(getattr(fn, _MARK, ())) | set(codes))
        return fn

    return mark


def authenticates(fn: _F) -> _F:
    """Marks a dependency that authenticates the caller: its routes document 401 and 403."""
    return answers(401, 403)(fn)


def _calls(dependant: Dependant) -> Iterator[Any]:
    yield dependant.call
    for dep in dependant.dependencies:
        yield from _calls(dep)


def _error_codes(route: RouteContext, op: dict[str, Any], path: str) -> set[int]:
    """The error statuses every route of this kind can answer (the limits apply to all)."""
    codes = {400, 429}
    for call in _calls(route.dependant):
        codes |= getattr(call, _MARK, frozenset())
    if "{" in path:
        codes.add(404)
    if "requestBody" in op:
        codes |= {408, 413, 415}  # the body read timeout and the body and upload limits
    names = {p.get("name", "").lower() for p in op.get("parameters", ())}
    if any("idempotency" in n for n in names):
        codes.add(422)
    return codes


def _is_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref") == _VALIDATION_REF)


def _document(op: dict[str, Any], codes: set[int], ref: str) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    if "422" in responses and _is_validation_error(responses["422"]):
        del responses["422"]  # FastAPI's default; validation errors are 400s here
    declared = {int(c) for c in responses if c.isdigit() and int(c) >= 400}
    for code in sorted(codes | declared):
        response = responses.setdefault(str(code), {})
        response.setdefault("description", DESCRIPTIONS.get(code, "Error"))
        media = response.setdefault("content", {}).setdefault("application/json", {})
        media["schema"] = {"$ref": ref}


def _add_models(spec: dict[str, Any], models: set[type[BaseModel]]) -> None:
    schemas: dict[str, Any] = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in sorted(models, key=lambda m: m.__name__):  # a stable document
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    if "HTTPValidationError" not in str(spec["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)


def document_errors(app: FastAPI, spec: dict[str, Any]) -> dict[str, Any]:
    """Adds to every operation the error statuses it can answer, each with its error shape."""
    routes = {
        (r.path_format, method.lower()): r
        for r in iter_route_contexts(app.routes)
        if isinstance(r.original_route, APIRoute)
        for method in r.methods or ()
    }
    used: set[type[BaseModel]] = set()
    for path, item in spec.get("paths", {}).items():
        model = error_model(app, path)
        used.add(model)
        for method in _METHODS:
            route = routes.get((path, method))
            if method in item and route is not None:
                op = item[method]
                codes = _error_codes(route, op, path)
                _document(op, codes, f"#/components/schemas/{model.__name__}")
    _add_models(spec, used)
    return spec


def install_openapi(app: FastAPI) -> None:
    """`app.openapi()` builds FastAPI's document once, then documents the errors in it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(app, build())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
