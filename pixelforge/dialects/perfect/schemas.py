"""Perfect's request models (client auth, run task) and query parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field


class AuthIn(BaseModel):
    client_id: str = Field(
        min_length=1,
        max_length=200,
        description="your PixelForge API key (pf_...)",
        examples=["pf_1b33b34c_bhqHpz_C0CVx51_aYObZvMf3EM97FyuyEZ0NbbTyfp0"],
    )
    id_token: str = Field(
        min_length=1,
        max_length=4096,
        description="base64 of RSA(client secret, 'client_id=<client_id>&timestamp=<ms>')",
        examples=["dMtD+7WpLVe8Z1sdJAQ6GhuJBI+YeR79+FVNspLjEsfMIpfiXmdyskjAPEFgCwseJJozqZ=="],
    )


class FileSets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    src_ids: list[str] | None = Field(None, max_length=1, description="the photo (1 file)")
    ref_ids: list[str] | None = Field(None, max_length=1, description="a reference (1 file)")
    mask_ids: list[str] | None = Field(None, max_length=1, description="a mask (1 file)")


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=0, description="action id, echoed in the status results")
    params: dict[str, Any] = Field(default_factory=dict)


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file_sets: FileSets | None = None
    actions: list[Action] = Field(min_length=1, max_length=1)
    output_ext: str | None = Field(None, max_length=8, examples=["jpg"])


class RunTaskIn(BaseModel):
    request_id: int | None = Field(
        None, ge=0, description="same file(s) + same request_id = the same task, charged once"
    )
    payload: Payload


PageSize = Annotated[int, Query(description="1..20, default 20", examples=[20])]
StartingToken = Annotated[
    str | None,
    Query(max_length=40, description="next_token of the previous page", examples=["20"]),
]
TaskId = Annotated[
    str,
    Query(
        max_length=80, description="task_id from run task", examples=["job_1iPxP7GibK8N0-V7vwizCA"]
    ),
]
