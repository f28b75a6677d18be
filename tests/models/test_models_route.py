"""GET /v1/models on a bare app: the route with the manager and auth swapped in."""

from __future__ import annotations

from types import SimpleNamespace

from fastapi import FastAPI
from fastapi.testclient import TestClient

from pixelforge.api.deps import current_account
from pixelforge.api.routes import models as models_route
from pixelforge.models.base import TEXT_TO_IMAGE
from pixelforge.models.manager import ModelManager


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
        by_id = {m["id"]: m for m in r.json()}
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
        schema = client.get("/openapi.json").json()["components"]["schemas"]["ModelOut"]
        assert schema["examples"][0]["id"] == "sd-turbo"
