"""NSFW detection with NudeNet's bundled 320n ONNX detector (runs offline, on CPU)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pixelforge.errors import ErrorCode, PixelForgeError

INSTALL_HINT = "pip install nudenet==3.4.2 onnxruntime==1.31.1 opencv-python-headless==4.14.0.94"
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
    """NudeNet's detector, created on first use and shared by threads (ONNX Runtime
    sessions may run concurrently). NudeNet drops boxes scoring below 0.2 itself, so a
    threshold under 0.2 behaves as 0.2."""

    def __init__(self, *, labels: Iterable[str] = EXPLICIT_LABELS) -> None:
        """`labels`: the NudeNet labels that count as explicit (operators may widen them)."""
        self.labels = frozenset(labels)
        self._lock = threading.Lock()
        self._detector: Any = None

    def _nudenet(self) -> Any:
        with self._lock:
            if self._detector is None:
                try:
                    from nudenet import NudeDetector
                except ImportError as e:
                    raise PixelForgeError(
                        ErrorCode.model_unavailable,
                        f"NSFW detection needs NudeNet, which is not installed ({e}); "
                        f"run `{INSTALL_HINT}`",
                    ) from e
                self._detector = NudeDetector()
            return self._detector

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
            for d in self._nudenet().detect(bgr)
        ]
        return sorted(found, key=lambda d: d.score, reverse=True)

    def is_explicit(self, img: Image.Image, *, threshold: float = 0.5) -> tuple[bool, list[str]]:
        """(explicit?, the explicit labels found at `threshold` or above)."""
        _check_threshold(threshold)
        found = explicit_labels(self.detect(img), threshold=threshold, labels=self.labels)
        return bool(found), found


def _check_threshold(threshold: float) -> None:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, not {threshold}")
