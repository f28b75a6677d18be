"""OpenAI's Chat Completions and Completions, driven by the official `openai` client against a
real server on loopback, streaming included. tiny-llama (random weights) for speed; SmolLM2
once, for a real English answer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from pixelforge.models.catalog import Catalog
from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer
from tests.models.test_llm_upstream import upstream_profile
from tests.models.upstream_server import Recorder

pytestmark = pytest.mark.slow

TINY = "tiny-llama"
HELLO = [{"role": "user", "content": "tell me a story"}]


@pytest.fixture(scope="module")
def srv(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("openai-chat") / "data"
    settings = make_settings(data_dir, models_path=tiny.dir)
    with LiveServer(settings) as server:
        yield server


@pytest.fixture
def account(srv: LiveServer) -> Iterator[tuple[OpenAI, httpx.Client]]:
    """An OpenAI client (base_url = the server's /v1) and a native client, 100 credits."""
    _, key = srv.account(credits=100)
    client = OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0)
    with client, srv.client(key) as native:
        yield client, native


def balance(native: httpx.Client) -> tuple[int, int]:
    me = native.get("/v1/me").json()
    return me["credits_available"], me["credits_held"]


def chat(client: OpenAI, **kw: Any) -> Any:
    args: dict[str, Any] = {"model": TINY, "messages": HELLO, "max_tokens": 8}
    return client.chat.completions.create(**(args | kw))


def test_chat_completion_not_streamed(account: tuple[OpenAI, httpx.Client]) -> None:
    client, native = account
    res = chat(client, seed=1, user="someone", temperature=0.8, top_p=0.9)
    assert res.object == "chat.completion" and res.id.startswith("chatcmpl-job")
    assert res.model == TINY and len(res.choices) == 1
    [choice] = res.choices
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.message.content and choice.finish_reason in ("stop", "length")
    assert res.usage is not None and 0 < res.usage.completion_tokens <= 8
    assert res.usage.prompt_tokens > 5
    assert res.usage.total_tokens == res.usage.prompt_tokens + res.usage.completion_tokens
    job = native.get(f"/v1/jobs/{res.id.removeprefix('chatcmpl-')}").json()
    assert job["pipeline"] == "chat" and job["status"] == "succeeded"
    assert balance(native) == (99, 0)  # n x ceil(8 / 1000) = 1 credit


def test_streamed_n2_has_indexed_deltas_and_usage_and_matches_the_seed(
    account: tuple[OpenAI, httpx.Client],
) -> None:
    client, _ = account
    kw: dict[str, Any] = {"n": 2, "max_tokens": 12, "seed": 5, "temperature": 1.0}
    chunks = list(chat(client, stream=True, stream_options={"include_usage": True}, **kw))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    *body, last = chunks
    assert last.choices == [] and last.usage is not None  # include_usage: the final chunk
    assert all(c.usage is None for c in body)
    texts, finishes, roles = ["", ""], [[], []], [[], []]  # type: ignore[var-annotated]
    for c in body:
        [choice] = c.choices
        if choice.delta.role:
            roles[choice.index].append(choice.delta.role)
            assert not finishes[choice.index] and not texts[choice.index]  # the role comes first
        texts[choice.index] += choice.delta.content or ""
        if choice.finish_reason:
            finishes[choice.index].append(choice.finish_reason)
    assert roles == [["assistant"], ["assistant"]]
    assert [len(f) for f in finishes] == [1, 1]  # exactly one final chunk per choice
    whole = chat(client, **kw)  # the same seed, not streamed: the same texts
    assert [c.message.content for c in whole.choices] == texts
    assert [c.finish_reason for c in whole.choices] == [f[0] for f in finishes]
    assert last.usage.completion_tokens == whole.usage.completion_tokens
    other = chat(client, **(kw | {"seed": 6}))
    assert [c.message.content for c in other.choices] != texts


