"""Hair, head, face and clothes masks from the face mesh, person segmentation and pose.

MediaPipe 0.10.14's wheel bundles no hair segmentation model (only selfie segmentation, face,
hand and pose models), so hair is derived: the person's pixels in a halo around the head,
minus the face oval and minus pixels coloured like that face's own skin (ears, neck, a bald
scalp). Every size is in eye distances (outer corner to outer corner) in a frame that turns
with the head, so masks scale with the face and follow a tilted head.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from PIL import Image

from pixelforge.models.base import ModelProvider
from pixelforge.vision.face import Face, Mask, region_mask
from pixelforge.vision.pose import PoseResult

HairEdit = Literal["hairstyle", "wig", "extension", "bangs", "volume"]
HAIR_EDITS: tuple[str, ...] = get_args(HairEdit)
Array = np.ndarray[Any, Any]

_RIGHT_EYE_OUTER, _LEFT_EYE_OUTER, _CHIN = 33, 263, 152
_BROWS = (70, 63, 105, 66, 107, 336, 296, 334, 293, 300)  # the brows' upper edges
# Where hair can be: an ellipse (centre u, centre v, half-width, half-height) in the head
# frame, v pointing to the chin. It reaches about 1.8 eye distances above the eye line.
_HAIR_HALO = (0.0, -0.25, 1.45, 1.6)
_EARS_FROM = -0.2  # v below which skin-coloured pixels are not taken for hair
_SKIN_DISTANCE = 2.5  # Mahalanobis distance in Lab (a, b) under which a pixel reads as skin
_MIN_SKIN_PIXELS = 50


@dataclass(frozen=True)
class _EditShape:
    grow: float  # dilation of the hair mask
    halo: tuple[float, float, float, float] | None  # area the new hair may take
    limit: tuple[float, float, float, float] | None = None  # the dilated hair stays inside


# Each edit repaints the hair it finds, grown, plus the room its new hair needs.
_EDITS: dict[str, _EditShape] = {
    "hairstyle": _EditShape(grow=0.2, halo=(0.0, -0.35, 1.55, 1.75)),
    "wig": _EditShape(grow=0.25, halo=(0.0, -0.25, 1.65, 1.95)),
    "volume": _EditShape(grow=0.35, halo=None, limit=(0.0, -0.3, 1.8, 1.95)),
    "extension": _EditShape(grow=0.15, halo=None),
    "bangs": _EditShape(grow=0.0, halo=None),
}


@dataclass(frozen=True)
class HeadFrame:
    """Coordinates that turn with the head: origin between the outer eye corners, u toward
    the image's right along the eyes, v toward the chin, both in eye distances."""

    origin: Array
    ex: Array
    ey: Array
    unit: float

    @classmethod
    def of(cls, face: Face) -> HeadFrame:
        a, b = face.landmarks[_RIGHT_EYE_OUTER], face.landmarks[_LEFT_EYE_OUTER]
        ex = (b - a) / max(1e-6, float(np.hypot(*(b - a))))
        ey = np.array([-ex[1], ex[0]], dtype=np.float32)
        return cls((a + b) / 2, ex.astype(np.float32), ey, face.eye_distance)

    def uv(self, points: Array) -> Array:
        """[N, 2] pixel points -> [N, 2] (u, v)."""
        d = points.astype(np.float32) - self.origin
        return np.stack([d @ self.ex, d @ self.ey], axis=-1) / self.unit

    def grid(self, size: tuple[int, int]) -> tuple[Array, Array]:
        """(u, v) of every pixel of a width x height image."""
        w, h = size
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        dx, dy = xs - self.origin[0], ys - self.origin[1]
        u = (dx * self.ex[0] + dy * self.ex[1]) / self.unit
        v = (dx * self.ey[0] + dy * self.ey[1]) / self.unit
        return u, v


def hair_mask(
    models: ModelProvider, img: Image.Image, face: Face, person: Array | None = None
) -> Mask:
    """A 0/255 mask of the hair of `face`. `person`: the photo's person probability
    (float [H, W]) when the caller already has it, else the manager's segmentation finds it."""
    import cv2

    from pixelforge.vision.segmentation import person_mask

    if person is None:
        person = person_mask(models, img, threshold=0.5, refine=True)
    frame = HeadFrame.of(face)
    u, v = frame.grid(img.size)
    halo = _ellipse(u, v, _HAIR_HALO)
    rgb = np.asarray(img.convert("RGB"))
    oval = region_mask(face, img.size, "face") > 0
    chin = float(frame.uv(face.landmarks[[_CHIN]])[0, 1])
    neck = (np.abs(u) < 0.6) & (v > chin - 0.15)
    # Below the chin, what is not neck is mostly collar: long hair there is given up.
    hair = (person > 0.5) & halo & ~oval & ~neck & (v < chin)
    # Skin shows beside and below the face (ears, neck); above the brows, what is not
    # background is hair, or a scalp a new hairstyle would cover all the same. Hair and
    # skin chroma overlap too much to judge the top of the head by colour.
    hair &= ~skin_like(rgb, face, within=hair & (v > _EARS_FROM))
    mask: Mask = cv2.morphologyEx(
        hair.astype(np.uint8) * 255, cv2.MORPH_OPEN, _disk(frame.unit * 0.03)
    )
    # Keep what touches the head: a patch of a brown sofa in the halo is not hair.
    near = cv2.dilate(oval.astype(np.uint8) * 255, _disk(frame.unit * 0.35)) > 0
    _, labels = cv2.connectedComponents(mask)
    touching = np.unique(labels[near & (mask > 0)])
    mask = np.isin(labels, touching[touching > 0]).astype(np.uint8) * 255
    closed: Mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disk(frame.unit * 0.06))
    return cv2.bitwise_and(closed, (halo & ~oval).astype(np.uint8) * 255)


