"""Perfect's readings: a run-task request -> a core job's pipeline, params, key; polling."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from pixelforge.dialects.perfect.errors import invalid
from pixelforge.dialects.perfect.features import (
    Feature,
    Params,
    pipeline_of,
)
from pixelforge.dialects.perfect.schemas import FileSets, RunTaskIn
from pixelforge.dialects.perfect.settings import options_of
from pixelforge.services import Services
from pixelforge.store.tables import Style, StyleGroup


def resolve_style(services: Services, task: str, group_id: Any, style_ids: Any) -> Style:
    if not isinstance(group_id, int) or isinstance(group_id, bool) or not 0 < group_id < 2**63:
        raise invalid("actions[0].params.style_group_id: a style group id is required")
    ok = isinstance(style_ids, list) and len(style_ids) == 1
    first = style_ids[0] if ok else None
    if not isinstance(first, int | float) or isinstance(first, bool) or first != int(first):
        raise invalid("actions[0].params.style_ids: exactly one style id is required")
    style_id = int(first)
    with services.db.read() as s:
        group = s.get(StyleGroup, group_id)
        style = s.get(Style, style_id) if 0 < style_id < 2**63 else None
    if group is None or group.task != task:
        raise invalid(f"style_group_id: {group_id} is not a style group of this task")
    if style is None or style.task != task or style.group_id != group_id:
        raise invalid(f"style_ids: {style_id} is not a style of style group {group_id}")
    return style


def build_params(services: Services, feature: Feature, body: RunTaskIn) -> tuple[str, Params]:
    """(pipeline, params) for a run-task payload."""
    pipeline = pipeline_of(services, feature)
    payload = body.payload
    extra = dict(payload.actions[0].params)
    params: Params = {}
    sets = payload.file_sets or FileSets()
    used = {key for key, _ in (*feature.inputs, *feature.optional_inputs)}
    for key in ("src_ids", "ref_ids", "mask_ids"):
        if getattr(sets, key) and key not in used:
            raise invalid(f"payload.file_sets.{key}: {feature.title} takes no such files")
    for key, name in feature.inputs:
        ids = getattr(sets, key)
        if not ids:
            raise invalid(f"payload.file_sets.{key}: one file_id is required")
        params[name] = ids[0]
    for key, name in feature.optional_inputs:
        if ids := getattr(sets, key):
            params[name] = ids[0]
    if feature.prompt:
        prompt = extra.pop("prompt", None)
        if not isinstance(prompt, str) or not prompt.strip():
            raise invalid("actions[0].params.prompt: a prompt is required")
        params["prompt"] = prompt
    if feature.styled:
        style = resolve_style(
            services, pipeline, extra.pop("style_group_id", None), extra.pop("style_ids", None)
        )
        fields = services.registry.get(pipeline).Params.model_fields
        if "style_id" in fields and "style" not in fields:
            params["style_id"] = style.id
        else:
            params["style"] = style.name
    if feature.build is not None:
        pipeline, extra = feature.build(extra)
    ext = payload.output_ext or feature.output_exts[0]
    if ext not in feature.output_exts:
        raise invalid(f"payload.output_ext: one of {', '.join(feature.output_exts)}")
    if "output_format" in services.registry.get(pipeline).Params.model_fields:
        params["output_format"] = ext
    # Other action params go to the pipeline as they are (its validation has the last word).
    return pipeline, {**extra, **params}


def idempotency_key(feature: Feature, body: RunTaskIn) -> str | None:
    """Perfect's rule: the same file(s) with the same request_id is the same task."""
    if body.request_id is None:
        return None
    sets = body.payload.file_sets or FileSets()
    files = [i for key in ("src_ids", "ref_ids", "mask_ids") for i in getattr(sets, key) or []]
    digest = hashlib.sha256("|".join(files).encode()).hexdigest()[:32]
    return f"perfect:{feature.slug}:{body.request_id}:{digest}"


def polling_interval_ms(services: Services) -> int:
    """A fifth of the poll timeout, between 0.2 and 2 s: five chances before abandonment."""
    timeout_ms = options_of(services).poll_timeout_s * 1000
    return int(min(2000, max(200, math.floor(timeout_ms / 5))))
