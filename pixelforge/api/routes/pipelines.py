"""The pipeline catalog: name, description, cost and the params JSON schema of each."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from pixelforge.web.deps import CurrentAccount, ServicesDep

router = APIRouter(prefix="/v1/pipelines", tags=["pipelines"])


class PipelineOut(BaseModel):
    name: str = Field(examples=["upscale"])
    description: str = Field(examples=["Upscale an image 1x, 2x or 4x with Real-ESRGAN."])
    cost: int | None = Field(description="credits with default params", examples=[1])
    params_schema: dict[str, Any] = Field(
        description="JSON schema of `params` for POST /v1/jobs",
        examples=[{"type": "object", "properties": {"image": {"type": "string"}}}],
    )


@router.get("", response_model=list[PipelineOut], summary="What this server can run")
def list_pipelines(_: CurrentAccount, services: ServicesDep) -> list[PipelineOut]:
    out = []
    for p in services.registry:
        schema = p.Params.model_json_schema()
        try:
            # The cost with default params (required ones left unset).
            default_cost: int | None = p.cost(p.Params.model_construct())
        except (AttributeError, TypeError, ValueError):
            default_cost = None
        out.append(
            PipelineOut(
                name=p.name, description=p.description, cost=default_cost, params_schema=schema
            )
        )
    return out
