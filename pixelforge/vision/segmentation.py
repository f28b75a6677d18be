"""Person segmentation (MediaPipe selfie segmentation) with guided-filter edge refinement."""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from PIL import Image

from pixelforge.models.base import PERSON_SEGMENTATION, ModelProvider
from pixelforge.models.bundled import SEGMENTATION_MODELS

SegmentationModel = Literal[0, 1]  # 0: general (256x256 input), 1: landscape (144x256)
# The networks see 256 px at most, so the larger sides only cost time in MediaPipe's resize.
_MODEL_MAX_SIDE = 1024
# The guided filter's coefficients are computed at most at this size (He's "fast guided
# filter") and upsampled: they are smooth, and the full-size guide keeps the edges sharp.
_FILTER_MAX_SIDE = 1024
# Below this share of the image a "person" is noise around a pose the detector half-saw.
MIN_PERSON_AREA = 0.002

Array = np.ndarray[Any, Any]


def person_probabilities(graph: Any, rgb: Array) -> Array:
    """Per-pixel person probability, float32 [H, W], for an RGB uint8 [H, W, 3] array, from a
    loaded selfie segmentation graph (used by one thread at a time). The image and its
    mirror image are both segmented and averaged: the networks are not mirror-symmetric,
    and the average removes much of their blotchiness."""
    import cv2

    h, w = rgb.shape[:2]
    small = rgb
    if max(h, w) > _MODEL_MAX_SIDE:
        s = _MODEL_MAX_SIDE / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    small = np.ascontiguousarray(small, dtype=np.uint8)
    mirrored = np.ascontiguousarray(small[:, ::-1])
    direct = np.array(graph.process(small).segmentation_mask, dtype=np.float32)
    flipped = np.array(graph.process(mirrored).segmentation_mask, dtype=np.float32)
    prob: Array = (direct + flipped[:, ::-1]) / 2
    if prob.shape != (h, w):
        prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(prob, 0.0, 1.0)


def person_mask(
    models: ModelProvider,
    img: Image.Image | Array,
    *,
    model: SegmentationModel = 0,
    threshold: float | None = 0.5,
    feather: float = 0.0,
    refine: bool = True,
) -> Array:
    """The person's alpha matte, float32 [H, W] in 0..1, with the manager's selfie
    segmentation model (`model` 0: general, 1: landscape).

    threshold: the probability above which a pixel is the person; the hard mask is then
    refined, which keeps the body solid. None refines the network's soft probabilities
    instead (softer, semi-transparent where the network hesitates).
    refine: a guided filter with the photo as guide snaps the mask's edges (upsampled from
    the network's 256 px) to the photo's edges and gives hair a soft matte.
    feather: extra Gaussian softening of the edge, sigma in pixels.
    """
    rgb = _rgb_array(img)
    with models.load(SEGMENTATION_MODELS[model], task=PERSON_SEGMENTATION) as graph:
        prob = person_probabilities(graph, rgb)
    return refine_matte(rgb, prob, threshold=threshold, feather=feather, refine=refine)


def refine_matte(
    rgb: Array,
    prob: Array,
    *,
    threshold: float | None = 0.5,
    feather: float = 0.0,
    refine: bool = True,
) -> Array:
    """A network's foreground probabilities (float32 [H, W], any segmentation or matting
    model) made into an alpha matte, as `person_mask` describes: thresholded (or kept soft
    with None), edges snapped to the photo's with a guided filter, optionally feathered."""
    import cv2

    mask = prob if threshold is None else (prob > threshold).astype(np.float32)
    if refine:
        h, w = mask.shape
        side = max(h, w)
        mask = guided_filter(
            rgb.astype(np.float32) / 255.0,
            mask,
            radius=max(2, round(side / 128)),
            eps=1e-3,
            subsample=math.ceil(side / _FILTER_MAX_SIDE),
        )
    if feather > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=feather)
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def find_person(
    models: ModelProvider,
    img: Image.Image | Array,
    *,
    model: SegmentationModel = 0,
    threshold: float | None = 0.5,
    feather: float = 0.0,
) -> Array | None:
    """`person_mask`, or None when the photo shows nobody. The selfie networks call cats and
    coffee cups people too, so a person must also be found by MediaPipe Pose (whose detector
    looks for a face-and-body) and cover a minimal share of the image."""
    from pixelforge.vision.pose import extract_pose

    rgb = _rgb_array(img)
    h, w = rgb.shape[:2]
    probe = Image.fromarray(rgb)
    if max(h, w) > _MODEL_MAX_SIDE:
        probe.thumbnail((_MODEL_MAX_SIDE, _MODEL_MAX_SIDE), Image.Resampling.BILINEAR)
    if extract_pose(models, probe) is None:
        return None
    mask = person_mask(models, rgb, model=model, threshold=threshold, feather=feather)
    if float(np.mean(mask > 0.5)) < MIN_PERSON_AREA:
        return None
    return mask


