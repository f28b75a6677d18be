"""Report whether an image shows explicit nudity (NudeNet), with the boxes it found."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from pixelforge.pipelines.contract import MediaRef, RunContext
from pixelforge.pipelines.limits import InputLimit
from pixelforge.safety.nsfw import EXPLICIT_LABELS, NsfwDetector, explicit_labels


class DetectNsfwParams(BaseModel):
    """Parameters of the `detect_nsfw` pipeline."""

    model_config = ConfigDict(extra="forbid")

    image: MediaRef = Field(
        description="Media id of the image to check.", examples=["med_3f9a1c2b7d4e"]
    )
    threshold: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description=(
            "Minimum detector confidence for an explicit label to count. Boxes below 0.2 are "
            "never reported, so lower values act as 0.2."
        ),
        examples=[0.5],
    )


class DetectNsfwPipeline:
    """Run NudeNet on one image; outputs no media."""

    name: ClassVar[str] = "detect_nsfw"
    description: ClassVar[str] = (
        "Check an image for explicit nudity with NudeNet: whether it is explicit, the "
        "explicit labels found, and every detection box. Free."
    )
    Params: ClassVar[type[BaseModel]] = DetectNsfwParams
    input_limit: ClassVar[InputLimit | None] = None

    def __init__(self, *, labels: Iterable[str] = EXPLICIT_LABELS) -> None:
        """`labels`: the NudeNet labels reported as explicit."""
        self.labels = frozenset(labels)

    def cost(self, params: DetectNsfwParams) -> int:
        return 0

    def run(self, params: DetectNsfwParams, ctx: RunContext) -> dict[str, Any]:
        # 1. Load inputs
        img = ctx.load_image(params.image)

        # 2. Detect
        detector = NsfwDetector(ctx.models, labels=self.labels)
        detections = detector.detect(img)
        labels = explicit_labels(detections, threshold=params.threshold, labels=detector.labels)
        ctx.progress(1, 1)

        # 3. Report (no media output)
        return {
            "explicit": bool(labels),
            "labels": labels,
            "detections": [d.to_dict() for d in detections],
        }
