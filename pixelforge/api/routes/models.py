"""The diffusion models this server knows: on disk or not, resident in memory or not.

The list is also OpenAI's `GET /v1/models` (`{"object": "list", "data": [...]}`, each item with
`id`, `object`, `created`, `owned_by`), so OpenAI clients pointed at this server can list and
retrieve models; the native fields ride alongside.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from pixelforge.errors import not_found
from pixelforge.models.base import CHAT, ModelProfile
from pixelforge.models.download import is_local_source, model_path
from pixelforge.models.manager import ModelManager
from pixelforge.web.deps import CurrentAccount
from pixelforge.web.errors import ErrorOut

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
                    "created": 1735689600,
                    "owned_by": "stabilityai",
                    "family": "sd-turbo",
                    "kind": "diffusers",
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
    object: Literal["model"] = "model"
    created: int = Field(description="Unix time its files landed on this machine; 0 if absent")
    owned_by: str = Field(
        description="the Hub organisation of its source, 'local', or 'pixelforge' for chat models"
    )
    family: str
    kind: str = Field(
        description="diffusers | onnx (weights pulled into the models directory) | mediapipe "
        "| nudenet | ncnn (weights shipped in an installed pip package)"
    )
    tasks: list[str]
    default_for: list[str] = Field(description="tasks that use this model when none is named")
    available: bool = Field(description="its weights are on this machine")
    resident: bool = Field(description="loaded in memory now")
    tiny: bool = Field(description="random weights, for tests and demos: outputs are noise")
    base_model: str | None = Field(description="the model an add-on (a ControlNet) extends")
    description: str
    defaults: ModelDefaults


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelOut]


ModelId = Annotated[str, Path(max_length=100, examples=["sd-turbo"])]


def owned_by(profile: ModelProfile) -> str:
    if CHAT in profile.tasks:  # served as this server's own chat models (OpenAI's /v1/models)
        return "pixelforge"
    if is_local_source(profile.source) or "/" not in profile.source:
        return "local"
    return profile.source.split("/", 1)[0]


def created_at(profile: ModelProfile, models: ModelManager, available: bool) -> int:
    if not available:
        return 0
    try:
        return int(model_path(profile, models.models_dir).stat().st_mtime)
    except OSError:
        return 0


def model_out(
    profile: ModelProfile, models: ModelManager, *, resident: set[str], defaults: dict[str, str]
) -> ModelOut:
    available = models.is_available(profile)
    return ModelOut(
        id=profile.id,
        created=created_at(profile, models, available),
        owned_by=owned_by(profile),
        family=profile.family,
        kind=profile.kind,
        tasks=list(profile.tasks),
        default_for=[task for task, model_id in defaults.items() if model_id == profile.id],
        available=available,
        resident=profile.id in resident,
        tiny=profile.tiny,
        base_model=profile.base_model,
        description=profile.description,
        defaults=ModelDefaults(
            steps=profile.default_steps,
            guidance=profile.default_guidance,
            width=profile.default_width,
            height=profile.default_height,
        ),
    )


@router.get("", response_model=ModelList, summary="Models and whether they are on disk")
def list_models(_: CurrentAccount, models: ModelsDep) -> ModelList:
    resident = {r["id"] for r in models.cache.resident()}
    defaults = models.catalog.defaults()
    return ModelList(
        data=[
            model_out(p, models, resident=resident, defaults=defaults)
            for p in models.list_profiles()
        ]
    )


@router.get(
    "/{model}",
    response_model=ModelOut,
    responses={404: {"model": ErrorOut}},
    summary="One model: availability, residency, defaults",
)
def get_model(model: ModelId, _: CurrentAccount, models: ModelsDep) -> ModelOut:
    profile = models.catalog.get(model)
    if profile is None:
        raise not_found(f"model {model!r}")
    resident = {r["id"] for r in models.cache.resident()}
    return model_out(profile, models, resident=resident, defaults=models.catalog.defaults())
