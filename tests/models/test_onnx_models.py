"""ONNX profiles through the model manager: catalog, load, cache, missing files, pull."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pixelforge.cli import main
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import ERASE, INPAINT, MATTING, ModelProfile
from pixelforge.models.catalog import BUILTIN, Catalog
from pixelforge.models.download import is_available, pull
from pixelforge.models.manager import ModelManager
from pixelforge.models.onnx_model import ONNX, OnnxModel, onnx_spec
from pixelforge.models.tiny_onnx import TINY_ONNX_PROFILES, create_tiny_onnx_models


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    create_tiny_onnx_models(tmp_path / "models")
    return tmp_path / "models"


def manager_for(models_dir: Path, **kw: int) -> ModelManager:
    return ModelManager(models_dir, device="cpu", threads=1, **kw)


def test_builtin_onnx_profiles_declare_a_valid_layout() -> None:
    onnx = {p.id: p for p in BUILTIN if p.kind == ONNX}
    assert set(onnx) >= {"birefnet", "u2net", "u2netp", "lama"}
    assert onnx["birefnet"].tasks == (MATTING,) and onnx["lama"].tasks == (ERASE,)
    assert onnx_spec(onnx["birefnet"]).input_size == (1024, 1024)
    assert onnx_spec(onnx["birefnet"]).activation == "sigmoid"
    assert onnx_spec(onnx["u2net"]).input_size == (320, 320)
    lama = onnx_spec(onnx["lama"])
    assert (lama.input_size, lama.output_scale, lama.files) == (
        (512, 512),
        255.0,
        ("lama_fp32.onnx",),
    )


def test_tiny_onnx_profiles_round_trip_through_models_json(models_dir: Path) -> None:
    catalog = Catalog(models_dir)
    for profile in TINY_ONNX_PROFILES:
        assert catalog.get(profile.id) == profile
        assert is_available(profile, models_dir)
    stored = json.loads((models_dir / "models.json").read_text())["models"]["tiny-matting"]
    assert stored["kind"] == "onnx" and stored["extra"]["input_size"] == [64, 64]


def test_load_runs_and_stays_resident_in_the_cache(models_dir: Path) -> None:
    manager = manager_for(models_dir)
    image = np.full((80, 96, 3), 20, np.uint8)
    image[20:60, 30:70] = 240
    with manager.load("tiny-matting", task=MATTING) as net:
        assert isinstance(net, OnnxModel) and net.providers == ["CPUExecutionProvider"]
        prob = net.activate(net.run(net.image_tensor(image)))
        assert prob.shape == (64, 64) and prob.dtype == np.float32
        # The toy weights call bright pixels foreground: the square, at the input's scale.
        assert prob[32, 32] > 0.9 and prob[2, 2] < 0.2
        assert 0.18 < float(np.mean(prob > 0.5)) < 0.24  # 40x40 of 96x80
    with manager.load("tiny-matting", task=MATTING) as again:
        assert again is net
    assert manager.cache.loads == 1
    size = (models_dir / "tiny-matting" / "model.onnx").stat().st_size
    resident = {r["id"]: r for r in manager.cache.resident()}
    assert resident["tiny-matting"]["bytes"] == size and resident["tiny-matting"]["device"] == "cpu"

    with manager.load("tiny-lama", task=ERASE) as lama:
        out = lama.run(np.random.rand(1, 3, 64, 64), np.ones((1, 1, 64, 64)))
        assert out.shape == (1, 3, 64, 64) and out.min() >= 0 and out.max() <= 255


def test_the_budget_evicts_idle_onnx_models(models_dir: Path) -> None:
    size = (models_dir / "tiny-lama" / "model.onnx").stat().st_size
    manager = manager_for(models_dir, cpu_budget_bytes=size + 10)
    with manager.load("tiny-matting", task=MATTING):
        pass
    with manager.load("tiny-lama", task=ERASE):
        assert "tiny-lama" in manager.cache and "tiny-matting" not in manager.cache


def test_wrong_task_missing_files_and_a_mismatched_layout(models_dir: Path) -> None:
    manager = manager_for(models_dir)
    with pytest.raises(PixelForgeError) as e:
        manager.profile("tiny-matting", task=ERASE)
    assert e.value.code == ErrorCode.invalid_parameter and "tiny-lama" in e.value.message
    for model_id, task in (("lama", ERASE), ("birefnet", MATTING), ("u2netp", MATTING)):
        with pytest.raises(PixelForgeError) as e:
            manager.profile(model_id, task=task)
        assert e.value.code == ErrorCode.model_unavailable
        assert f"pixelforge models pull {model_id}" in e.value.message
    with pytest.raises(PixelForgeError) as e:
        manager.profile(None, task=ERASE)
    assert "no default model for erase" in e.value.message and "lama" in e.value.message

    tiny = Catalog(models_dir).get("tiny-matting")
    assert tiny is not None
    wrong = dataclasses.replace(tiny, id="wrong", extra={**tiny.extra, "inputs": ["pixels"]})
    wrong = dataclasses.replace(wrong, source=str(models_dir / "tiny-matting"))
    Catalog(models_dir).add_profile(wrong)
    with pytest.raises(PixelForgeError) as e, manager.load("wrong", task=MATTING):
        pass
    assert e.value.code == ErrorCode.model_unavailable
    assert "has no input 'pixels'" in e.value.message


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"extra": {"input_size": [8, 8]}}, "extra.files"),
        ({"extra": {"files": ["m.onnx"]}}, "extra.input_size"),
        ({"extra": {"files": ["../m.onnx"], "input_size": [8, 8]}}, "extra.files"),
        ({"extra": {"files": ["m.onnx"], "input_size": [8, 8], "activation": "x"}}, "sigmoid"),
        ({"extra": {"files": ["m.onnx"], "input_size": [8, 8], "std": [1, 0, 1]}}, "std"),
        ({"extra": {"files": ["m.onnx"], "input_size": [8, 8], "size": 3}}, "not an ONNX field"),
        ({"kind": "tflite"}, "kind must be one of diffusers, onnx"),
        ({"kind": "diffusers", "source": "https://example.com/m.onnx"}, "URL source"),
    ],
)
def test_malformed_onnx_profiles_are_refused(
    tmp_path: Path, fields: dict[str, object], words: str
) -> None:
    base = {"family": "x", "kind": "onnx", "tasks": [MATTING], "source": "org/m"}
    (tmp_path / "models.json").write_text(json.dumps({"models": {"m": {**base, **fields}}}))
    with pytest.raises(PixelForgeError) as e:
        Catalog(tmp_path).list_profiles()
    assert e.value.code == ErrorCode.invalid_parameter and words in e.value.message


@pytest.fixture
def file_server(models_dir: Path) -> Iterator[str]:
    """A real HTTP server on loopback serving the tiny models' folder."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(models_dir))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_pull_from_a_url_then_load(models_dir: Path, file_server: str, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    tiny = Catalog(models_dir).get("tiny-matting")
    assert tiny is not None
    mine = dataclasses.replace(
        tiny,
        id="web-matting",
        source=f"{file_server}/tiny-matting/model.onnx",
        extra={**tiny.extra, "files": ["web.onnx"]},
    )
    Catalog(target).add_profile(mine)
    assert not is_available(mine, target)
    assert pull(mine, target, progress=False) == target / "web-matting"
    assert (target / "web-matting" / "web.onnx").read_bytes() == (
        models_dir / "tiny-matting" / "model.onnx"
    ).read_bytes()
    assert is_available(mine, target)
    with manager_for(target).load("web-matting", task=MATTING) as net:
        assert net.run(np.zeros((1, 3, 64, 64))).shape == (1, 1, 64, 64)

    gone = dataclasses.replace(mine, id="gone", source=f"{file_server}/nothing.onnx")
    with pytest.raises(PixelForgeError) as e:
        pull(gone, target, progress=False)
    assert e.value.code == ErrorCode.model_unavailable and "nothing.onnx" in e.value.message
    assert not list((target / "gone").iterdir())  # no half-written file left behind


def test_models_pull_command_downloads_an_onnx_profile(
    models_dir: Path, file_server: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    profile = ModelProfile(
        id="web-lama",
        family="lama",
        kind=ONNX,
        tasks=(ERASE,),
        source=f"{file_server}/tiny-lama/model.onnx",
        extra={"files": ["lama.onnx"], "input_size": [64, 64], "output_scale": 255.0},
    )
    Catalog(data / "models").add_profile(profile)
    result = CliRunner().invoke(main, ["models", "pull", "web-lama", "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert (data / "models" / "web-lama" / "lama.onnx").is_file()
    manager = manager_for(data / "models")
    assert manager.profile("web-lama", task=ERASE) == profile
    with pytest.raises(PixelForgeError) as e:
        manager.profile("web-lama", task=INPAINT)
    assert e.value.code == ErrorCode.invalid_parameter