def test_a_stop_sequence_ends_the_reply_before_it(account: tuple[OpenAI, httpx.Client]) -> None:
    client, _ = account
    [free] = chat(client, seed=2, max_tokens=16).choices
    text = free.message.content
    assert text is not None and len(text) >= 6, text
    stop = text[3:5]
    [cut] = chat(client, seed=2, max_tokens=16, stop=[stop, "zzzz-never"]).choices
    assert cut.finish_reason == "stop" and cut.message.content == text[: text.find(stop)]
    [one] = chat(client, seed=2, max_tokens=16, stop=stop).choices  # a single string
    assert one.message.content == cut.message.content


def test_json_object_and_json_schema_parse(account: tuple[OpenAI, httpx.Client]) -> None:
    client, _ = account
    res = chat(client, seed=2, max_tokens=80, response_format={"type": "json_object"})
    assert isinstance(json.loads(res.choices[0].message.content or ""), dict)
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "age": {"type": "integer"},
            "mood": {"enum": ["calm", "bold"]},
        },
        "required": ["name", "age", "mood"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    res = chat(client, n=2, seed=3, max_tokens=80, response_format=fmt)
    for choice in res.choices:
        data = json.loads(choice.message.content or "")
        assert set(data) == {"name", "age", "mood"}, data
        assert isinstance(data["name"], str) and len(data["name"]) <= 12
        assert isinstance(data["age"], int) and data["mood"] in ("calm", "bold")
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strang"}}}
    with pytest.raises(openai.BadRequestError) as e:
        chat(client, response_format=bad)
    assert e.value.param == "response_format" and "strang" in e.value.message


def test_tools_with_the_transformers_backend_are_a_clear_400(
    account: tuple[OpenAI, httpx.Client],
) -> None:
    client, native = account
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as e:
            chat(client, tools=tools, stream=stream)
        assert e.value.param == "tools" and e.value.type == "invalid_request_error"
        assert "does not support tools" in e.value.message
    assert balance(native) == (100, 0)


def test_unknown_model_is_404_model_not_found(account: tuple[OpenAI, httpx.Client]) -> None:
    client, _ = account
    with pytest.raises(openai.NotFoundError) as e:
        chat(client, model="gpt-9-turbo")
    assert e.value.code == "model_not_found" and e.value.param == "model"
    with pytest.raises(openai.BadRequestError) as b:  # a model that does not chat
        chat(client, model="tiny-sd")
    assert b.value.param == "model"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"temperature": 5}, "temperature"),
        ({"n": 9}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"logprobs": True}, "logprobs"),
        ({"logit_bias": {"5": 1}}, "logit_bias"),
        ({"max_completion_tokens": 0}, "max_completion_tokens"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages"),
        ({"frobnicate": 1}, "frobnicate"),
    ],
)
def test_bad_parameters_are_400_in_openai_shape(
    srv: LiveServer, extra: dict[str, Any], param: str
) -> None:
    _, key = srv.account(credits=10)
    body = {"model": TINY, "messages": HELLO} | extra
    with srv.client(key) as native:
        r = native.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and (err["param"] or "").startswith(param)


def test_auth_credits_and_context_errors(
    srv: LiveServer, account: tuple[OpenAI, httpx.Client]
) -> None:
    client, _ = account
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=f"{srv.url}/v1", api_key="pf_nope_nope", max_retries=0).models.list()
    _, broke = srv.account(credits=0)
    with pytest.raises(openai.RateLimitError) as q:
        chat(OpenAI(base_url=f"{srv.url}/v1", api_key=broke, max_retries=0))
    assert q.value.code == "insufficient_quota"
    long = [{"role": "user", "content": "hello there " * 200}]  # tiny-llama takes 512 tokens
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as e:
            chat(client, messages=long, max_tokens=100, stream=stream)
        assert e.value.code == "context_length_exceeded"


