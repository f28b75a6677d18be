"""Tests for pixelforge/vision/pose.py: MediaPipe Pose on real photos, OpenPose drawing."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.manager import ModelManager
from pixelforge.vision.pose import (
    LANDMARK_NAMES,
    OPENPOSE_COLORS,
    Landmark,
    PoseResult,
    draw_openpose,
    extract_pose,
)
from tests.bundled import bundled_models

# Every colour the drawing may use: black, the joints' colours, the limbs' at 60%.
PALETTE = (
    {(0, 0, 0)} | set(OPENPOSE_COLORS) | {tuple(int(c * 0.6) for c in k) for k in OPENPOSE_COLORS}
)


@pytest.fixture(scope="module")
def astronaut() -> PoseResult:
    result = extract_pose(bundled_models(), Image.fromarray(data.astronaut()))
    assert result is not None
    return result


def colours(img: Image.Image) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in c) for c in np.unique(np.asarray(img).reshape(-1, 3), axis=0)}


def synthetic(points: dict[str, tuple[float, float]], size: tuple[int, int]) -> PoseResult:
    """A pose with only `points` visible (the rest invisible at the origin)."""
    marks = [
        Landmark(*points[n], 0.0, 1.0) if n in points else Landmark(0.0, 0.0, 0.0, 0.0)
        for n in LANDMARK_NAMES
    ]
    return PoseResult(width=size[0], height=size[1], landmarks=tuple(marks))


def test_astronaut_landmarks_are_where_the_person_is(astronaut: PoseResult) -> None:
    assert (astronaut.width, astronaut.height) == (512, 512)
    assert len(astronaut.landmarks) == len(LANDMARK_NAMES) == 33
    nose = astronaut.landmark("nose")
    left, right = astronaut.landmark("left_shoulder"), astronaut.landmark("right_shoulder")
    # Her face is near x 200-260, y 80-180; her shoulders below it, her right on our left.
    assert 200 <= nose.x <= 260 and 80 <= nose.y <= 180
    assert right.x < nose.x < left.x
    assert 60 <= right.x <= 170 and 250 <= left.x <= 360
    assert nose.y + 50 < min(left.y, right.y) < max(left.y, right.y) < 320
    assert min(nose.visibility, left.visibility, right.visibility) > 0.9


def test_openpose_keypoints_map_and_drop_what_is_off_frame(astronaut: PoseResult) -> None:
    points = astronaut.openpose_keypoints()
    assert len(points) == 18
    nose, neck, r_shoulder, l_shoulder = points[0], points[1], points[2], points[5]
    assert nose is not None and neck is not None and r_shoulder and l_shoulder
    assert neck == pytest.approx(
        ((r_shoulder[0] + l_shoulder[0]) / 2, (r_shoulder[1] + l_shoulder[1]) / 2)
    )
    assert all(p is not None for p in points[14:18])  # eyes and ears
    # A half-body portrait: hips, knees and ankles are out of frame or barely visible.
    assert points[8:14] == [None] * 6
    assert all(p is None for p in astronaut.openpose_keypoints(min_visibility=1.01))


def test_skeleton_is_black_with_openpose_colours(astronaut: PoseResult) -> None:
    skeleton = draw_openpose(astronaut, (512, 512))
    arr = np.asarray(skeleton)
    assert skeleton.mode == "RGB" and skeleton.size == (512, 512)
    black = (arr.sum(axis=-1) == 0).mean()
    assert 0.9 < black < 0.999
    used = colours(skeleton)
    assert used <= PALETTE
    assert (153, 0, 0) in used  # neck -> right shoulder, red at 60%
    assert OPENPOSE_COLORS[0] in used  # the nose joint
    # The neck joint sits between the shoulders, below the face.
    neck = astronaut.openpose_keypoints()[1]
    assert neck is not None
    assert tuple(arr[round(neck[1]), round(neck[0])]) == OPENPOSE_COLORS[1]


def test_skeleton_fits_another_aspect_ratio_centred() -> None:
    pose = synthetic({"left_shoulder": (80.0, 20.0), "right_shoulder": (20.0, 20.0)}, (100, 100))
    skeleton = np.asarray(draw_openpose(pose, (100, 200)))  # portrait canvas: pose centred
    rows = np.nonzero(skeleton.sum(axis=(1, 2)))[0]
    cols = np.nonzero(skeleton.sum(axis=(0, 2)))[0]
    assert rows.min() >= 60 and rows.max() <= 80  # y 20 -> 50 offset + 20
    assert cols.min() >= 18 and cols.max() <= 82
    assert colours(Image.fromarray(skeleton)) <= PALETTE


def test_nothing_visible_draws_nothing() -> None:
    pose = synthetic({}, (64, 64))
    assert pose.openpose_keypoints() == [None] * 18
    assert not np.asarray(draw_openpose(pose, (64, 48))).any()


def test_no_person_is_none() -> None:
    assert extract_pose(bundled_models(), Image.fromarray(data.coffee())) is None


def test_grey_and_rgba_inputs(astronaut: PoseResult) -> None:
    photo = Image.fromarray(data.astronaut())
    for img in (photo.convert("L"), photo.convert("RGBA")):
        result = extract_pose(bundled_models(), img)
        assert result is not None
        nose = result.landmark("nose")
        assert nose.x == pytest.approx(astronaut.landmark("nose").x, abs=15)


def test_one_estimator_is_safe_across_threads(astronaut: PoseResult, tmp_path: Path) -> None:
    models = ModelManager(tmp_path, device="cpu")
    photo = Image.fromarray(data.astronaut())
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: extract_pose(models, photo), range(4)))
    assert models.cache.loads == 1  # one graph, shared (its lock serializes the threads)
    assert all(r == results[0] for r in results)
    assert results[0] == astronaut  # static mode: same input, same landmarks


def test_missing_mediapipe_is_model_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe.python.solutions", None)
    with pytest.raises(PixelForgeError) as err:
        extract_pose(ModelManager(tmp_path, device="cpu"), Image.new("RGB", (32, 32)))
    assert err.value.code == ErrorCode.model_unavailable
    assert "mediapipe==0.10.14" in err.value.message
