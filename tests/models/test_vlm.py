"""The vision-language engine: tiny-vlm (Idefics3, SmolVLM's classes) through the manager."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from pixelforge.errors import PixelForgeError
from pixelforge.models.base import CHAT, VISION
from pixelforge.models.catalog import Catalog
from pixelforge.models.manager import ModelManager
from pixelforge.models.tiny_vlm import TINY_VLM, write_tiny_vlm
from pixelforge.models.vlm import VisionModel

ASK = [{"role": "user", "content": "describe the photo"}]
RED = Image.new("RGB", (64, 48), (200, 30, 30))
BLUE = Image.new("RGB", (40, 64), (20, 40, 230))


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelManager]:
    import torch

    threads = torch.get_num_threads()
    models_dir = tmp_path_factory.mktemp("vlm-models")
    write_tiny_vlm(models_dir / TINY_VLM.id)
    Catalog(models_dir).add_profile(TINY_VLM)
    yield ModelManager(models_dir, device="cpu", threads=1)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vlm(manager: ModelManager) -> Iterator[VisionModel]:
    with manager.load("tiny-vlm", task=VISION) as model:
        assert isinstance(model, VisionModel)
        yield model


def test_the_tiny_vlm_is_written_the_same_way_every_time(tmp_path: Path) -> None:
    write_tiny_vlm(tmp_path / "a")
    write_tiny_vlm(tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert {"config.json", "model.safetensors", "processor_config.json"} <= set(names)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_the_default_vision_model_is_smolvlm_and_missing_means_pull(manager: ModelManager) -> None:
    assert manager.catalog.default_for(VISION) == "smolvlm-256m-instruct"
    vision = {p.id for p in manager.list_profiles() if VISION in p.tasks}
    assert {"smolvlm-256m-instruct", "qwen2.5-vl-3b-instruct", "tiny-vlm"} <= vision
    with pytest.raises(PixelForgeError) as err:
        manager.profile(None, task=VISION)
    assert err.value.code == "model_unavailable"
    assert "pixelforge models pull smolvlm-256m-instruct" in err.value.message
    with pytest.raises(PixelForgeError) as wrong:
        manager.profile("tiny-vlm", task=CHAT)
    assert wrong.value.code == "invalid_parameter"


def test_the_image_reaches_the_model_through_the_chat_template(vlm: VisionModel) -> None:
    ids = vlm.inputs(ASK, [RED])["input_ids"][0].tolist()
    text = vlm.tokenizer.decode(ids)
    # The processor expands <image> into the wrapped image tokens of one tile.
    assert text.startswith("<|im_start|>User:<fake_token_around_image><global-img>")
    assert text.count("<image>") == 4
    assert text.endswith("describe the photo<end_of_utterance>\nAssistant:")
    [done] = [vlm.generate(ASK, images=[RED], max_tokens=3, seed=1)]
    assert done.prompt_tokens == len(ids)
    # Greedy decoding of the same words about another picture says something else.
    red = vlm.generate(ASK, images=[RED], max_tokens=12, temperature=0).text
    blue = vlm.generate(ASK, images=[BLUE], max_tokens=12, temperature=0).text
    assert red and red != blue


def test_a_seed_repeats_the_text_and_another_seed_changes_it(vlm: VisionModel) -> None:
    first = vlm.generate(ASK, images=[RED], max_tokens=16, seed=7, temperature=1.0)
    again = vlm.generate(ASK, images=[RED], max_tokens=16, seed=7, temperature=1.0)
    other = vlm.generate(ASK, images=[RED], max_tokens=16, seed=8, temperature=1.0)
    assert first == again
    assert other.text != first.text


def test_streamed_deltas_add_up_to_the_generated_text(vlm: VisionModel) -> None:
    for seed in (3, 5, 11):
        done = vlm.generate(ASK, images=[RED], max_tokens=24, seed=seed)
        deltas = list(vlm.stream(ASK, images=[RED], max_tokens=24, seed=seed))
        assert "".join(d.text for d in deltas) == done.text
        assert sum(d.tokens for d in deltas) == done.completion_tokens
        assert [d.finish_reason for d in deltas[:-1]] == [None] * (len(deltas) - 1)
        assert deltas[-1].finish_reason == done.finish_reason in ("stop", "length")


def test_max_tokens_and_stop_sequences_end_the_text(vlm: VisionModel) -> None:
    # Greedy here never picks <end_of_utterance> within 9 tokens.
    done = vlm.generate(ASK, images=[RED], max_tokens=9, temperature=0)
    assert done.finish_reason == "length" and done.completion_tokens == 9
    stop = done.text[3:5]
    cut = vlm.generate(ASK, images=[RED], max_tokens=9, temperature=0, stop=[stop])
    assert cut.finish_reason == "stop"
    assert cut.text == done.text[: done.text.find(stop)]
    assert stop not in "".join(d.text for d in vlm.stream(ASK, images=[RED], stop=[stop]))


def test_a_reader_that_leaves_frees_the_model_for_the_next_call(vlm: VisionModel) -> None:
    stream = vlm.stream(ASK, images=[RED], max_tokens=400, temperature=0)
    next(stream)
    start = time.perf_counter()
    stream.close()  # what a canceled job does
    assert time.perf_counter() - start < 5
    assert vlm.generate(ASK, images=[RED], max_tokens=2, seed=1).completion_tokens == 2


def test_text_without_an_image_and_bad_requests(vlm: VisionModel) -> None:
    assert vlm.generate(ASK, max_tokens=4, seed=1).completion_tokens >= 1
    with_part = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}]
    with pytest.raises(PixelForgeError, match="1 image parts for 0 images"):
        vlm.generate(with_part, max_tokens=2)
    for bad in ({"response_format": {"type": "json_object"}}, {"max_tokens": 0}):
        with pytest.raises(PixelForgeError) as err:
            vlm.generate(ASK, images=[RED], **bad)
        assert err.value.code == "invalid_parameter"
