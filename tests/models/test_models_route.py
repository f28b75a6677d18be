"""GET /v1/models and /v1/models/{id} on a bare app, with the manager and auth swapped in."""

from __future__ import annotations

from types import SimpleNamespace

from fastapi import FastAPI
from fastapi.testclient import TestClient

from pixelforge.api.routes import models as models_route
from pixelforge.models.base import TEXT_TO_IMAGE
from pixelforge.models.manager import ModelManager
from pixelforge.web.deps import current_account


def test_lists_profiles_with_availability_and_residency(manager: ModelManager) -> None:
    app = FastAPI()
    app.include_router(models_route.router)
    app.dependency_overrides[current_account] = lambda: SimpleNamespace(id="acc_test")
    app.dependency_overrides[models_route.get_models] = lambda: manager
    with manager.load("tiny-sd", task=TEXT_TO_IMAGE):
        pass
    with TestClient(app) as client:
        r = client.get("/v1/models")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "list"
        by_id = {m["id"]: m for m in body["data"]}
        for m in body["data"]:  # OpenAI's model object rides alongside the native fields
            assert m["object"] == "model" and isinstance(m["created"], int), m
            assert isinstance(m["owned_by"], str) and m["owned_by"], m
        assert by_id["tiny-sd"]["available"] and by_id["tiny-sd"]["resident"]
        assert by_id["tiny-sd"]["defaults"] == {
            "steps": 2,
            "guidance": 0.0,
            "width": 64,
            "height": 64,
        }
        turbo = by_id["sd-turbo"]
        assert not turbo["available"] and not turbo["resident"]
        assert turbo["default_for"] == ["text_to_image", "image_to_image"]
        assert by_id["tiny-controlnet-openpose"]["base_model"] == "tiny-sd"
        assert by_id["tiny-sd"]["owned_by"] == "local" and by_id["tiny-sd"]["created"] > 0
        assert (turbo["owned_by"], turbo["created"]) == ("stabilityai", 0)
        one = client.get("/v1/models/tiny-sd")
        assert one.status_code == 200, one.text
        assert one.json() == by_id["tiny-sd"]
        schema = client.get("/openapi.json").json()["components"]["schemas"]["ModelOut"]
        assert schema["examples"][0]["id"] == "sd-turbo"
