"""ModelManager over the tiny models: every task runs, seeds reproduce, errors guide."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models import manager as manager_module
from pixelforge.models.base import (
    EDIT,
    IMAGE_TO_IMAGE,
    IMAGE_TO_VIDEO,
    INPAINT,
    POSE_TRANSFER,
    TEXT_TO_IMAGE,
    ModelProfile,
)
from pixelforge.models.catalog import Catalog
from pixelforge.models.manager import ModelManager
from tests.conftest import TinyModels

PHOTO = Image.new("RGB", (64, 64), (200, 120, 40))
MASK = Image.new("L", (64, 64), 0)
MASK.paste(255, (16, 16, 48, 48))


def generator(seed: int) -> Any:
    import torch

    return torch.Generator("cpu").manual_seed(seed)


CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    TEXT_TO_IMAGE: ("tiny-sd", {"prompt": "a cat", "width": 48, "height": 32}),
    IMAGE_TO_IMAGE: ("tiny-sd", {"prompt": "a cat", "image": PHOTO, "strength": 0.6}),
    INPAINT: ("tiny-sd-inpaint", {"prompt": "a cat", "image": PHOTO, "mask_image": MASK}),
    EDIT: ("tiny-pix2pix", {"prompt": "make it winter", "image": PHOTO}),
    IMAGE_TO_VIDEO: ("tiny-svd", {"image": PHOTO.resize((32, 32)), "width": 32, "height": 32}),
    POSE_TRANSFER: ("tiny-controlnet-openpose", {"prompt": "a dancer", "image": PHOTO}),
}


def run(manager: ModelManager, task: str, seed: int) -> tuple[list[np.ndarray], float]:
    """Two steps of `task`; the output frames as arrays and the seconds the call took."""
    model_id, kwargs = CALLS[task]
    with manager.load(model_id, task=task) as pipe:
        start = time.perf_counter()
        out = pipe(**kwargs, num_inference_steps=2, generator=generator(seed))
        seconds = time.perf_counter() - start
    images = out.frames[0] if task == IMAGE_TO_VIDEO else out.images
    return [np.asarray(img) for img in images], seconds


@pytest.mark.parametrize("task", list(CALLS))
def test_each_task_runs_two_steps_at_the_right_size(manager: ModelManager, task: str) -> None:
    run(manager, task, seed=1)  # warm-up: first calls pay for lazy imports
    frames, seconds = run(manager, task, seed=1)
    expected = {TEXT_TO_IMAGE: (32, 48, 3), IMAGE_TO_VIDEO: (32, 32, 3)}.get(task, (64, 64, 3))
    assert [f.shape for f in frames] == [expected] * (2 if task == IMAGE_TO_VIDEO else 1)
    assert seconds < 5, f"{task}: 2 steps took {seconds:.2f} s"


@pytest.mark.parametrize("task", [TEXT_TO_IMAGE, POSE_TRANSFER, IMAGE_TO_VIDEO])
def test_same_seed_same_pixels_other_seed_other_pixels(manager: ModelManager, task: str) -> None:
    a, _ = run(manager, task, seed=7)
    b, _ = run(manager, task, seed=7)
    c, _ = run(manager, task, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, z) for x, z in zip(a, c, strict=True))


def test_tasks_share_the_resident_weights(manager: ModelManager) -> None:
    with (
        manager.load("tiny-sd", task=TEXT_TO_IMAGE) as t2i,
        manager.load("tiny-sd", task=IMAGE_TO_IMAGE) as i2i,
        manager.load("tiny-controlnet-openpose", task=POSE_TRANSFER) as pose,
    ):
        assert type(t2i).__name__ == "StableDiffusionPipeline"
        assert type(i2i).__name__ == "StableDiffusionImg2ImgPipeline"
        assert type(pose).__name__ == "StableDiffusionControlNetPipeline"
        assert t2i.unet is i2i.unet is pose.unet
        assert t2i.scheduler is not i2i.scheduler  # per-call scheduler state
        resident = {r["id"]: r for r in manager.cache.resident()}
        assert resident["tiny-sd"]["in_use"] and resident["tiny-controlnet-openpose"]["in_use"]
        assert resident["tiny-sd"]["dtype"] == "float32"
    assert not any(r["in_use"] for r in manager.cache.resident())
    assert str(t2i.unet.dtype) == "torch.float32"


def test_two_threads_loading_one_model_load_it_once(tiny: TinyModels) -> None:
    fresh = ModelManager(tiny.dir, device="cpu", threads=1)
    ids: list[int] = []

    def job() -> None:
        with fresh.load("tiny-sd", task=TEXT_TO_IMAGE) as pipe:
            ids.append(id(pipe.unet))

    threads = [threading.Thread(target=job) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fresh.cache.loads == 1 and len(set(ids)) == 1 and len(ids) == 3


def test_budget_evicts_idle_models_not_one_in_use(tiny: TinyModels) -> None:
    # Each tiny SD pipeline is about 8.2 MB: room for two.
    small = ModelManager(tiny.dir, device="cpu", threads=1, cpu_budget_bytes=18 * 2**20)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with small.load("tiny-sd", task=TEXT_TO_IMAGE):
            holding.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert holding.wait(30)
        with small.load("tiny-pix2pix", task=EDIT):
            pass
        with small.load("tiny-sd-inpaint", task=INPAINT):
            pass
        assert [r["id"] for r in small.cache.resident()] == ["tiny-sd-inpaint", "tiny-sd"]
    finally:
        release.set()
        t.join()


def test_large_models_get_attention_slicing_and_vae_tiling(tiny: TinyModels) -> None:
    tight = ModelManager(tiny.dir, device="cpu", threads=1, cpu_budget_bytes=12 * 2**20)
    with tight.load("tiny-sd", task=TEXT_TO_IMAGE) as pipe:
        assert pipe.vae.use_tiling
        processors = {type(p).__name__ for p in pipe.unet.attn_processors.values()}
        assert processors == {"SlicedAttnProcessor"}
    with ModelManager(tiny.dir, device="cpu").load("tiny-sd", task=TEXT_TO_IMAGE) as roomy:
        assert not roomy.vae.use_tiling


def test_profile_errors_say_what_to_do(manager: ModelManager) -> None:
    with pytest.raises(PixelForgeError) as e:
        manager.profile("sdxl-lightning", task=TEXT_TO_IMAGE)
    assert e.value.code == ErrorCode.invalid_parameter
    assert "unknown model 'sdxl-lightning'" in e.value.message and "tiny-sd" in e.value.message

    with pytest.raises(PixelForgeError) as e:
        manager.profile("tiny-svd", task=TEXT_TO_IMAGE)
    assert e.value.code == ErrorCode.invalid_parameter
    assert "it does: image_to_video" in e.value.message and "tiny-sd" in e.value.message

    with pytest.raises(PixelForgeError) as e:
        manager.profile(None, task=TEXT_TO_IMAGE)  # the default, sd-turbo, is not on disk
    assert e.value.code == ErrorCode.model_unavailable and e.value.status == 503
    assert "model 'sd-turbo' is not on this machine" in e.value.message
    assert "`pixelforge models pull sd-turbo`" in e.value.message

    with pytest.raises(PixelForgeError) as e:
        manager.profile("tiny-sd", task="dance")
    assert e.value.code == ErrorCode.invalid_parameter and "text_to_image" in e.value.message

    assert manager.profile("tiny-sd", task=IMAGE_TO_IMAGE).id == "tiny-sd"


def test_an_add_on_needs_its_base_model(tiny: TinyModels, tmp_path: Path) -> None:
    mgr = ModelManager(tmp_path, device="cpu")
    Catalog(tmp_path).add_profile(
        ModelProfile(
            id="my-pose",
            family="controlnet",
            tasks=(POSE_TRANSFER,),
            source=str(tiny.dir / "tiny-controlnet-openpose"),
            base_model="sd15",
        )
    )
    with pytest.raises(PixelForgeError) as e:
        mgr.profile("my-pose", task=POSE_TRANSFER)
    assert e.value.code == ErrorCode.model_unavailable
    assert "`pixelforge models pull sd15`" in e.value.message


def test_user_defaults_and_local_folders(tiny: TinyModels, tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    catalog.add_profile(
        ModelProfile(
            id="my-sd",
            family="tiny-sd",
            tasks=(TEXT_TO_IMAGE,),
            source=str(tiny.dir / "tiny-sd"),
            tiny=True,
        )
    )
    catalog.set_default(TEXT_TO_IMAGE, "my-sd")
    mgr = ModelManager(tmp_path, device="cpu", threads=1)
    assert mgr.profile(None, task=TEXT_TO_IMAGE).id == "my-sd"
    with mgr.load(None, task=TEXT_TO_IMAGE) as pipe:
        img = pipe("a lake", num_inference_steps=1, guidance_scale=0.0).images[0]
    assert img.size == (64, 64)


def test_dtype_choice(manager: ModelManager, monkeypatch: pytest.MonkeyPatch) -> None:
    sd_turbo = manager.catalog.get("sd-turbo")
    tiny_sd = manager.catalog.get("tiny-sd")
    assert sd_turbo is not None and tiny_sd is not None
    monkeypatch.setattr(manager_module, "cpu_has_native_bf16", lambda: True)
    assert manager.dtype_for(sd_turbo) == "bfloat16"
    assert manager.dtype_for(tiny_sd) == "float32"  # tiny stays deterministic
    monkeypatch.setattr(manager_module, "cpu_has_native_bf16", lambda: False)
    assert manager.dtype_for(sd_turbo) == "float32"
    forced = ModelManager(manager.models_dir, device="cpu", cpu_dtype="bfloat16")
    assert forced.dtype_for(tiny_sd) == "bfloat16"
    gpu = ModelManager(manager.models_dir, device="mps")
    assert gpu.dtype_for(sd_turbo) == "float16"
    with pytest.raises(ValueError):
        ModelManager(manager.models_dir, cpu_dtype="float8")  # type: ignore[arg-type]


def test_fast_decoder_swaps_in_a_tiny_vae_when_on_disk(tiny: TinyModels, tmp_path: Path) -> None:
    import diffusers
    import torch

    torch.manual_seed(0)
    diffusers.AutoencoderTiny(
        encoder_block_out_channels=(32, 32),
        decoder_block_out_channels=(32, 32),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
    ).save_pretrained(tmp_path / "taesd-toy")
    catalog = Catalog(tmp_path)
    base = {"family": "tiny-sd", "tasks": (TEXT_TO_IMAGE,), "tiny": True}
    catalog.add_profile(
        ModelProfile(id="taesd-toy", family="taesd", tasks=(), source="./taesd-toy")
    )
    catalog.add_profile(
        ModelProfile(
            id="fast", source=str(tiny.dir / "tiny-sd"), extra={"taesd": "taesd-toy"}, **base
        )
    )
    catalog.add_profile(
        ModelProfile(
            id="no-dec", source=str(tiny.dir / "tiny-sd"), extra={"taesd": "taesd"}, **base
        )
    )
    mgr = ModelManager(tmp_path, device="cpu", threads=1)
    with mgr.load("fast", task=TEXT_TO_IMAGE, fast_decoder=True) as pipe:
        assert type(pipe.vae).__name__ == "AutoencoderTiny"
        img = pipe("a lake", num_inference_steps=2, guidance_scale=0.0).images[0]
    assert img.size == (64, 64)
    with mgr.load("no-dec", task=TEXT_TO_IMAGE, fast_decoder=True) as pipe:  # not pulled: skipped
        assert type(pipe.vae).__name__ == "AutoencoderKL"
