"""Hair, face and clothes masks on a real photo (scikit-image's astronaut: short hair above a
frontal face, an orange suit below)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image
from skimage import data

from pixelforge.vision.face import Face, analyze_faces, region_mask
from pixelforge.vision.pose import PoseResult, extract_pose
from pixelforge.vision.regions import (
    HAIR_EDITS,
    HeadFrame,
    clothes_mask,
    coverage,
    face_edit_mask,
    hair_edit_mask,
    hair_mask,
    shoulders_visible,
)
from tests.bundled import bundled_models

Mask = np.ndarray[Any, Any]


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="module")
def face(photo: Image.Image) -> Face:
    faces = analyze_faces(bundled_models(), photo)
    assert len(faces) == 1
    return faces[0]


@pytest.fixture(scope="module")
def hair(photo: Image.Image, face: Face) -> Mask:
    return hair_mask(bundled_models(), photo, face)


def _rows_cols(mask: Mask) -> tuple[Mask, Mask]:
    ys, xs = np.nonzero(mask)
    return ys, xs


def test_hair_lies_above_and_around_the_face_not_on_it(
    photo: Image.Image, face: Face, hair: Mask
) -> None:
    x, y, w, h = face.box
    ys, xs = _rows_cols(hair)
    assert 0.02 < coverage(hair) < 0.08  # her short hair: about 3% of the photo
    # Not on the face: nothing inside the mesh's oval.
    assert not np.any(hair[region_mask(face, photo.size, "face") > 0])
    # Above the face: the crown reaches well over the mesh's top, and most of it is higher
    # than the eyes; nothing below the chin (the suit's collar is not hair).
    eye_y = float(face.landmarks[[33, 263], 1].mean())
    assert ys.min() < y - 0.5 * face.eye_distance
    assert np.mean(ys < eye_y) > 0.7
    assert ys.max() <= y + h
    # Around the face: centred on it, about a head wide.
    assert abs(xs.mean() - (x + w / 2)) < 0.25 * w
    assert x - w < xs.min() < x and x + w < xs.max() < x + 2 * w
    # The crown right above the forehead is hair (her hair is solid there).
    top = np.round(face.landmarks[10]).astype(int)
    crown = hair[top[1] - round(0.5 * face.eye_distance), top[0]]
    assert crown == 255


def test_hair_edit_masks_by_kind(photo: Image.Image, face: Face, hair: Mask) -> None:
    masks = {edit: hair_edit_mask(face, hair, edit) for edit in HAIR_EDITS}  # type: ignore[arg-type]
    eyes = region_mask(face, photo.size, "left_eye") | region_mask(face, photo.size, "right_eye")
    oval = region_mask(face, photo.size, "face") > 0
    for edit, mask in masks.items():
        assert coverage(mask) > 0.005, edit
        assert not np.any(mask[eyes > 0]), f"{edit} repaints the eyes"
    # The room a new style needs: the hair grown, never less than the hair itself.
    for edit in ("hairstyle", "wig", "volume"):
        assert np.mean(masks[edit][hair > 0] > 0) > 0.98, edit
        assert coverage(masks[edit]) > 1.3 * coverage(hair), edit
        assert not np.any(masks[edit][oval]), edit
    assert coverage(masks["wig"]) > coverage(masks["hairstyle"])
    # Extensions reach down beside the neck to the shoulders; the other edits stop above.
    chin = face.landmarks[152, 1]
    below = np.arange(photo.height)[:, None] > chin + face.eye_distance
    assert np.count_nonzero(masks["extension"] & below) > 0.15 * np.count_nonzero(
        masks["extension"]
    )
    assert not np.any(masks["volume"] & below)
    # Bangs: on the forehead, between the hairline and the brows, within the face's width.
    ys, xs = _rows_cols(masks["bangs"])
    frame = HeadFrame.of(face)  # "above" as the head is held (it is tilted 3°)
    brows = frame.uv(face.landmarks[[70, 63, 105, 66, 107, 336, 296, 334, 293, 300]])
    v = frame.uv(np.stack([xs, ys], axis=1))[:, 1]
    assert v.max() < brows[:, 1].min()
    x, y, w, _ = face.box
    assert ys.min() > y - face.eye_distance
    assert xs.min() > x - 0.3 * w and xs.max() < x + 1.3 * w
    # All of the forehead, and the hair just above it that the fringe falls from.
    _, v_grid = frame.grid(photo.size)
    forehead = oval & (v_grid < brows[:, 1].min() - 0.05)
    assert np.mean(masks["bangs"][forehead] > 0) > 0.95
    assert np.mean(hair[ys, xs] > 0) > 0.5


def test_face_edit_mask_keeps_the_eyes(photo: Image.Image, face: Face, hair: Mask) -> None:
    mask = face_edit_mask(face, photo.size)
    oval = region_mask(face, photo.size, "face") > 0
    eyes = region_mask(face, photo.size, "left_eye") | region_mask(face, photo.size, "right_eye")
    assert np.mean(mask[oval] > 0) > 0.9
    assert not np.any(mask[eyes > 0])
    # Only a little beyond the oval; with the hair, the hair too.
    assert np.count_nonzero(mask) < 1.5 * np.count_nonzero(oval)
    with_hair = face_edit_mask(face, photo.size, hair)
    assert np.all(with_hair[hair > 0] > 0)


def test_head_frame_turns_with_the_head(face: Face) -> None:
    frame = HeadFrame.of(face)
    uv = frame.uv(face.landmarks[[33, 263, 152, 10]])
    assert np.allclose(uv[0], [-0.5, 0], atol=1e-3) and np.allclose(uv[1], [0.5, 0], atol=1e-3)
    assert uv[2, 1] > 1.0 and uv[3, 1] < -0.3  # chin below the eyes, forehead above
    assert abs(uv[2, 0]) < 0.1


@pytest.fixture(scope="module")
def pose(photo: Image.Image) -> PoseResult:
    found = extract_pose(bundled_models(), photo)
    assert found is not None
    return found


def test_clothes_lie_below_the_chin_between_the_shoulders(
    photo: Image.Image, face: Face, pose: PoseResult
) -> None:
    assert shoulders_visible(pose)
    mask = clothes_mask(bundled_models(), photo, pose, face)
    ys, xs = _rows_cols(mask)
    assert 0.15 < coverage(mask) < 0.5
    chin = face.landmarks[152, 1]
    assert ys.min() > chin
    assert not np.any(mask[region_mask(face, photo.size, "face") > 0])
    left, right = pose.landmark("left_shoulder"), pose.landmark("right_shoulder")
    lo, hi = sorted((left.x, right.x))
    assert lo < xs.mean() < hi
    # The chest (a third of a shoulder width under the shoulders' midpoint) is clothes.
    span = hi - lo
    cx, cy = round((lo + hi) / 2), round((left.y + right.y) / 2 + span / 3)
    assert np.mean(mask[cy - 5 : cy + 5, cx - 5 : cx + 5] > 0) > 0.9
    # Without the face, the pose alone still bounds the clothes.
    headless = clothes_mask(bundled_models(), photo, pose, None)
    assert coverage(headless) > 0.15 and _rows_cols(headless)[0].mean() > chin


def test_no_shoulders_when_they_are_off_the_picture(photo: Image.Image) -> None:
    head = photo.crop((130, 0, 330, 200))  # head only, cut above the shoulders
    found = extract_pose(bundled_models(), head)
    assert found is None or not shoulders_visible(found)
