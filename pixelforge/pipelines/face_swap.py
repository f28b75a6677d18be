"""Put the face from one photo onto a face in another: mesh warp, colour match, Poisson blend."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.pipelines.contract import MediaRef, RunContext
from pixelforge.pipelines.limits import PHOTO_EFFECT, InputLimit
from pixelforge.vision.face import ANY_FACE, Face, analyze_faces, check_faces, feather, region_mask

_MESH_POINTS = 468  # the iris points (468-477) sit inside the eye contour: no new triangles
# Points within this many eye distances of the target's jawline move toward it, so the seam
# runs along the target's own outline; deeper inside, the source's features keep their shape.
_OUTLINE_BAND = 0.15
_ERODE = 0.1  # the blend mask stays this far (in eye distances) inside the face outline
_FEATHER = 0.15
_MAX_STD_RATIO = 2.0


class FaceSwapParams(BaseModel):
    """Parameters of the `face_swap` pipeline."""

    model_config = ConfigDict(extra="forbid")

    source: MediaRef = Field(
        description="Media id of the photo whose face is used.", examples=["med_3f9a1c2b7d4e"]
    )
    target: MediaRef = Field(
        description="Media id of the photo that receives the face; the rest of it is kept.",
        examples=["med_8b1d0e6a2c5f"],
    )
    source_index: int = Field(
        default=0,
        ge=0,
        le=4,
        description="Which face of the source when it has several: 0 is the largest.",
        examples=[0],
    )
    target_index: int = Field(
        default=0,
        ge=0,
        le=4,
        description="Which face of the target to replace: 0 is the largest.",
        examples=[0],
    )
    output_format: Literal["png", "jpg", "webp"] = Field(
        default="png",
        description="Encoding of the result. jpg has no alpha: transparency is dropped.",
        examples=["png"],
    )


class FaceSwapPipeline:
    """Landmark-aligned face swap on MediaPipe's 478-point mesh."""

    name: ClassVar[str] = "face_swap"
    description: ClassVar[str] = (
        "Swap a face: the source face is warped triangle by triangle onto the target face "
        "(keeping its own features, following the target's outline), colour-matched in Lab "
        "and blended with Poisson seamless cloning. error_no_face when either photo has none."
    )
    Params: ClassVar[type[BaseModel]] = FaceSwapParams
    # Perfect's table: AI Face Swap.
    input_limit: ClassVar[InputLimit | None] = PHOTO_EFFECT

    def cost(self, params: FaceSwapParams) -> int:
        return 1

    def run(self, params: FaceSwapParams, ctx: RunContext) -> dict[str, Any]:
        import cv2

        # 1. Load both photos and find the chosen faces
        source_img = ctx.load_image(params.source)
        target_img = ctx.load_image(params.target)
        src_faces = analyze_faces(ctx.models, source_img)
        tgt_faces = analyze_faces(ctx.models, target_img)
        check_faces(src_faces, ANY_FACE, what="the source image")
        check_faces(tgt_faces, ANY_FACE, what="the target image")
        src = _pick(src_faces, params.source_index, "source")
        tgt = _pick(tgt_faces, params.target_index, "target")
        source = np.asarray(source_img.convert("RGB"))
        target = np.asarray(target_img.convert("RGB"))
        ctx.progress(1, 4)

        # 2. Warp the source face, triangle by triangle, onto the swapped geometry; all the
        #    work happens in a window around the target face
        unit = tgt.eye_distance
        geometry = _swapped_geometry(src, tgt)
        x0, y0, x1, y1 = _window(geometry, target.shape, margin=unit * 0.5)
        local = geometry - (x0, y0)
        patch = target[y0:y1, x0:x1]
        warped = _warp_mesh(source, src.landmarks[:_MESH_POINTS], local, patch.shape)
        ctx.progress(2, 4)

        # 3. Match the source's skin colour to the target's (mean and spread in Lab)
        warped = _match_colour(
            warped,
            source_stats=_skin_stats(source, src, source_img.size),
            target_stats=_skin_stats(target, tgt, target_img.size),
        )
        ctx.progress(3, 4)

        # 4. Blend: Poisson clone inside the eroded hull, then a feathered edge
        hull = np.zeros(patch.shape[:2], dtype=np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(np.round(local).astype(np.int32)), 255)
        radius = max(1, round(unit * _ERODE))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.erode(hull, kernel)
        mask[:2, :], mask[-2:, :], mask[:, :2], mask[:, -2:] = 0, 0, 0, 0
        blended = _seamless(warped, patch, mask)
        alpha = feather(mask, unit * _FEATHER)[..., None]
        out = target.copy()
        out[y0:y1, x0:x1] = (alpha * blended + (1 - alpha) * patch).round().astype(np.uint8)

        # 5. Save outputs (the target's alpha is kept for png/webp)
        result = Image.fromarray(out)
        if target_img.mode == "RGBA" and params.output_format != "jpg":
            result.putalpha(target_img.getchannel("A"))
        ctx.save_image(result, format=params.output_format)
        ctx.progress(4, 4)
        return {
            "width": result.width,
            "height": result.height,
            "source_face": {"box": list(src.box), "faces_found": len(src_faces)},
            "target_face": {"box": list(tgt.box), "faces_found": len(tgt_faces)},
        }


