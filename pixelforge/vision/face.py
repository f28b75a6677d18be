"""Faces in a photo: MediaPipe detection and 478-point mesh, head pose, region masks."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
from PIL import Image

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import FACE_DETECTION, FACE_MESH, ModelProvider
from pixelforge.models.bundled import FACE_DETECTION_MODEL, FACE_MESH_MODEL, INSTALL_HINTS

INSTALL_HINT = INSTALL_HINTS["mediapipe"]
MAX_FACES = 5  # the face mesh profile's max_num_faces

Region = Literal["face", "skin", "lips", "left_eye", "right_eye", "brows", "eyeshadow", "cheeks"]
REGIONS: tuple[str, ...] = get_args(Region)
Mask = np.ndarray[Any, Any]
Points = np.ndarray[Any, Any]

# MediaPipe's canonical face model (canonical_face_model.obj; x right, y up, z toward the
# viewer) at rigid points: nose tip and bridge, forehead, chin, eye corners, the face's sides.
# Mouth corners are left out on purpose: a smile lifts them and reads as a nod.
_CANONICAL = {
    1: (0.0, -1.126865, 7.475604),
    4: (0.0, -0.463170, 7.586580),
    6: (0.0, 2.473255, 5.788627),
    168: (0.0, 3.271027, 5.236015),
    151: (0.0, 6.545390, 5.027311),
    152: (0.0, -9.403378, 4.264492),
    33: (-4.445859, 2.663991, 3.173422),
    263: (4.445859, 2.663991, 3.173422),
    133: (-1.856432, 2.585245, 3.757904),
    362: (1.856432, 2.585245, 3.757904),
    127: (-7.743095, 2.364999, -2.005167),
    356: (7.743095, 2.364999, -2.005167),
}
_NOSE_TIP, _RIGHT_EYE_OUTER, _LEFT_EYE_OUTER = 1, 33, 263
_CHEEK_CENTERS = (50, 280)  # the cheek apples, where blush goes


@dataclass(frozen=True, eq=False)
class Face:
    """One face in pixels of the analysed image. Angles in degrees, relative to the line of
    sight: pitch > 0 looks down, yaw > 0 turns toward the image's left (the person's right),
    roll > 0 tilts clockwise. `score` is the full-range detector's confidence (None when only
    the mesh found the face). "left"/"right" regions are the person's own."""

    box: tuple[int, int, int, int]  # x, y, w, h around the whole mesh
    score: float | None
    landmarks: Points  # [478, 2] x, y
    depth: Points  # [478] z on about the scale of x; smaller is nearer the camera
    pitch: float
    yaw: float
    roll: float

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]

    @property
    def eye_distance(self) -> float:
        """Distance between the outer eye corners: the unit masks are scaled by."""
        a, b = self.landmarks[_RIGHT_EYE_OUTER], self.landmarks[_LEFT_EYE_OUTER]
        return max(1.0, float(np.hypot(*(a - b))))


@dataclass(frozen=True)
class FaceRequirements:
    """What a pipeline needs of its input; a limit of None is not checked. The defaults are
    Perfect Corp's: -10 < pitch < 10, -45 < yaw < 45, -15 < roll < 15."""

    exactly_one: bool = False
    max_pitch: float | None = 10.0
    max_yaw: float | None = 45.0
    max_roll: float | None = 15.0


ANY_FACE = FaceRequirements(max_pitch=None, max_yaw=None, max_roll=None)


def angle_problem(face: Face, req: FaceRequirements) -> str | None:
    """Why the face is turned too far for `req` (a phrase), or None when it is not."""
    checks = (
        (face.yaw, req.max_yaw, "turned {v}° sideways"),
        (face.roll, req.max_roll, "tilted {v}° toward a shoulder"),
        (face.pitch, req.max_pitch, "tilted {v}° " + ("down" if face.pitch > 0 else "up")),
    )
    for value, limit, what in checks:
        if limit is not None and abs(value) > limit:
            return f"{what.format(v=round(abs(value)))}; at most {limit:g}° is supported"
    return None


