"""Which repo files a pull takes, when a folder counts as complete, and offline errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import TEXT_TO_IMAGE, ModelProfile
from pixelforge.models.download import is_available, is_complete, model_path, pull, select_files

SD_TURBO_FILES = [
    ".gitattributes",
    "README.md",
    "model_index.json",
    "sd_turbo.safetensors",  # single-file checkpoint: not for diffusers
    "scheduler/scheduler_config.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "text_encoder/model.fp16.safetensors",
    "tokenizer/merges.txt",
    "tokenizer/vocab.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.fp16.safetensors",
    "unet/diffusion_pytorch_model.bin",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",  # no fp16 here: falls back
    "vae/diffusion_pytorch_model.bin",
    "safety_checker/model.safetensors",
    "transformer/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
    "transformer/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
    "transformer/diffusion_pytorch_model.safetensors.index.fp16.json",
]


def test_select_files_takes_one_set_of_weights_per_folder() -> None:
    chosen = select_files(SD_TURBO_FILES, "fp16")
    assert chosen == sorted(
        [
            "model_index.json",
            "scheduler/scheduler_config.json",
            "text_encoder/config.json",
            "text_encoder/model.fp16.safetensors",
            "tokenizer/merges.txt",
            "tokenizer/vocab.json",
            "unet/config.json",
            "unet/diffusion_pytorch_model.fp16.safetensors",
            "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors",
            "transformer/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
            "transformer/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
            "transformer/diffusion_pytorch_model.safetensors.index.fp16.json",
        ]
    )
    plain = select_files(SD_TURBO_FILES, None)
    assert "unet/diffusion_pytorch_model.safetensors" in plain
    assert not any(".fp16." in f and f.endswith(".safetensors") for f in plain)
    assert not any(f.endswith(".bin") for f in plain)


def write_pipeline(root: Path, components: dict[str, list[str | None]]) -> None:
    root.mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps({"_class_name": "X", **components}))
    for name, (lib, _) in components.items():
        if lib is not None and name != "safety_checker":
            (root / name).mkdir()


def test_completeness(tmp_path: Path) -> None:
    assert not is_complete(tmp_path / "nothing")
    good = tmp_path / "good"
    write_pipeline(
        good,
        {
            "unet": ["diffusers", "UNet2DConditionModel"],
            "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
            "feature_extractor": [None, None],
        },
    )
    assert is_complete(good)
    (good / "unet").rmdir()
    assert not is_complete(good)
    (good / "unet").mkdir()
    partial = good / ".cache" / "huggingface" / "download" / "unet"
    partial.mkdir(parents=True)
    (partial / "abc.incomplete").write_bytes(b"")
    assert not is_complete(good)
    single = tmp_path / "controlnet"
    single.mkdir()
    (single / "config.json").write_text("{}")
    assert is_complete(single)


def test_model_path_for_repos_and_folders(tmp_path: Path) -> None:
    hub = ModelProfile(id="m", family="f", tasks=(TEXT_TO_IMAGE,), source="org/m")
    assert model_path(hub, tmp_path) == tmp_path / "m"
    rel = ModelProfile(id="m", family="f", tasks=(TEXT_TO_IMAGE,), source="./sub/m")
    assert model_path(rel, tmp_path) == (tmp_path / "sub" / "m").resolve()
    assert not is_available(rel, tmp_path)
    with pytest.raises(PixelForgeError) as e:
        pull(rel, tmp_path)
    assert e.value.code == ErrorCode.invalid_parameter and "nothing to pull" in e.value.message


def test_pull_without_the_hub_is_model_unavailable(tmp_path: Path) -> None:
    # A repo that does not exist: offline -> connection error; online -> not found. Never
    # a real download in either case.
    ghost = ModelProfile(
        id="ghost", family="f", tasks=(TEXT_TO_IMAGE,), source="pixelforge-tests/no-such-model"
    )
    with pytest.raises(PixelForgeError) as e:
        pull(ghost, tmp_path, progress=False)
    assert e.value.code == ErrorCode.model_unavailable
    assert "pixelforge-tests/no-such-model" in e.value.message
    assert not is_available(ghost, tmp_path)