def hair_edit_mask(face: Face, hair: Mask, edit: HairEdit) -> Mask:
    """The area a hair edit repaints: the hair found, grown, plus the room the new hair
    needs. The face stays out of it (bangs excepted, which lie on the forehead); the eyes
    and the neck always do."""
    import cv2

    if edit not in _EDITS:
        raise ValueError(f"unknown hair edit {edit!r}; known: {', '.join(HAIR_EDITS)}")
    shape = _EDITS[edit]
    height, width = hair.shape
    frame = HeadFrame.of(face)
    u, v = frame.grid((width, height))
    oval = region_mask(face, (width, height), "face") > 0
    chin = float(frame.uv(face.landmarks[[_CHIN]])[0, 1])
    neck = (np.abs(u) < 0.55) & (v > chin - 0.15)
    area = hair > 0
    if shape.grow > 0:
        area = cv2.dilate(hair, _disk(frame.unit * shape.grow)) > 0
    if shape.limit is not None:
        area &= _ellipse(u, v, shape.limit)
    if shape.halo is not None:
        area |= _ellipse(u, v, shape.halo)
    if edit == "extension":
        # Long hair falls beside the neck onto the shoulders.
        area |= (np.abs(u) < 1.7) & (v > 0.0) & (v < 3.2) & (np.abs(u) > 0.35 + 0.1 * v)
    if edit == "bangs":
        brow_top = float(frame.uv(face.landmarks[list(_BROWS)])[:, 1].min())
        forehead = oval & (v < brow_top - 0.03)
        near = cv2.dilate(forehead.astype(np.uint8) * 255, _disk(frame.unit * 0.4)) > 0
        area = forehead | (area & near & (v < brow_top) & (np.abs(u) < 1.0))
    else:
        area &= ~oval
    area &= ~neck
    eyes: Mask = cv2.bitwise_or(
        region_mask(face, (width, height), "left_eye"),
        region_mask(face, (width, height), "right_eye"),
    )
    area &= ~(cv2.dilate(eyes, _disk(frame.unit * 0.08)) > 0)
    return area.astype(np.uint8) * 255


def face_edit_mask(face: Face, size: tuple[int, int], hair: Mask | None = None) -> Mask:
    """The face as an age edit repaints it: the mesh's oval grown a little (the jaw line
    and cheeks change with age), the eyes left out so they stay where they are, plus the
    hair when given (grey hair, a child's hairline)."""
    import cv2

    unit = face.eye_distance
    oval = cv2.dilate(region_mask(face, size, "face"), _disk(unit * 0.1))
    if hair is not None:
        oval = cv2.bitwise_or(oval, hair)
    eyes = cv2.bitwise_or(region_mask(face, size, "left_eye"), region_mask(face, size, "right_eye"))
    mask: Mask = cv2.subtract(oval, cv2.dilate(eyes, _disk(unit * 0.06)))
    return mask


def shoulders_visible(pose: PoseResult, *, min_visibility: float = 0.5) -> bool:
    """Both shoulders found, inside the image and confidently seen."""
    for name in ("left_shoulder", "right_shoulder"):
        p = pose.landmark(name)
        inside = 0 <= p.x < pose.width and 0 <= p.y < pose.height
        if not inside or p.visibility < min_visibility:
            return False
    return True


def clothes_mask(
    models: ModelProvider,
    img: Image.Image,
    pose: PoseResult,
    face: Face | None,
    person: Array | None = None,
) -> Mask:
    """A 0/255 mask of the clothes of the person whose shoulders `pose` found: the person's
    pixels in the body outline the pose draws (torso, arms, legs), below the chin, without
    the face, the hair or skin-coloured pixels (neck, hands)."""
    import cv2

    from pixelforge.vision.segmentation import person_mask

    if person is None:
        person = person_mask(models, img, threshold=0.5, refine=True)
    width, height = img.size
    rgb = np.asarray(img.convert("RGB"))
    body = _body_outline(pose, (width, height))
    mask = (person > 0.5) & body
    span = _shoulder_width(pose)
    if face is not None:
        chin_y = float(face.landmarks[_CHIN, 1])
        unit = face.eye_distance
        mask &= np.arange(height)[:, None] > chin_y
        head = cv2.dilate(region_mask(face, (width, height), "face"), _disk(unit * 0.1)) > 0
        mask &= ~head & ~(hair_mask(models, img, face, person) > 0)
        mask &= ~skin_like(rgb, face, within=mask)
    else:
        shoulder_y = min(pose.landmark(n).y for n in ("left_shoulder", "right_shoulder"))
        mask &= np.arange(height)[:, None] > shoulder_y - 0.35 * span
    out: Mask = cv2.morphologyEx(mask.astype(np.uint8) * 255, cv2.MORPH_OPEN, _disk(span * 0.01))
    closed: Mask = cv2.morphologyEx(out, cv2.MORPH_CLOSE, _disk(span * 0.03))
    return cv2.bitwise_and(closed, body.astype(np.uint8) * 255)