def check_faces(faces: list[Face], req: FaceRequirements, *, what: str = "the image") -> Face:
    """The largest face, once `faces` meets `req`; otherwise the error a person can act on."""
    if not faces:
        raise PixelForgeError(
            ErrorCode.error_no_face,
            f"no face found in {what}; use a photo where a face is clearly visible",
        )
    if req.exactly_one and len(faces) > 1:
        raise PixelForgeError(
            ErrorCode.error_multiple_people,
            f"{len(faces)} faces found in {what}; use a photo of exactly one person",
        )
    face = faces[0]
    if (problem := angle_problem(face, req)) is not None:
        raise PixelForgeError(
            ErrorCode.error_large_face_angle,
            f"the face in {what} is {problem}; use a photo facing the camera",
        )
    return face


def analyze_faces(models: ModelProvider, img: Image.Image) -> list[Face]:
    """Every face in `img`, largest first, with the manager's face detection and mesh models
    (each process holds one of each; their locks serialize concurrent callers)."""
    with (
        models.load(FACE_DETECTION_MODEL, task=FACE_DETECTION) as detector,
        models.load(FACE_MESH_MODEL, task=FACE_MESH) as mesh,
    ):
        return find_faces(detector, mesh, img)


def find_faces(detector: Any, mesh: Any, img: Image.Image) -> list[Face]:
    """Every face found by MediaPipe's full-range `detector` and face `mesh` (loaded solution
    graphs, used by one thread at a time), largest first."""
    rgb = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    h, w = rgb.shape[:2]
    detections = _detect(detector, rgb)
    faces: list[Face] = []
    for points in _meshes(mesh, rgb):
        score = _take_detection(detections, points[_NOSE_TIP, :2])
        faces.append(_face(points, score, (w, h)))
    # The mesh's own detector is short-range: give small faces found by the full-range
    # detector a second chance on an enlarged crop.
    for box, score in detections:
        points_or_none = _mesh_in_crop(mesh, rgb, box)
        if points_or_none is not None and not _inside_any(faces, points_or_none[_NOSE_TIP]):
            faces.append(_face(points_or_none, score, (w, h)))
    return sorted(faces, key=lambda f: f.area, reverse=True)[:MAX_FACES]


def _detect(detector: Any, rgb: np.ndarray[Any, Any]) -> list[tuple[tuple[float, ...], float]]:
    h, w = rgb.shape[:2]
    found = detector.process(rgb).detections or []
    out = []
    for d in found:
        b = d.location_data.relative_bounding_box
        out.append(((b.xmin * w, b.ymin * h, b.width * w, b.height * h), float(d.score[0])))
    return sorted(out, key=lambda d: d[1], reverse=True)


def _meshes(mesh: Any, rgb: np.ndarray[Any, Any]) -> list[Points]:
    h, w = rgb.shape[:2]
    found = mesh.process(rgb).multi_face_landmarks or []
    return [
        np.array([(p.x * w, p.y * h, p.z * w) for p in f.landmark], dtype=np.float32) for f in found
    ]


def _mesh_in_crop(mesh: Any, rgb: np.ndarray[Any, Any], box: tuple[float, ...]) -> Points | None:
    import cv2

    x, y, bw, bh = box
    side = max(bw, bh) * 3  # the face about a third of the crop, as the mesh expects
    cx, cy = x + bw / 2, y + bh / 2
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(rgb.shape[1], int(cx + side / 2)), min(rgb.shape[0], int(cy + side / 2))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    scale = max(1.0, 384 / max(x1 - x0, y1 - y0))
    crop = cv2.resize(rgb[y0:y1, x0:x1], None, fx=scale, fy=scale)
    for points in _meshes(mesh, np.ascontiguousarray(crop)):
        moved: Points = (points / scale + [x0, y0, 0]).astype(np.float32)
        nx, ny = moved[_NOSE_TIP, :2]
        if x <= nx <= x + bw and y <= ny <= y + bh:
            return moved
    return None


def region_mask(face: Face, size: tuple[int, int], region: Region) -> Mask:
    """A 0/255 mask of `region` of `face`, `size` = (width, height) of the analysed image."""
    width, height = size
    # Drawn (and dilated) around the face only: a 4096 px photo costs what its face costs.
    pad = round(face.eye_distance * 0.1) + 2
    x, y, w, h = face.box
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(width, x + w + pad), min(height, y + h + pad)
    mask = np.zeros((height, width), dtype=np.uint8)
    if x1 > x0 and y1 > y0:
        mask[y0:y1, x0:x1] = _local_mask(face, region, origin=(x0, y0), shape=(y1 - y0, x1 - x0))
    return mask