def guided_filter(
    guide: Array, src: Array, *, radius: int, eps: float, subsample: int = 1
) -> Array:
    """He et al.'s guided filter: `src` smoothed where `guide` is flat, following `guide`'s
    edges where it is not. guide: float32 [H, W] or [H, W, 3] in 0..1; src: float32 [H, W]
    or [H, W, C]; eps: how large a guide variance counts as an edge (in guide units
    squared). subsample > 1 computes the coefficients at 1/subsample size (the fast
    guided filter), which is what keeps large photos cheap."""
    import cv2

    if src.ndim == 3:
        channels = [
            guided_filter(guide, src[..., c], radius=radius, eps=eps, subsample=subsample)
            for c in range(src.shape[2])
        ]
        return np.stack(channels, axis=-1)
    guide = guide.astype(np.float32)
    src = src.astype(np.float32)
    h, w = src.shape
    g, p = guide, src
    if subsample > 1:
        size = (max(1, w // subsample), max(1, h // subsample))
        g = cv2.resize(guide, size, interpolation=cv2.INTER_AREA)
        p = cv2.resize(src, size, interpolation=cv2.INTER_AREA)
        radius = max(1, round(radius / subsample))
    mean_a, mean_b = _coefficients(g, p, radius, eps)
    if subsample > 1:
        mean_a = cv2.resize(mean_a, (w, h), interpolation=cv2.INTER_LINEAR)
        mean_b = cv2.resize(mean_b, (w, h), interpolation=cv2.INTER_LINEAR)
    if guide.ndim == 2:
        out: Array = mean_a * guide + mean_b
    else:
        out = np.einsum("hwc,hwc->hw", mean_a, guide) + mean_b
    return out.astype(np.float32)


def _coefficients(guide: Array, src: Array, radius: int, eps: float) -> tuple[Array, Array]:
    """The box-averaged linear coefficients (a, b) with src ~ a . guide + b in each window."""
    import cv2

    k = (2 * radius + 1, 2 * radius + 1)

    def box(x: Array) -> Array:
        return np.asarray(cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REFLECT))

    mean_p = box(src)
    if guide.ndim == 2:
        mean_i = box(guide)
        a = (box(guide * src) - mean_i * mean_p) / (box(guide * guide) - mean_i**2 + eps)
        return box(a), box(mean_p - a * mean_i)
    chans = [guide[..., c] for c in range(3)]
    mi = [box(c) for c in chans]
    cov = [box(c * src) - m * mean_p for c, m in zip(chans, mi, strict=True)]

    def var(i: int, j: int) -> Array:
        v: Array = box(chans[i] * chans[j]) - mi[i] * mi[j]
        return v + eps if i == j else v

    s00, s01, s02, s11, s12, s22 = var(0, 0), var(0, 1), var(0, 2), var(1, 1), var(1, 2), var(2, 2)
    # The symmetric 3x3 inverse by cofactors, for every pixel at once.
    i00, i01, i02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    i11, i12, i22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    det = s00 * i00 + s01 * i01 + s02 * i02
    a0 = (i00 * cov[0] + i01 * cov[1] + i02 * cov[2]) / det
    a1 = (i01 * cov[0] + i11 * cov[1] + i12 * cov[2]) / det
    a2 = (i02 * cov[0] + i12 * cov[1] + i22 * cov[2]) / det
    b = mean_p - a0 * mi[0] - a1 * mi[1] - a2 * mi[2]
    return np.stack([box(a0), box(a1), box(a2)], axis=-1), box(b)


def _rgb_array(img: Image.Image | Array) -> Array:
    if isinstance(img, Image.Image):
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2).astype(np.uint8)
    return np.asarray(img[..., :3], dtype=np.uint8)