def skin_like(rgb: Array, face: Face, *, within: Array) -> Array:
    """Pixels (inside `within`) whose colour lies near the face's own skin, as booleans
    [H, W]. Only chroma (Lab a, b) counts: shading moves lightness across a face far more
    than it moves hue, while hair of about the skin's lightness differs from it in hue."""
    import cv2

    height, width = rgb.shape[:2]
    out = np.zeros((height, width), dtype=bool)
    skin = region_mask(face, (width, height), "skin") > 0
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)[..., 1:]
    samples = lab[skin]
    if len(samples) < _MIN_SKIN_PIXELS or not within.any():
        return out
    # Trimmed statistics: specular highlights and shadows at the oval's edge are not skin.
    mean = np.median(samples, axis=0)
    spread = np.linalg.norm(samples - mean, axis=1)
    core = samples[spread <= np.percentile(spread, 90)]
    cov = np.cov(core, rowvar=False) + np.eye(2, dtype=np.float32) * 0.5
    inv = np.linalg.inv(cov).astype(np.float32)
    d = lab[within] - mean
    dist = np.sqrt(np.einsum("ni,ij,nj->n", d, inv, d))
    out[within] = dist < _SKIN_DISTANCE
    return out


def coverage(mask: Mask) -> float:
    """The share of the image a 0/255 mask covers, 0-1."""
    return round(float(np.count_nonzero(mask)) / max(1, mask.size), 4)


def _ellipse(u: Array, v: Array, shape: tuple[float, float, float, float]) -> Array:
    cu, cv, au, av = shape
    inside: Array = ((u - cu) / au) ** 2 + ((v - cv) / av) ** 2 <= 1.0
    return inside


def _disk(radius: float) -> Array:
    import cv2

    r = max(1, round(radius))
    kernel: Array = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return kernel


def _shoulder_width(pose: PoseResult) -> float:
    a, b = pose.landmark("left_shoulder"), pose.landmark("right_shoulder")
    return max(8.0, float(np.hypot(a.x - b.x, a.y - b.y)))


def _body_outline(pose: PoseResult, size: tuple[int, int]) -> Array:
    """Where clothes can be: the torso quadrilateral widened past the shoulders and hips,
    and capsules along the arms and legs the pose sees (hips the pose only guesses are
    placed a torso length below the shoulders)."""
    import cv2

    width, height = size
    span = _shoulder_width(pose)
    lm = {n: np.array([pose.landmark(n).x, pose.landmark(n).y]) for n in _BODY_POINTS}
    ls, rs = lm["left_shoulder"], lm["right_shoulder"]
    across = (ls - rs) / span
    down = np.array([-across[1], across[0]])
    if down[1] < 0:
        down = -down
    lh, rh = lm["left_hip"], lm["right_hip"]
    if min(pose.landmark("left_hip").visibility, pose.landmark("right_hip").visibility) < 0.2:
        lh, rh = ls + down * span * 1.5, rs + down * span * 1.5
    hips_across = (lh - rh) / max(1.0, float(np.hypot(*(lh - rh))))
    polygon = np.array(
        [
            rs - across * span * 0.2 - down * span * 0.25,
            ls + across * span * 0.2 - down * span * 0.25,
            lh + hips_across * span * 0.2 + down * span * 0.35,
            rh - hips_across * span * 0.2 + down * span * 0.35,
        ]
    )
    out = np.zeros((height, width), dtype=np.uint8)
    cv2.fillConvexPoly(out, np.round(polygon).astype(np.int32), 255)
    thickness = max(2, round(span * 0.4))
    for chain in _LIMBS:
        for a, b in itertools.pairwise(chain):
            if min(pose.landmark(a).visibility, pose.landmark(b).visibility) < 0.3:
                break
            pa, pb = np.round(lm[a]).astype(int), np.round(lm[b]).astype(int)
            cv2.line(out, (int(pa[0]), int(pa[1])), (int(pb[0]), int(pb[1])), 255, thickness)
    return out > 0


_LIMBS = (
    ("left_shoulder", "left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow", "right_wrist"),
    ("left_hip", "left_knee", "left_ankle"),
    ("right_hip", "right_knee", "right_ankle"),
)
_BODY_POINTS = {n for chain in _LIMBS for n in chain}
