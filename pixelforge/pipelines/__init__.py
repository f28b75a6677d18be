"""Pipelines: one capability per module, the contract they implement, and a registry.

Only the contract is re-exported here; the registry (which imports every pipeline) lives in
`pixelforge.pipelines.registry`.
"""

from pixelforge.pipelines.contract import (
    BatchingPipeline,
    JobCanceled,
    MediaRef,
    Pipeline,
    RunContext,
    media_refs,
)

__all__ = [
    "BatchingPipeline",
    "JobCanceled",
    "MediaRef",
    "Pipeline",
    "RunContext",
    "media_refs",
]
