"""The language-model engine: tiny-llama through the manager; SmolLM2 (GGUF) for real."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pixelforge.models.base import CHAT
from pixelforge.models.catalog import Catalog
from pixelforge.models.llm import ChatModel, Completion
from pixelforge.models.manager import ModelManager
from pixelforge.models.tiny_llm import TINY_LLAMA, write_tiny_llama

MESSAGES = [
    {"role": "system", "content": "You are a knight."},
    {"role": "user", "content": "tell me a story"},
]


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelManager]:
    import torch

    threads = torch.get_num_threads()
    models_dir = tmp_path_factory.mktemp("llm-models")
    start = time.perf_counter()
    write_tiny_llama(models_dir / TINY_LLAMA.id)
    assert time.perf_counter() - start < 10  # ~0.3 s alone; generous for a busy machine
    Catalog(models_dir).add_profile(TINY_LLAMA)
    yield ModelManager(models_dir, device="cpu", threads=1)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def llm(manager: ModelManager) -> Iterator[ChatModel]:
    with manager.load("tiny-llama", task=CHAT) as model:
        assert isinstance(model, ChatModel)
        yield model


def test_the_default_chat_model_is_smollm2_and_needs_no_download(manager: ModelManager) -> None:
    assert manager.catalog.default_for(CHAT) == "smollm2-135m-instruct"
    profile = manager.profile(None, task=CHAT)  # raises model_unavailable if not installed
    assert profile.kind == "transformers-llm"
    pullable = {p.id for p in manager.list_profiles() if CHAT in p.tasks} - {profile.id}
    assert {"qwen3-0.6b", "llama-3.2-1b-instruct"} <= pullable
    assert not manager.is_available(manager.catalog.get("qwen3-0.6b"))  # type: ignore[arg-type]


def test_the_chat_template_comes_from_the_tokenizer(llm: ChatModel) -> None:
    ids = llm.prompt_ids(MESSAGES)
    text = llm.tokenizer.decode(ids)
    assert text == (
        "<|im_start|>system\nYou are a knight.<|im_end|>\n"
        "<|im_start|>user\ntell me a story<|im_end|>\n<|im_start|>assistant\n"
    )
    [done] = llm.generate(MESSAGES, max_tokens=3, seed=1)
    assert done.prompt_tokens == len(ids)


def test_n_candidates_in_one_call_and_a_seed_repeats_them(llm: ChatModel) -> None:
    first = llm.generate(MESSAGES, n=3, max_tokens=12, seed=7, temperature=1.0)
    assert [c.index for c in first] == [0, 1, 2]
    assert len({c.text for c in first}) > 1  # sampled independently
    again = llm.generate(MESSAGES, n=3, max_tokens=12, seed=7, temperature=1.0)
    assert [c.text for c in again] == [c.text for c in first]
    other = llm.generate(MESSAGES, n=3, max_tokens=12, seed=8, temperature=1.0)
    assert [c.text for c in other] != [c.text for c in first]


def test_max_tokens_ends_with_length(llm: ChatModel) -> None:
    # Random weights rarely pick <|im_end|>; greedy decoding here never does within 9 tokens.
    [done] = llm.generate(MESSAGES, max_tokens=9, temperature=0)
    assert done.finish_reason == "length"
    assert done.completion_tokens == 9
    assert done.text


def test_a_stop_sequence_cuts_the_text_and_ends_generation(llm: ChatModel) -> None:
    [full] = llm.generate("hello there", max_tokens=30, temperature=0)
    stop = full.text[8:11]
    cut = full.text[: full.text.index(stop)]
    [stopped] = llm.generate("hello there", max_tokens=30, temperature=0, stop=[stop, "\x00"])
    assert (stopped.text, stopped.finish_reason) == (cut, "stop")
    assert stopped.completion_tokens < full.completion_tokens


def test_streamed_deltas_add_up_to_the_generated_text(llm: ChatModel) -> None:
    opts: dict[str, Any] = {"n": 2, "max_tokens": 15, "seed": 3, "top_k": 50, "top_p": 0.9}
    done = llm.generate(MESSAGES, **opts, repetition_penalty=1.2, stop=["ing"])
    texts = ["", ""]
    finish: dict[int, str] = {}
    deltas = 0
    for delta in llm.stream(MESSAGES, **opts, repetition_penalty=1.2, stop=["ing"]):
        assert delta.index not in finish  # nothing after a candidate's last delta
        texts[delta.index] += delta.text
        deltas += 1
        if delta.finish_reason:
            finish[delta.index] = delta.finish_reason
    assert texts == [c.text for c in done]
    assert finish == {c.index: c.finish_reason for c in done}
    assert deltas > 4  # token by token, not one piece at the end


def test_loads_are_cached_by_the_manager(manager: ModelManager, llm: ChatModel) -> None:
    with manager.load("tiny-llama", task=CHAT) as again:
        assert again is llm
    [entry] = [r for r in manager.cache.resident() if r["id"] == "tiny-llama"]
    assert entry["dtype"] == "float32" and 0 < entry["bytes"] == llm.resident_bytes


@pytest.mark.slow
def test_smollm2_from_its_gguf_answers_in_english(tmp_path: Path) -> None:
    def load(models_dir: Path) -> tuple[float, ChatModel]:
        manager = ModelManager(models_dir, device="cpu")
        start = time.perf_counter()
        with manager.load(None, task=CHAT) as model:
            return time.perf_counter() - start, model

    first, _ = load(tmp_path)  # converts the GGUF into tmp_path/smollm2-135m-instruct
    assert (tmp_path / "smollm2-135m-instruct" / "model.safetensors").is_file()
    second, model = load(tmp_path)  # a fresh manager: reads the converted copy
    assert second * 4 < first, (first, second)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    [answer] = model.generate(question, max_tokens=24, temperature=0, seed=0)
    assert isinstance(answer, Completion)
    assert "Paris" in answer.text, answer.text