def _local_mask(
    face: Face, region: Region, *, origin: tuple[int, int], shape: tuple[int, int]
) -> Mask:
    import cv2

    height, width = shape
    unit = face.eye_distance
    pts = face.landmarks - np.array(origin, dtype=np.float32)

    def sub(other: Region) -> Mask:
        return _local_mask(face, other, origin=origin, shape=shape)

    def fill(*polygons: list[int]) -> Mask:
        mask = np.zeros((height, width), dtype=np.uint8)
        for poly in polygons:
            cv2.fillPoly(mask, [np.round(pts[poly]).astype(np.int32)], 255)
        return mask

    def grow(mask: Mask, fraction: float) -> Mask:
        r = max(1, round(unit * fraction))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        return cv2.dilate(mask, kernel)

    shapes = _shapes()
    if region == "face":
        return fill(shapes.oval)
    if region == "left_eye":
        return fill(shapes.left_eye)
    if region == "right_eye":
        return fill(shapes.right_eye)
    if region == "lips":
        return cv2.subtract(fill(shapes.lips_outer), fill(shapes.lips_inner))
    if region == "brows":
        return fill(*(_brow_polygon(pts, brow) for brow in shapes.brows))
    if region == "skin":
        eyes = grow(fill(shapes.left_eye, shapes.right_eye), 0.08)
        brows = grow(sub("brows"), 0.04)
        lips = grow(fill(shapes.lips_outer), 0.03)
        return cv2.subtract(fill(shapes.oval), cv2.bitwise_or(cv2.bitwise_or(eyes, brows), lips))
    if region == "eyeshadow":
        mask = np.zeros((height, width), dtype=np.uint8)
        for eye, brow in ((shapes.left_eye, shapes.brows[0]), (shapes.right_eye, shapes.brows[1])):
            lower_brow = _nearest_path(pts, brow, pts[eye].mean(axis=0))
            hull = cv2.convexHull(np.round(pts[eye + lower_brow]).astype(np.int32))
            cv2.fillConvexPoly(mask, hull, 255)
        keep_out = grow(fill(shapes.left_eye, shapes.right_eye), 0.04)
        return cv2.subtract(mask, cv2.bitwise_or(keep_out, sub("brows")))
    if region == "cheeks":
        mask = np.zeros((height, width), dtype=np.uint8)
        dx, dy = pts[_LEFT_EYE_OUTER] - pts[_RIGHT_EYE_OUTER]
        angle = math.degrees(math.atan2(dy, dx))
        axes = (round(unit * 0.28), round(unit * 0.2))
        for i in _CHEEK_CENTERS:
            center = (round(float(pts[i, 0])), round(float(pts[i, 1])))
            cv2.ellipse(mask, center, axes, angle, 0, 360, 255, thickness=-1)
        return cv2.bitwise_and(mask, sub("skin"))
    raise ValueError(f"unknown face region {region!r}; known: {', '.join(REGIONS)}")


def feather(mask: Mask, radius: float) -> np.ndarray[Any, Any]:
    """A 0-1 float mask with edges softened over about `radius` pixels."""
    import cv2

    soft = mask.astype(np.float32) / 255.0
    if radius < 0.5:
        return soft
    return cv2.GaussianBlur(soft, (0, 0), sigmaX=radius / 2)


# --- the mesh's index sets as polygons ---------------------------------------------------


@dataclass(frozen=True)
class _Shapes:
    oval: list[int]
    left_eye: list[int]
    right_eye: list[int]
    lips_outer: list[int]
    lips_inner: list[int]
    brows: tuple[list[list[int]], list[list[int]]]  # (left, right), each two open paths


@functools.cache
def _shapes() -> _Shapes:
    try:
        from mediapipe.python.solutions import face_mesh_connections as fmc
    except ImportError as e:
        raise PixelForgeError(
            ErrorCode.model_unavailable,
            f"face analysis needs MediaPipe, which is not installed ({e}); run `{INSTALL_HINT}`",
        ) from e
    lips = sorted(_chains(fmc.FACEMESH_LIPS), key=len, reverse=True)  # outer loop is longer
    return _Shapes(
        oval=_chains(fmc.FACEMESH_FACE_OVAL)[0],
        left_eye=_chains(fmc.FACEMESH_LEFT_EYE)[0],
        right_eye=_chains(fmc.FACEMESH_RIGHT_EYE)[0],
        lips_outer=lips[0],
        lips_inner=lips[1],
        brows=(_chains(fmc.FACEMESH_LEFT_EYEBROW), _chains(fmc.FACEMESH_RIGHT_EYEBROW)),
    )


