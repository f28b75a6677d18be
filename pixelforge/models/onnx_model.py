"""ONNX models (matting, LaMa-style fill): how a profile declares one, and a loaded session."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import ModelProfile

log = logging.getLogger(__name__)

Array = np.ndarray[Any, Any]
ONNX = "onnx"
DIFFUSERS = "diffusers"
KINDS = (DIFFUSERS, ONNX)
ACTIVATIONS = ("none", "sigmoid", "minmax")
# How a profile's `extra` describes its network (see OnnxSpec).
SPEC_KEYS = frozenset(
    {"files", "input_size", "mean", "std", "inputs", "output", "activation", "output_scale"}
)


@dataclass(frozen=True)
class OnnxSpec:
    """The layout of an ONNX network, read from a profile's `extra`.

    files: paths inside the model folder (or repo); the first is the graph, the others its
    external data. input_size: (width, height) the network takes. Images go in as NCHW
    float32, RGB scaled to 0..1, then (x - mean) / std. inputs: the graph's input names or
    positions in the order the pipeline feeds them (image, then mask); empty = the graph's
    own order. output: name or position of the output read. activation: applied to a map
    output (sigmoid for logits, minmax to stretch to 0..1). output_scale: the output's value
    for full intensity (255 for exports that end in x 255)."""

    files: tuple[str, ...]
    input_size: tuple[int, int]
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    inputs: tuple[str | int, ...] = ()
    output: str | int = 0
    activation: str = "none"
    output_scale: float = 1.0


def onnx_spec(profile: ModelProfile) -> OnnxSpec:
    """The profile's OnnxSpec; invalid_parameter naming the field when it is malformed."""
    extra = profile.extra
    where = f"model {profile.id!r}: extra"

    def bad(what: str) -> PixelForgeError:
        return PixelForgeError(ErrorCode.invalid_parameter, f"{where}.{what}")

    unknown = set(extra) - SPEC_KEYS
    if unknown:
        raise bad(f"{sorted(unknown)[0]} is not an ONNX field; fields: {sorted(SPEC_KEYS)}")
    files = extra.get("files")
    if (
        not isinstance(files, list)
        or not files
        or not all(isinstance(f, str) and f and ".." not in f.split("/") for f in files)
        or any(f.startswith("/") for f in files)
    ):
        raise bad('files must list the model\'s file(s) inside its folder, e.g. ["model.onnx"]')
    size: Any = extra.get("input_size")
    if not _ints(size, 2) or min(size) < 1:
        raise bad("input_size must be [width, height], e.g. [1024, 1024]")
    mean, std = extra.get("mean", [0.0] * 3), extra.get("std", [1.0] * 3)
    if not _numbers(mean, 3) or not _numbers(std, 3) or min(std) <= 0:
        raise bad("mean and std must be 3 numbers each (std > 0), e.g. [0.485, 0.456, 0.406]")
    inputs = extra.get("inputs", [])
    if not isinstance(inputs, list) or not all(_name_or_index(i) for i in inputs):
        raise bad('inputs must list input names or positions, e.g. ["image", "mask"]')
    output = extra.get("output", 0)
    if not _name_or_index(output):
        raise bad("output must be an output name or position")
    activation = extra.get("activation", "none")
    if activation not in ACTIVATIONS:
        raise bad(f"activation must be one of {', '.join(ACTIVATIONS)}")
    scale = extra.get("output_scale", 1.0)
    if not _numbers([scale], 1) or scale <= 0:
        raise bad("output_scale must be a positive number")
    return OnnxSpec(
        files=tuple(files),
        input_size=(int(size[0]), int(size[1])),
        mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        std=(float(std[0]), float(std[1]), float(std[2])),
        inputs=tuple(inputs),
        output=output,
        activation=activation,
        output_scale=float(scale),
    )


def _ints(value: object, n: int) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == n
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )


def _numbers(value: object, n: int) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == n
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def _name_or_index(value: object) -> bool:
    return (isinstance(value, str) and bool(value)) or (
        isinstance(value, int) and not isinstance(value, bool) and value >= 0
    )


