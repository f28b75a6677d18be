"""Body pose from a photo (MediaPipe Pose) and OpenPose-style skeleton images for ControlNets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from pixelforge.models.base import POSE_ESTIMATION, ModelProvider
from pixelforge.models.bundled import POSE_MODEL

# MediaPipe Pose's 33 landmarks, in its order ("left" is the person's left).
LANDMARK_NAMES: tuple[str, ...] = (
    "nose",
    "left_eye_inner",
    "left_eye",
    "left_eye_outer",
    "right_eye_inner",
    "right_eye",
    "right_eye_outer",
    "left_ear",
    "right_ear",
    "mouth_left",
    "mouth_right",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_pinky",
    "right_pinky",
    "left_index",
    "right_index",
    "left_thumb",
    "right_thumb",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_heel",
    "right_heel",
    "left_foot_index",
    "right_foot_index",
)
_NECK = -1  # OpenPose's neck has no MediaPipe landmark: it is the shoulders' midpoint
# OpenPose's COCO-18 order -> MediaPipe index: nose, neck, R shoulder/elbow/wrist,
# L shoulder/elbow/wrist, R hip/knee/ankle, L hip/knee/ankle, R eye, L eye, R ear, L ear.
OPENPOSE_FROM_MEDIAPIPE: tuple[int, ...] = (
    0, _NECK, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7,
)  # fmt: skip
# The 17 limbs ControlNet's OpenPose annotator draws (COCO-18 indices), and its 18 colours
# (RGB): limb i and keypoint i share colour i.
OPENPOSE_LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
OPENPOSE_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
# The annotator draws 4 px sticks and joints at its 512 px detection size, then resizes.
_DRAW_BASE = 512
_STICK = 4
_LIMB_DIM = 0.6  # limbs are drawn at 60% of their colour, joints at full colour


@dataclass(frozen=True)
class Landmark:
    """A MediaPipe landmark in pixels of the analysed image; z is depth relative to the
    hips, on about the same scale as x; visibility is the model's 0-1 confidence."""

    x: float
    y: float
    z: float
    visibility: float


@dataclass(frozen=True)
class PoseResult:
    """The 33 landmarks of the most prominent person in an image of `width` x `height`."""

    width: int
    height: int
    landmarks: tuple[Landmark, ...]

    def landmark(self, name: str) -> Landmark:
        return self.landmarks[LANDMARK_NAMES.index(name)]

    def openpose_keypoints(
        self, *, min_visibility: float = 0.5
    ) -> list[tuple[float, float] | None]:
        """The 18 COCO keypoints OpenPose uses, in pixels; None where the point is not
        visible enough or lies outside the image (OpenPose would not have detected it)."""

        def seen(i: int) -> tuple[float, float] | None:
            p = self.landmarks[i]
            inside = 0 <= p.x < self.width and 0 <= p.y < self.height
            return (p.x, p.y) if inside and p.visibility >= min_visibility else None

        points: list[tuple[float, float] | None] = []
        for i in OPENPOSE_FROM_MEDIAPIPE:
            if i != _NECK:
                points.append(seen(i))
                continue
            left, right = seen(11), seen(12)
            neck = None if left is None or right is None else _mid(left, right)
            points.append(neck)
        return points


def extract_pose(models: ModelProvider, img: Image.Image) -> PoseResult | None:
    """The pose of the most prominent person in `img` (the manager's MediaPipe Pose), or
    None when nobody is found."""
    with models.load(POSE_MODEL, task=POSE_ESTIMATION) as graph:
        return pose_of(graph, img)


def pose_of(graph: Any, img: Image.Image) -> PoseResult | None:
    """The pose a loaded MediaPipe Pose graph (static images, used by one thread at a time)
    finds in `img`, or None."""
    rgb = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    found = graph.process(rgb).pose_landmarks
    if found is None:
        return None
    w, h = img.size
    landmarks = tuple(
        Landmark(x=p.x * w, y=p.y * h, z=p.z * w, visibility=float(p.visibility))
        for p in found.landmark
    )
    return PoseResult(width=w, height=h, landmarks=landmarks)


def draw_openpose(
    result: PoseResult, size: tuple[int, int], *, min_visibility: float = 0.5
) -> Image.Image:
    """An OpenPose-style skeleton (ControlNet openpose's input): coloured limbs and joints
    on black, `size` = (width, height). The pose is scaled to fit and centred, keeping its
    proportions when `size` has another aspect ratio than the analysed image."""
    import cv2

    width, height = size
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    scale = min(width / result.width, height / result.height)
    dx, dy = (width - result.width * scale) / 2, (height - result.height * scale) / 2
    points = [
        None if p is None else (p[0] * scale + dx, p[1] * scale + dy)
        for p in result.openpose_keypoints(min_visibility=min_visibility)
    ]
    unit = max(width, height) / _DRAW_BASE
    stick = max(1, round(_STICK * unit))
    for (a, b), color in zip(OPENPOSE_LIMBS, OPENPOSE_COLORS, strict=False):
        pa, pb = points[a], points[b]
        if pa is None or pb is None:
            continue
        (cx, cy), length = _mid(pa, pb), math.dist(pa, pb)
        angle = round(math.degrees(math.atan2(pb[1] - pa[1], pb[0] - pa[0])))
        polygon = cv2.ellipse2Poly(
            (round(cx), round(cy)), (round(length / 2), stick), angle, 0, 360, 1
        )
        dimmed = tuple(int(c * _LIMB_DIM) for c in color)
        cv2.fillConvexPoly(canvas, np.asarray(polygon, dtype=np.int32), dimmed)
    for point, color in zip(points, OPENPOSE_COLORS, strict=True):
        if point is not None:
            cv2.circle(canvas, (round(point[0]), round(point[1])), stick, color, thickness=-1)
    return Image.fromarray(canvas)


def _mid(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