def test_completions_endpoint(account: tuple[OpenAI, httpx.Client]) -> None:
    client, _ = account
    res = client.completions.create(model=TINY, prompt="hello there", max_tokens=6, seed=4)
    assert res.object == "text_completion" and res.id.startswith("cmpl-")
    [choice] = res.choices
    assert choice.text and choice.finish_reason in ("stop", "length")
    assert res.usage is not None and res.usage.completion_tokens <= 6
    streamed = client.completions.create(
        model=TINY, prompt="hello there", max_tokens=6, seed=4, stream=True
    )
    pieces = list(streamed)
    assert "".join(p.choices[0].text for p in pieces) == choice.text
    assert [p.choices[0].finish_reason for p in pieces if p.choices[0].finish_reason] == [
        choice.finish_reason
    ]
    default = client.completions.create(model=TINY, prompt="hello", seed=1, temperature=0)
    assert default.usage is not None and default.usage.completion_tokens <= 16  # OpenAI's 16
    for kw in ({"echo": True}, {"best_of": 2}, {"suffix": "end"}, {"logprobs": 2}):
        with pytest.raises(openai.BadRequestError) as e:
            client.completions.create(model=TINY, prompt="hello", **kw)  # type: ignore[call-overload]
        assert e.value.param == next(iter(kw))


def test_a_client_that_leaves_the_stream_cancels_the_job_and_pays_nothing(
    account: tuple[OpenAI, httpx.Client],
) -> None:
    client, native = account
    stream = chat(
        client,
        stream=True,
        max_tokens=480,
        temperature=1.0,
        seed=9,
        messages=[{"role": "user", "content": "hi"}],
    )
    first = [next(stream) for _ in range(3)]
    stream.close()
    job_id = first[0].id.removeprefix("chatcmpl-")
    deadline = time.monotonic() + 20
    while (job := native.get(f"/v1/jobs/{job_id}").json())["status"] not in (
        "canceled",
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["status"] == "canceled", job
    assert balance(native) == (100, 0)


def test_chat_models_are_in_the_openai_model_list(account: tuple[OpenAI, httpx.Client]) -> None:
    client, _ = account
    models = {m.id: m for m in client.models.list()}
    assert models[TINY].owned_by == "pixelforge"
    assert models["smollm2-135m-instruct"].owned_by == "pixelforge"


def test_smollm2_answers_in_english(srv: LiveServer, account: tuple[OpenAI, httpx.Client]) -> None:
    client, _ = account
    # Loaded (its GGUF converted once, if no test did yet) before the request, so the
    # request's own wait measures the answer, not the conversion.
    with srv.services.models.load("smollm2-135m-instruct", task="chat"):
        pass
    question = [{"role": "user", "content": "What is the capital of France?"}]
    res = client.chat.completions.create(
        model="smollm2-135m-instruct",
        messages=question,
        max_tokens=16,
        temperature=0,  # type: ignore[arg-type]
    )
    assert "Paris" in (res.choices[0].message.content or ""), res.choices[0].message.content


def test_tools_reach_a_backend_that_supports_them(tmp_path: Path) -> None:
    """An openai-upstream model takes tools: the upstream sees them, the client gets the
    tool calls back (whole, and on the final chunk of a stream)."""
    recorder = Recorder()
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    models_dir = tmp_path / "models"
    Catalog(models_dir).add_profile(upstream_profile("remote", recorder.url))
    settings = make_settings(tmp_path / "data", models_path=models_dir)
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object"}},
        }
    ]
    try:
        with LiveServer(settings) as server:
            _, key = server.account(credits=10)
            client = OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
            res = chat(client, model="remote", tools=tools, tool_choice="auto")
            [choice] = res.choices
            assert choice.finish_reason == "tool_calls"
            assert choice.message.tool_calls is not None
            assert choice.message.tool_calls[0].function.name == "get_weather"  # type: ignore[union-attr]
            _, _, sent = recorder.requests[-1]
            assert sent["tools"] == tools and sent["tool_choice"] == "auto"
            chunks = list(chat(client, model="remote", tools=tools, stream=True))
            calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices[0].delta.tool_calls]
            finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
            assert finishes == ["tool_calls"] and calls
            names = [t.function.name for t in calls[0] if t.function and t.function.name]
            assert names == ["get_weather"]
            client.close()
    finally:
        recorder.shutdown()
        recorder.server_close()
