"""Tiny ONNX models with the layouts of the real ones (BiRefNet-style matting, LaMa-style
fill), for tests and offline demos. Written as ONNX protobuf directly, so neither the `onnx`
package nor an exporter is needed."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

from pixelforge.models.base import ERASE, MATTING, ModelProfile
from pixelforge.models.catalog import TINY_DESCRIPTION, Catalog
from pixelforge.models.onnx_model import ONNX

SIDE = 64  # the tiny networks' fixed input size
_FLOAT = 1  # TensorProto.FLOAT
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7  # AttributeProto.AttributeType
_IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def _profile(model_id: str, task: str, extra: dict[str, Any]) -> ModelProfile:
    return ModelProfile(
        id=model_id,
        family=model_id,
        kind=ONNX,
        tasks=(task,),
        source=f"./{model_id}",
        description=TINY_DESCRIPTION,
        default_width=SIDE,
        default_height=SIDE,
        tiny=True,
        extra={"files": ["model.onnx"], "input_size": [SIDE, SIDE], **extra},
    )


TINY_ONNX_PROFILES: tuple[ModelProfile, ...] = (
    # Toy weights rather than noise: bright pixels are foreground, so a test can check that
    # the matte lands where it should after the resizes, normalisation and sigmoid.
    _profile(
        "tiny-matting",
        MATTING,
        {**_IMAGENET, "inputs": ["input_image"], "output": "output_image", "activation": "sigmoid"},
    ),
    _profile(
        "tiny-lama", ERASE, {"inputs": ["image", "mask"], "output": "output", "output_scale": 255.0}
    ),
)


def create_tiny_onnx_models(models_dir: Path, *, register: bool = True) -> list[ModelProfile]:
    """Write tiny-matting and tiny-lama under `models_dir` and, by default, add their
    profiles to the user catalog there. Deterministic: same bytes on every run."""
    models_dir = Path(models_dir)
    builders = {"tiny-matting": _matting_graph, "tiny-lama": _lama_graph}
    for profile in TINY_ONNX_PROFILES:
        target = models_dir / profile.id / "model.onnx"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(".model.onnx.tmp")
        tmp.write_bytes(builders[profile.id]())
        tmp.replace(target)
    if register:
        catalog = Catalog(models_dir)
        for profile in TINY_ONNX_PROFILES:
            catalog.add_profile(profile)
    return list(TINY_ONNX_PROFILES)


def _matting_graph() -> bytes:
    """input_image [1,3,S,S] -> Conv3x3(4) -> Relu -> Conv1x1(1) -> output_image logits."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.02, (4, 3, 3, 3)).astype(np.float32)
    w1[0] = 0.0
    w1[0, :, 1, 1] = 1.0 / 3.0  # channel 0: the normalised brightness
    w2 = np.concatenate([[4.0], rng.normal(0, 0.1, 3)]).astype(np.float32).reshape(1, 4, 1, 1)
    nodes = [
        _node("Conv", ["input_image", "w1", "b1"], ["h"], kernel_shape=[3, 3], pads=[1] * 4),
        _node("Relu", ["h"], ["r"]),
        _node("Conv", ["r", "w2", "b2"], ["output_image"], kernel_shape=[1, 1]),
    ]
    weights = {
        "w1": w1,
        "b1": np.zeros(4, np.float32),
        "w2": w2,
        "b2": np.array([-2.0], np.float32),
    }
    return _model(
        nodes,
        weights,
        inputs={"input_image": [1, 3, SIDE, SIDE]},
        outputs={"output_image": [1, 1, SIDE, SIDE]},
    )


def _lama_graph() -> bytes:
    """image [1,3,S,S] + mask [1,1,S,S] -> Concat -> Conv3x3(8) -> Relu -> Conv1x1(3) ->
    Sigmoid x 255 -> output [1,3,S,S] (0..255, like the LaMa export)."""
    rng = np.random.default_rng(1)
    nodes = [
        _node("Concat", ["image", "mask"], ["x"], axis=1),
        _node("Conv", ["x", "w1", "b1"], ["h"], kernel_shape=[3, 3], pads=[1] * 4),
        _node("Relu", ["h"], ["r"]),
        _node("Conv", ["r", "w2", "b2"], ["y"], kernel_shape=[1, 1]),
        _node("Sigmoid", ["y"], ["s"]),
        _node("Mul", ["s", "scale"], ["output"]),
    ]
    weights = {
        "w1": rng.normal(0, 0.5, (8, 4, 3, 3)).astype(np.float32),
        "b1": np.zeros(8, np.float32),
        "w2": rng.normal(0, 0.5, (3, 8, 1, 1)).astype(np.float32),
        "b2": np.zeros(3, np.float32),
        "scale": np.array(255.0, np.float32),
    }
    return _model(
        nodes,
        weights,
        inputs={"image": [1, 3, SIDE, SIDE], "mask": [1, 1, SIDE, SIDE]},
        outputs={"output": [1, 3, SIDE, SIDE]},
    )


# -- the protobuf wire format, just what an ONNX ModelProto needs ----------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _int(field: int, n: int) -> bytes:
    return _varint(field << 3) + _varint(n)


def _bytes(field: int, data: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _str(field: int, text: str) -> bytes:
    return _bytes(field, text.encode())


def _attribute(name: str, value: int | float | list[int]) -> bytes:
    head = _str(1, name)
    if isinstance(value, list):
        return head + b"".join(_int(8, v) for v in value) + _int(20, _ATTR_INTS)
    if isinstance(value, float):
        return head + _varint(2 << 3 | 5) + struct.pack("<f", value) + _int(20, _ATTR_FLOAT)
    return head + _int(3, value) + _int(20, _ATTR_INT)


def _node(
    op: str, inputs: list[str], outputs: list[str], **attrs: int | float | list[int]
) -> bytes:
    body = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
    body += _str(3, f"{op.lower()}_{outputs[0]}") + _str(4, op)
    return body + b"".join(_bytes(5, _attribute(k, v)) for k, v in attrs.items())


def _tensor(name: str, array: np.ndarray[Any, Any]) -> bytes:
    dims = b"".join(_int(1, d) for d in array.shape)
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return dims + _int(2, _FLOAT) + _str(8, name) + _bytes(9, data)


def _value_info(name: str, shape: list[int]) -> bytes:
    dims = b"".join(_bytes(1, _int(1, d)) for d in shape)
    tensor_type = _int(1, _FLOAT) + _bytes(2, dims)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


def _model(
    nodes: list[bytes],
    weights: dict[str, np.ndarray[Any, Any]],
    *,
    inputs: dict[str, list[int]],
    outputs: dict[str, list[int]],
) -> bytes:
    graph = b"".join(_bytes(1, n) for n in nodes) + _str(2, "tiny")
    graph += b"".join(_bytes(5, _tensor(k, v)) for k, v in weights.items())
    graph += b"".join(_bytes(11, _value_info(k, s)) for k, s in inputs.items())
    graph += b"".join(_bytes(12, _value_info(k, s)) for k, s in outputs.items())
    opset = _str(1, "") + _int(2, 13)
    return _int(1, 8) + _str(2, "pixelforge") + _bytes(7, graph) + _bytes(8, opset)