def _chains(edges: frozenset[tuple[int, int]]) -> list[list[int]]:
    """Edges -> their connected chains in walking order: closed loops or open paths."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    seen: set[int] = set()
    chains = []
    # Open paths start at an end (one neighbour); what is left after them are loops.
    starts = [n for n, nb in neighbours.items() if len(nb) == 1] + sorted(neighbours)
    for start in starts:
        if start in seen:
            continue
        chain, prev, node = [start], -1, start
        seen.add(start)
        while True:
            nxt = [n for n in neighbours[node] if n != prev and n not in seen]
            if not nxt:
                break
            prev, node = node, nxt[0]
            chain.append(node)
            seen.add(node)
        chains.append(chain)
    return chains


def _brow_polygon(pts: Points, paths: list[list[int]]) -> list[int]:
    """A brow's upper and lower edges (two open paths) joined into one polygon."""
    a, b = paths
    if np.hypot(*(pts[a[-1]] - pts[b[0]])) > np.hypot(*(pts[a[-1]] - pts[b[-1]])):
        b = b[::-1]
    return a + b


def _nearest_path(pts: Points, paths: list[list[int]], point: np.ndarray[Any, Any]) -> list[int]:
    return min(paths, key=lambda p: float(np.hypot(*(pts[p].mean(axis=0) - point))))


# --- building faces ------------------------------------------------------------------------


def _face(points: Points, score: float | None, size: tuple[int, int]) -> Face:
    w, h = size
    x0, y0 = np.floor(points[:, :2].min(axis=0)).astype(int)
    x1, y1 = np.ceil(points[:, :2].max(axis=0)).astype(int)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    pitch, yaw, roll = _head_pose(points[:, :2], size)
    return Face(
        box=(int(x0), int(y0), int(max(1, x1 - x0)), int(max(1, y1 - y0))),
        score=score,
        landmarks=np.ascontiguousarray(points[:, :2], dtype=np.float32),
        depth=np.ascontiguousarray(points[:, 2], dtype=np.float32),
        pitch=pitch,
        yaw=yaw,
        roll=roll,
    )


def _head_pose(points: Points, size: tuple[int, int]) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees: solvePnP against the canonical model, camera focal
    length = image width, then taken relative to the ray through the face (a frontal face
    off the image centre is seen obliquely, which is not a turned head)."""
    import cv2

    w, h = size
    ids = list(_CANONICAL)
    # Camera axes: x right, y down, z away from the viewer.
    model = np.array([(x, -y, -z) for x, y, z in _CANONICAL.values()], dtype=np.float64)
    camera = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(
        model, points[ids].astype(np.float64), camera, None, flags=cv2.SOLVEPNP_SQPNP
    )
    if not ok:
        return 0.0, 0.0, 0.0
    rotation, _ = cv2.Rodrigues(rvec)
    ray = tvec.ravel() / max(1e-9, float(np.linalg.norm(tvec)))
    axis = np.cross([0.0, 0.0, 1.0], ray)
    sin = float(np.linalg.norm(axis))
    if sin > 1e-9:
        to_ray, _ = cv2.Rodrigues(axis / sin * math.asin(min(1.0, sin)))
        rotation = to_ray.T @ rotation
    # R = Rz(roll) Ry(yaw) Rx(pitch)
    pitch = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -rotation[2, 0]))))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return round(pitch, 1), round(yaw, 1), round(roll, 1)


def _take_detection(
    detections: list[tuple[tuple[float, ...], float]], nose: np.ndarray[Any, Any]
) -> float | None:
    """The score of the best detection around `nose`, which is then used up."""
    for i, ((x, y, w, h), score) in enumerate(detections):
        if x <= nose[0] <= x + w and y <= nose[1] <= y + h:
            del detections[i]
            return score
    return None


def _inside_any(faces: list[Face], point: np.ndarray[Any, Any]) -> bool:
    return any(
        f.box[0] <= point[0] <= f.box[0] + f.box[2] and f.box[1] <= point[1] <= f.box[1] + f.box[3]
        for f in faces
    )
