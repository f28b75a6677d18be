"""Pipelines: one capability per module, a registry, and the RunContext facade they see."""

from pixelforge.pipelines.base import (
    JobCanceled,
    MediaRef,
    Pipeline,
    PipelineRegistry,
    RunContext,
    default_registry,
    media_refs,
)

__all__ = [
    "JobCanceled",
    "MediaRef",
    "Pipeline",
    "PipelineRegistry",
    "RunContext",
    "default_registry",
    "media_refs",
]
