"""The model catalog: built-in profiles plus the user's `models.json` (additions, overrides)."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import (
    COLORIZE,
    EDIT,
    ERASE,
    IMAGE_TO_IMAGE,
    IMAGE_TO_VIDEO,
    INPAINT,
    MATTING,
    POSE_TRANSFER,
    TEXT_TO_IMAGE,
    ModelProfile,
)
from pixelforge.models.bundled import (
    BUNDLED,
    BUNDLED_DEFAULTS,
    BUNDLED_KINDS,
    BUNDLED_TASKS,
    check_bundled,
)
from pixelforge.models.onnx_model import KINDS, ONNX, onnx_spec

TASKS = (
    TEXT_TO_IMAGE,
    IMAGE_TO_IMAGE,
    INPAINT,
    EDIT,
    IMAGE_TO_VIDEO,
    POSE_TRANSFER,
    MATTING,
    ERASE,
    COLORIZE,
    *BUNDLED_TASKS,
)
ALL_KINDS = (*KINDS, *BUNDLED_KINDS)
CATALOG_FILE = "models.json"
TINY_DESCRIPTION = "random weights, for tests and offline demos: outputs are noise"
_IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
_REMBG = "https://github.com/danielgatis/rembg/releases/download/v0.0.0"

BUILTIN: tuple[ModelProfile, ...] = (
    ModelProfile(
        id="sd-turbo",
        family="sd-turbo",
        tasks=(TEXT_TO_IMAGE, IMAGE_TO_IMAGE),
        source="stabilityai/sd-turbo",
        variant="fp16",
        description="SD 2.1 distilled for 1-4 steps without guidance; 512x512, fast",
        default_steps=2,
        default_guidance=0.0,
        extra={"taesd": "taesd"},
    ),
    ModelProfile(
        id="sdxl-turbo",
        family="sdxl-turbo",
        tasks=(TEXT_TO_IMAGE, IMAGE_TO_IMAGE),
        source="stabilityai/sdxl-turbo",
        variant="fp16",
        description="SDXL distilled for 1-4 steps without guidance; 512x512",
        default_steps=2,
        default_guidance=0.0,
        extra={"taesd": "taesdxl"},
    ),
    ModelProfile(
        id="sd15",
        family="sd15",
        tasks=(TEXT_TO_IMAGE, IMAGE_TO_IMAGE),
        source="stable-diffusion-v1-5/stable-diffusion-v1-5",
        variant="fp16",
        description="Stable Diffusion 1.5: the classic 512x512 model most LoRAs target",
        default_steps=25,
        extra={"taesd": "taesd"},
    ),
    ModelProfile(
        id="sd-inpainting",
        family="sd15-inpaint",
        tasks=(INPAINT,),
        source="stable-diffusion-v1-5/stable-diffusion-inpainting",
        variant="fp16",
        description="Stable Diffusion 1.5 trained for inpainting (masked regions)",
        default_steps=25,
    ),
    ModelProfile(
        id="svd-xt",
        family="svd",
        tasks=(IMAGE_TO_VIDEO,),
        source="stabilityai/stable-video-diffusion-img2vid-xt",
        variant="fp16",
        description="Stable Video Diffusion XT: 25 frames at 1024x576 from one image",
        default_steps=25,
        default_guidance=3.0,
        default_width=1024,
        default_height=576,
        extra={"num_frames": 25, "fps": 7},
    ),
    ModelProfile(
        id="instruct-pix2pix",
        family="instruct-pix2pix",
        tasks=(EDIT,),
        source="timbrooks/instruct-pix2pix",
        description="edits an image by instruction ('make it winter'); 512x512",
        default_steps=20,
        extra={"image_guidance": 1.5},
    ),
    ModelProfile(
        id="controlnet-openpose",
        family="controlnet",
        tasks=(POSE_TRANSFER,),
        source="lllyasviel/control_v11p_sd15_openpose",
        description="ControlNet 1.1 OpenPose for SD 1.5: a new image in a given pose",
        default_steps=25,
        base_model="sd15",
    ),
    ModelProfile(
        id="flux-schnell",
        family="flux",
        tasks=(TEXT_TO_IMAGE, IMAGE_TO_IMAGE),
        source="black-forest-labs/FLUX.1-schnell",
        description="FLUX.1 [schnell]: 1-4 steps, 1024x1024; about 34 GB of weights",
        default_steps=4,
        default_guidance=0.0,
        default_width=1024,
        default_height=1024,
        dtype_gpu="bfloat16",
    ),
    ModelProfile(
        id="flux-kontext",
        family="flux-kontext",
        tasks=(EDIT,),
        source="black-forest-labs/FLUX.1-Kontext-dev",
        description="FLUX.1 Kontext [dev]: instruction edits at 1024 px (gated: accept the "
        "license on huggingface.co and log in first)",
        default_steps=28,
        default_guidance=2.5,
        default_width=1024,
        default_height=1024,
        dtype_gpu="bfloat16",
    ),
    ModelProfile(
        id="qwen-image-edit",
        family="qwen-image-edit",
        tasks=(EDIT,),
        source="Qwen/Qwen-Image-Edit",
        description="Qwen-Image-Edit: instruction edits with text rendering; about 58 GB",
        default_steps=50,
        default_guidance=4.0,
        default_width=1024,
        default_height=1024,
        dtype_gpu="bfloat16",
    ),
    ModelProfile(
        id="controlnet-colorize",
        family="controlnet",
        tasks=(COLORIZE,),
        source="latentcat/control_v1p_sd15_brightness",
        description="brightness ControlNet for SD 1.5: colourises a greyscale photo "
        "(colorize keeps the photo's own lightness and takes the colours)",
        default_steps=20,
        base_model="sd15",
    ),
    # ONNX models for the photo effects (run with ONNX Runtime, CPU or CUDA).
    ModelProfile(
        id="birefnet",
        family="birefnet",
        kind=ONNX,
        tasks=(MATTING,),
        source="onnx-community/BiRefNet-ONNX",
        description="BiRefNet: high-resolution foreground matting (people, products, "
        "animals) at 1024x1024; about 1 GB",
        default_width=1024,
        default_height=1024,
        extra={
            "files": ["onnx/model.onnx"],
            "input_size": [1024, 1024],
            **_IMAGENET,
            "activation": "sigmoid",  # the export ends in logits
        },
    ),
    ModelProfile(
        id="u2net",
        family="u2net",
        kind=ONNX,
        tasks=(MATTING,),
        source=f"{_REMBG}/u2net.onnx",
        description="U2-Net (rembg's u2net.onnx): salient-object matting at 320x320; 176 MB",
        default_width=320,
        default_height=320,
        extra={
            "files": ["u2net.onnx"],
            "input_size": [320, 320],
            **_IMAGENET,
            "activation": "minmax",  # probabilities, stretched to 0..1 as rembg does
        },
    ),
    ModelProfile(
        id="u2netp",
        family="u2net",
        kind=ONNX,
        tasks=(MATTING,),
        source=f"{_REMBG}/u2netp.onnx",
        description="U2-Net small (rembg's u2netp.onnx): fast matting at 320x320; 4.6 MB",
        default_width=320,
        default_height=320,
        extra={
            "files": ["u2netp.onnx"],
            "input_size": [320, 320],
            **_IMAGENET,
            "activation": "minmax",
        },
    ),
    ModelProfile(
        id="lama",
        family="lama",
        kind=ONNX,
        tasks=(ERASE,),
        source="Carve/LaMa-ONNX",
        description="big-lama (LaMa) as ONNX: fills large removed regions with plausible "
        "structure; image and mask at 512x512; 208 MB",
        extra={
            "files": ["lama_fp32.onnx"],
            "input_size": [512, 512],
            "inputs": [0, 1],  # image (RGB 0..1), mask (1 = fill)
            "output_scale": 255.0,  # the export returns 0..255
        },
    ),
    # Tiny VAE decoders for `fast_decoder=True` (previews, quick drafts); no task of their own.
    ModelProfile(
        id="taesd",
        family="taesd",
        tasks=(),
        source="madebyollin/taesd",
        description="tiny VAE decoder for SD 1.x/2.x: fast, slightly softer decodes",
    ),
    ModelProfile(
        id="taesdxl",
        family="taesd",
        tasks=(),
        source="madebyollin/taesdxl",
        description="tiny VAE decoder for SDXL: fast, slightly softer decodes",
    ),
    # Face, person, pose and NSFW analysis and upscaling: weights inside pip packages.
    *BUNDLED,
)

DEFAULTS: dict[str, str] = {
    TEXT_TO_IMAGE: "sd-turbo",
    IMAGE_TO_IMAGE: "sd-turbo",
    INPAINT: "sd-inpainting",
    EDIT: "instruct-pix2pix",
    IMAGE_TO_VIDEO: "svd-xt",
    POSE_TRANSFER: "controlnet-openpose",
    **BUNDLED_DEFAULTS,
}

_FIELDS = {f.name for f in dataclasses.fields(ModelProfile)}


def profile_to_json(profile: ModelProfile) -> dict[str, Any]:
    data = dataclasses.asdict(profile)
    data["tasks"] = list(profile.tasks)
    return data


def profile_from_json(data: dict[str, Any], *, where: str = CATALOG_FILE) -> ModelProfile:
    unknown = set(data) - _FIELDS
    if unknown:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"{where}: unknown profile field(s) {sorted(unknown)}; known: {sorted(_FIELDS)}",
        )
    try:
        fields = {**data, "tasks": tuple(data.get("tasks", ()))}
        profile = ModelProfile(**fields)
    except TypeError as e:
        raise PixelForgeError(ErrorCode.invalid_parameter, f"{where}: {e}") from None
    check_profile(profile)
    return profile


def check_profile(profile: ModelProfile) -> None:
    """Concise errors for a profile a user wrote by hand."""
    if not profile.id or any(c in profile.id for c in "/\\ ") or profile.id.startswith("."):
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model id {profile.id!r} must be non-empty, without spaces or slashes",
        )
    bad = [t for t in profile.tasks if t not in TASKS]
    if bad:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r}: unknown task(s) {bad}; tasks are {', '.join(TASKS)}",
        )
    if not profile.source:
        raise PixelForgeError(ErrorCode.invalid_parameter, f"model {profile.id!r} has no source")
    if profile.kind not in ALL_KINDS:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r}: kind must be one of {', '.join(ALL_KINDS)}, "
            f"not {profile.kind!r}",
        )
    if profile.kind in BUNDLED_KINDS:
        check_bundled(profile)
    elif set(profile.tasks) & set(BUNDLED_TASKS):
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r}: {', '.join(BUNDLED_TASKS)} are served by the bundled "
            f"kinds ({', '.join(BUNDLED_KINDS)}), not {profile.kind}",
        )
    elif profile.kind == ONNX:
        onnx_spec(profile)
    elif profile.source.startswith(("http://", "https://")):
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r}: a URL source is for single-file (onnx) models; give a "
            "Hugging Face repo id or a local folder",
        )


class Catalog:
    """Built-in profiles overlaid with `<models_dir>/models.json`; re-read when it changes."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)
        self.path = self.models_dir / CATALOG_FILE
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    # -- reading -----------------------------------------------------------------------------

    def _user(self) -> dict[str, Any]:
        """The parsed user file: {"models": {id: fields}, "defaults": {task: id}}."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {"models": {}, "defaults": {}}
        # The inode changes on every rename-into-place, so a same-tick rewrite is still seen.
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        with self._lock:
            if self._cached is not None and self._cached[0] == stamp:
                return self._cached[1]
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as e:
                raise PixelForgeError(
                    ErrorCode.invalid_parameter, f"{self.path} is not valid JSON: {e}"
                ) from None
            if not isinstance(data, dict):
                raise PixelForgeError(ErrorCode.invalid_parameter, f"{self.path}: not an object")
            data.setdefault("models", {})
            data.setdefault("defaults", {})
            self._cached = (stamp, data)
            return data

    def _profiles(self) -> dict[str, ModelProfile]:
        profiles = {p.id: p for p in BUILTIN}
        for model_id, fields in self._user()["models"].items():
            profiles[model_id] = profile_from_json(
                {**fields, "id": model_id}, where=f"{self.path} [{model_id}]"
            )
        return profiles

    def list_profiles(self) -> list[ModelProfile]:
        """Every profile: built-ins first (in their order), then the user's, by id."""
        profiles = self._profiles()
        builtin_ids = [p.id for p in BUILTIN]
        user_ids = sorted(set(profiles) - set(builtin_ids))
        return [profiles[i] for i in builtin_ids + user_ids]

    def get(self, model_id: str) -> ModelProfile | None:
        return self._profiles().get(model_id)

    def is_builtin(self, model_id: str) -> bool:
        return any(p.id == model_id for p in BUILTIN)

    def defaults(self) -> dict[str, str]:
        """Task -> default model id (the user file's choices over the built-in ones)."""
        return {**DEFAULTS, **self._user()["defaults"]}

    def default_for(self, task: str) -> str:
        try:
            return self.defaults()[task]
        except KeyError:
            if task in TASKS:
                able = [p.id for p in self.list_profiles() if task in p.tasks]
                msg = f"no default model for {task}; name one of: {', '.join(able) or 'none'}"
            else:
                msg = f"unknown task {task!r}; tasks are {', '.join(TASKS)}"
            raise PixelForgeError(ErrorCode.invalid_parameter, msg) from None

    # -- editing (the user file only) --------------------------------------------------------

    def add_profile(self, profile: ModelProfile) -> None:
        """Add or replace a profile in the user file (a built-in id is overridden, not lost)."""
        check_profile(profile)
        data = self._user_copy()
        fields = profile_to_json(profile)
        del fields["id"]
        data["models"][profile.id] = fields
        self._write(data)

    def remove_profile(self, model_id: str) -> None:
        """Remove a user profile; removing an override of a built-in restores the built-in."""
        data = self._user_copy()
        if model_id not in data["models"]:
            what = "a built-in model" if self.is_builtin(model_id) else "not in the catalog"
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"model {model_id!r} is {what}; only models added to {self.path} can be removed",
            )
        del data["models"][model_id]
        data["defaults"] = {t: m for t, m in data["defaults"].items() if m != model_id}
        self._write(data)

    def set_default(self, task: str, model_id: str) -> None:
        """Make `model_id` the default for `task` (it must be able to serve it)."""
        profile = self.get(model_id)
        if profile is None or task not in profile.tasks:
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"model {model_id!r} cannot be the default for {task!r}"
                + (f"; it serves: {', '.join(profile.tasks) or 'no task'}" if profile else ""),
            )
        data = self._user_copy()
        data["defaults"][task] = model_id
        self._write(data)

    def _user_copy(self) -> dict[str, Any]:
        data = self._user()
        return {**data, "models": dict(data["models"]), "defaults": dict(data["defaults"])}

    def _write(self, data: dict[str, Any]) -> None:
        # Write-then-rename, so a server reading the file never sees half of it.
        self.models_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.models_dir, prefix=".models-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, self.path)
        with self._lock:
            self._cached = None
