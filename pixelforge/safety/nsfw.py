"""NSFW detection with NudeNet's bundled 320n ONNX detector (runs offline, on CPU)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pixelforge.models.base import NSFW_DETECTION, ModelProvider
from pixelforge.models.bundled import NSFW_MODEL

# NudeNet 3.4 labels that mean exposed explicit content. Its other labels (faces, feet,
# belly, armpits, *_COVERED, MALE_BREAST_EXPOSED) describe ordinary photos.
EXPLICIT_LABELS: frozenset[str] = frozenset(
    {
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "FEMALE_BREAST_EXPOSED",
        "ANUS_EXPOSED",
        "BUTTOCKS_EXPOSED",
    }
)


@dataclass(frozen=True)
class Detection:
    """One NudeNet box: its label, confidence and (x, y, width, height) in pixels."""

    label: str
    score: float
    box: tuple[int, int, int, int]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": round(self.score, 4), "box": list(self.box)}


def explicit_labels(
    detections: Iterable[Detection],
    *,
    threshold: float = 0.5,
    labels: frozenset[str] = EXPLICIT_LABELS,
) -> list[str]:
    """The blocking labels among `detections` scoring at least `threshold`, sorted, unique."""
    _check_threshold(threshold)
    return sorted({d.label for d in detections if d.label in labels and d.score >= threshold})


class NsfwDetector:
    """The NSFW gate over the manager's NudeNet model (one per process, loaded on the first
    check, shared by threads: ONNX Runtime sessions may run concurrently). NudeNet drops
    boxes scoring below 0.2 itself, so a threshold under 0.2 behaves as 0.2."""

    def __init__(self, models: ModelProvider, *, labels: Iterable[str] = EXPLICIT_LABELS) -> None:
        """`labels`: the NudeNet labels that count as explicit (operators may widen them)."""
        self.models = models
        self.labels = frozenset(labels)

    def detect(self, img: Image.Image) -> list[Detection]:
        """Every box NudeNet finds, best first."""
        # NudeNet reads OpenCV's channel order: BGR, uint8, contiguous.
        bgr = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8)[:, :, ::-1])
        found = [
            Detection(
                label=str(d["class"]),
                score=float(d["score"]),
                box=(int(d["box"][0]), int(d["box"][1]), int(d["box"][2]), int(d["box"][3])),
            )
            for d in _nudenet_boxes(self.models, bgr)
        ]
        return sorted(found, key=lambda d: d.score, reverse=True)

    def is_explicit(self, img: Image.Image, *, threshold: float = 0.5) -> tuple[bool, list[str]]:
        """(explicit?, the explicit labels found at `threshold` or above)."""
        _check_threshold(threshold)
        found = explicit_labels(self.detect(img), threshold=threshold, labels=self.labels)
        return bool(found), found


def _nudenet_boxes(models: ModelProvider, bgr: np.ndarray[Any, Any]) -> list[dict[str, Any]]:
    with models.load(NSFW_MODEL, task=NSFW_DETECTION) as nudenet:
        found: list[dict[str, Any]] = nudenet.detect(bgr)
    return found


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