def _pick(faces: list[Face], index: int, which: str) -> Face:
    if index >= len(faces):
        n = len(faces)
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"{which}_index: the {which} image has {n} face{'s' if n > 1 else ''} "
            f"(indexes 0-{n - 1}, largest first), so {index} does not exist",
        )
    return faces[index]


def _swapped_geometry(src: Face, tgt: Face) -> np.ndarray[Any, Any]:
    """Where each source mesh point lands in the target: the source mesh aligned to the
    target's position, size and tilt, blended into the target's own outline near its jaw."""
    from mediapipe.python.solutions import face_mesh_connections as fmc

    s = src.landmarks[:_MESH_POINTS].astype(np.float64)
    t = tgt.landmarks[:_MESH_POINTS].astype(np.float64)
    aligned = _similarity(s, t)
    outline = t[sorted({i for edge in fmc.FACEMESH_FACE_OVAL for i in edge})]
    dist = np.min(np.linalg.norm(t[:, None, :] - outline[None, :, :], axis=2), axis=1)
    pull = np.clip(1 - dist / (tgt.eye_distance * _OUTLINE_BAND), 0, 1)[:, None]
    result: np.ndarray[Any, Any] = pull * t + (1 - pull) * aligned
    return result


def _similarity(src: np.ndarray[Any, Any], dst: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """`src` moved by the rotation, uniform scale and shift that best fit it onto `dst`
    (Umeyama's least squares)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    u, sigma, vt = np.linalg.svd(b.T @ a)
    d = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt
    scale = float(np.trace(np.diag(sigma) @ d) / max(1e-9, float((a**2).sum())))
    moved: np.ndarray[Any, Any] = scale * a @ rotation.T + mu_d
    return moved


def _warp_mesh(
    image: np.ndarray[Any, Any],
    src_pts: np.ndarray[Any, Any],
    dst_pts: np.ndarray[Any, Any],
    shape: tuple[int, ...],
) -> np.ndarray[Any, Any]:
    """`image` warped so each Delaunay triangle of `src_pts` lands on the same triangle of
    `dst_pts`: one affine map per triangle, applied as a single remap."""
    import cv2

    h, w = shape[:2]
    triangles = _delaunay(dst_pts, (w, h))
    owner = np.zeros((h, w), dtype=np.int32)  # 1 + the triangle covering each pixel
    affines = np.zeros((len(triangles) + 1, 2, 3), dtype=np.float64)
    for k, tri in enumerate(triangles, start=1):
        d, s = dst_pts[tri].astype(np.float32), src_pts[tri].astype(np.float32)
        (ax, ay), (bx, by) = d[1] - d[0], d[2] - d[0]
        if abs(float(ax * by - ay * bx)) < 1e-3:
            continue  # degenerate: nothing to cover
        affines[k] = cv2.getAffineTransform(d, s)
        cv2.fillConvexPoly(owner, np.round(d).astype(np.int32), k)
    ys, xs = np.nonzero(owner)
    a = affines[owner[ys, xs]]
    map_x = np.full((h, w), -1, dtype=np.float32)
    map_y = np.full((h, w), -1, dtype=np.float32)
    map_x[ys, xs] = a[:, 0, 0] * xs + a[:, 0, 1] * ys + a[:, 0, 2]
    map_y[ys, xs] = a[:, 1, 0] * xs + a[:, 1, 1] * ys + a[:, 1, 2]
    warped: np.ndarray[Any, Any] = cv2.remap(
        image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return warped


def _delaunay(points: np.ndarray[Any, Any], size: tuple[int, int]) -> list[list[int]]:
    """Delaunay triangles of `points` as index triples (points off the image are clamped)."""
    import cv2

    w, h = size
    clamped = np.clip(points, [0, 0], [w - 1, h - 1]).astype(np.float32)
    subdiv = cv2.Subdiv2D((0, 0, w, h))
    index: dict[tuple[float, float], int] = {}
    for i, (x, y) in enumerate(clamped):
        key = (float(x), float(y))
        if key not in index:
            index[key] = i
            subdiv.insert(key)
    triangles = []
    for x1, y1, x2, y2, x3, y3 in subdiv.getTriangleList():
        corners = ((float(x1), float(y1)), (float(x2), float(y2)), (float(x3), float(y3)))
        if all(c in index for c in corners):  # skips the subdivision's outer helper points
            triangles.append([index[c] for c in corners])
    return triangles


LabStats = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


def _window(
    points: np.ndarray[Any, Any], shape: tuple[int, ...], *, margin: float
) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1: the points' bounds widened by `margin`, within the image."""
    h, w = shape[:2]
    (x0, y0), (x1, y1) = points.min(axis=0) - margin, points.max(axis=0) + margin
    return max(0, int(x0)), max(0, int(y0)), min(w, int(x1) + 1), min(h, int(y1) + 1)


def _skin_stats(rgb: np.ndarray[Any, Any], face: Face, size: tuple[int, int]) -> LabStats:
    """Mean and spread of the face's skin colour in Lab."""
    import cv2

    x, y, w, h = face.box
    crop = rgb[y : y + h, x : x + w]
    skin = region_mask(face, size, "skin")[y : y + h, x : x + w]
    lab = cv2.cvtColor(crop.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)[skin > 0]
    if len(lab) < 16:  # too small to measure: leave the colour alone
        return np.zeros(3), np.ones(3)
    return lab.mean(axis=0), lab.std(axis=0) + 1e-3


def _match_colour(
    rgb: np.ndarray[Any, Any], *, source_stats: LabStats, target_stats: LabStats
) -> np.ndarray[Any, Any]:
    import cv2

    (mu_s, sd_s), (mu_t, sd_t) = source_stats, target_stats
    ratio = np.clip(sd_t / sd_s, 1 / _MAX_STD_RATIO, _MAX_STD_RATIO)
    lab = cv2.cvtColor(rgb.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    lab = ((lab - mu_s) * ratio + mu_t).astype(np.float32)
    out = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    matched: np.ndarray[Any, Any] = np.clip(out * 255, 0, 255).round().astype(np.uint8)
    return matched


def _seamless(
    src: np.ndarray[Any, Any], dst: np.ndarray[Any, Any], mask: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """Poisson-blend `src` into `dst` inside `mask`, in place (same size, same position)."""
    import cv2

    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        result: np.ndarray[Any, Any] = dst.copy()
        return result
    x, y = int(xs.min()), int(ys.min())
    w, h = int(xs.max()) - x + 1, int(ys.max()) - y + 1
    # seamlessClone centres the mask's bounding box on `center` (integer halves), and it
    # writes into the mask it is given: hand it a copy.
    center = (x + w // 2, y + h // 2)
    cloned: np.ndarray[Any, Any] = cv2.seamlessClone(
        np.ascontiguousarray(src), np.ascontiguousarray(dst), mask.copy(), center, cv2.NORMAL_CLONE
    )
    return cloned
