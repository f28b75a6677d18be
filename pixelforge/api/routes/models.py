"""The diffusion models this server knows: on disk or not, resident in memory or not."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from pixelforge.api.deps import CurrentAccount
from pixelforge.models.manager import ModelManager

router = APIRouter(prefix="/v1/models", tags=["models"])


def get_models(conn: HTTPConnection) -> ModelManager:
    manager: ModelManager = conn.app.state.services.models
    return manager


ModelsDep = Annotated[ModelManager, Depends(get_models)]


class ModelDefaults(BaseModel):
    steps: int
    guidance: float
    width: int
    height: int


class ModelOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "sd-turbo",
                    "object": "model",
                    "family": "sd-turbo",
                    "tasks": ["text_to_image", "image_to_image"],
                    "default_for": ["text_to_image", "image_to_image"],
                    "available": True,
                    "resident": False,
                    "tiny": False,
                    "base_model": None,
                    "description": "SD 2.1 distilled for 1-4 steps without guidance; 512x512",
                    "defaults": {"steps": 2, "guidance": 0.0, "width": 512, "height": 512},
                }
            ]
        }
    )
    id: str
    object: str = "model"
    family: str
    tasks: list[str]
    default_for: list[str] = Field(description="tasks that use this model when none is named")
    available: bool = Field(description="its weights are on this machine")
    resident: bool = Field(description="loaded in memory now")
    tiny: bool = Field(description="random weights, for tests and demos: outputs are noise")
    base_model: str | None = Field(description="the model an add-on (a ControlNet) extends")
    description: str
    defaults: ModelDefaults


@router.get("", response_model=list[ModelOut], summary="Models and whether they are on disk")
def list_models(_: CurrentAccount, models: ModelsDep) -> list[ModelOut]:
    resident = {r["id"] for r in models.cache.resident()}
    defaults = models.catalog.defaults()
    return [
        ModelOut(
            id=p.id,
            family=p.family,
            tasks=list(p.tasks),
            default_for=[task for task, model_id in defaults.items() if model_id == p.id],
            available=models.is_available(p),
            resident=p.id in resident,
            tiny=p.tiny,
            base_model=p.base_model,
            description=p.description,
            defaults=ModelDefaults(
                steps=p.default_steps,
                guidance=p.default_guidance,
                width=p.default_width,
                height=p.default_height,
            ),
        )
        for p in models.list_profiles()
    ]