class OnnxModel:
    """A loaded ONNX Runtime session with its spec. `run` is safe from many threads at once
    (ONNX Runtime sessions are)."""

    def __init__(self, session: Any, spec: OnnxSpec, *, model_id: str, nbytes: int) -> None:
        self.session = session
        self.spec = spec
        self.model_id = model_id
        self.resident_bytes = nbytes  # what the cache counts against its budget
        graph_inputs = session.get_inputs()
        self._outputs = [o.name for o in session.get_outputs()]
        wanted = spec.inputs or tuple(range(len(graph_inputs)))
        by_name = {i.name: i for i in graph_inputs}
        self._inputs: list[tuple[str, Any]] = []
        for ref in wanted:
            if isinstance(ref, int):
                if ref >= len(graph_inputs):
                    raise self._mismatch(f"it has {len(graph_inputs)} input(s), not {ref + 1}")
                node = graph_inputs[ref]
            elif ref in by_name:
                node = by_name[ref]
            else:
                raise self._mismatch(f"it has no input {ref!r} (inputs: {sorted(by_name)})")
            dtype = np.float16 if node.type == "tensor(float16)" else np.float32
            self._inputs.append((node.name, dtype))
        out = spec.output
        if (isinstance(out, int) and out >= len(self._outputs)) or (
            isinstance(out, str) and out not in self._outputs
        ):
            raise self._mismatch(f"it has no output {out!r} (outputs: {self._outputs})")
        self._output = out if isinstance(out, str) else self._outputs[out]

    def _mismatch(self, what: str) -> PixelForgeError:
        return PixelForgeError(
            ErrorCode.model_unavailable,
            f"model {self.model_id!r}: the ONNX file does not match its profile: {what}",
        )

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def run(self, *arrays: Array) -> Array:
        """Feed `arrays` to the spec's inputs in order; the spec's output as float32."""
        if len(arrays) != len(self._inputs):
            raise ValueError(f"{self.model_id} takes {len(self._inputs)} input(s)")
        feeds = {
            name: np.ascontiguousarray(a, dtype=dtype)
            for (name, dtype), a in zip(self._inputs, arrays, strict=True)
        }
        (result,) = self.session.run([self._output], feeds)
        return np.asarray(result, dtype=np.float32)

    def image_tensor(self, rgb: Array) -> Array:
        """RGB uint8 [H, W, 3] -> [1, 3, h, w] float32 at the input size, normalised."""
        import cv2

        w, h = self.spec.input_size
        small = rgb
        if rgb.shape[:2] != (h, w):
            shrink = rgb.shape[0] > h and rgb.shape[1] > w
            interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            small = cv2.resize(rgb, (w, h), interpolation=interpolation)
        x: Array = small.astype(np.float32) / 255.0
        x = (x - np.asarray(self.spec.mean, np.float32)) / np.asarray(self.spec.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def activate(self, raw: Array) -> Array:
        """A single-channel output [..., h, w] as a float32 [h, w] map in 0..1."""
        m: Array = raw.reshape(raw.shape[-2:]).astype(np.float32) / self.spec.output_scale
        if self.spec.activation == "sigmoid":
            m = 1.0 / (1.0 + np.exp(-np.clip(m, -60.0, 60.0)))
        elif self.spec.activation == "minmax":
            lo, hi = float(m.min()), float(m.max())
            m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        out: Array = np.clip(m, 0.0, 1.0).astype(np.float32)
        return out


def load_onnx(profile: ModelProfile, path: Path, *, device: str, threads: int) -> OnnxModel:
    """An ONNX Runtime session for the profile's files in `path`: on CUDA when `device` is a
    CUDA device and the installed onnxruntime has the CUDA provider, else on the CPU."""
    import onnxruntime as ort

    spec = onnx_spec(profile)
    graph = path / spec.files[0]
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT warns about harmless graph details
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    providers: list[Any] = ["CPUExecutionProvider"]
    if onnx_device(device) != "cpu":
        index = int(device.split(":")[1]) if ":" in device else 0
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
    log.info("loading ONNX model %s from %s (%s)", profile.id, graph, providers[0])
    try:
        session = ort.InferenceSession(str(graph), sess_options=options, providers=providers)
    except Exception as e:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
        raise PixelForgeError(
            ErrorCode.model_unavailable,
            f"model {profile.id!r} could not be loaded from {graph}: {e}",
        ) from e
    nbytes = sum((path / f).stat().st_size for f in spec.files)
    return OnnxModel(session, spec, model_id=profile.id, nbytes=nbytes)


def onnx_device(device: str) -> str:
    """Where an ONNX model runs for the manager's `device`: that CUDA device when the
    installed onnxruntime can use it, else the CPU (MPS has no ONNX Runtime provider here)."""
    if not device.startswith("cuda"):
        return "cpu"
    import onnxruntime as ort

    return device if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"
