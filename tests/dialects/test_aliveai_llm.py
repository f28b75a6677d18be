"""AliveAI's LLM Resource against a real server: tiny-llama as every LlmModel (fast), the seed's
samples replayed, its error shape, one credit per call; SmolLM2, the default, once for real."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from pixelforge.dialects.aliveai.settings import options_of
from pixelforge.jobs.status import JobStatus
from pixelforge.models.catalog import Catalog
from pixelforge.models.tiny_llm import TINY_LLAMA, write_tiny_llama
from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes

# The seed's request samples, as printed there (only the base URL changes).
SAMPLES: dict[str, dict[str, Any]] = {
    "generate-character-builder-prompt": {"model": "QWEN3_235B", "attributes": {}},
    "generate-character-prompt": {
        "profileId": "string",
        "theme": "string",
        "outfit": "string",
        "additionalDetails": "string",
    },
    "generate-prompt": {"model": "DEFAULT", "inputPrompt": "string"},
    "generate-update-prompt": {"model": "QWEN3_235B", "oldRequest": "string", "newRequest": {}},
    "generate-video-prompt": {
        "model": "DEFAULT",
        "userInput": "string",
        "mediaId": "string",
        "frameCount": 0,
    },
}
ERROR_KEYS = {"status", "errorType", "code", "message"}


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("llm-models")
    write_tiny_llama(root / TINY_LLAMA.id)
    Catalog(root).add_profile(TINY_LLAMA)
    return root


@pytest.fixture(scope="module")
def srv(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # Every LlmModel name on tiny-llama, but RAW on a model that is not installed.
    options = {"aliveai": {"llm_model": "tiny-llama", "llm_models": {"RAW": "qwen3-0.6b"}}}
    settings = make_settings(
        tmp_path_factory.mktemp("llm-data"),
        models_path=models_dir,
        worker_threads=1,
        dialect_options=options,
    )
    with LiveServer(settings) as server:
        yield server
        User.close_all()


class User:
    """An account that authenticates as the seed says: `Authorization: Key <API key>`."""

    opened: list[httpx.Client] = []

    def __init__(self, srv: LiveServer, credits: int = 20) -> None:
        self.srv = srv
        self.id, self.key = srv.account(credits=credits)
        self.http = httpx.Client(
            base_url=f"{srv.url}/aliveai", headers={"Authorization": f"Key {self.key}"}, timeout=60
        )
        User.opened.append(self.http)

    @classmethod
    def close_all(cls) -> None:
        for client in cls.opened:
            client.close()
        cls.opened.clear()

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(path, json=body)

    def credits(self) -> tuple[int, int]:
        bal = self.srv.services.accounts.balance(self.id)
        return bal.available, bal.held

    def jobs(self) -> list[Any]:
        rows, _ = self.srv.services.jobs.search(account_id=self.id, statuses=list(JobStatus))
        return rows

    def profile(self) -> str:
        """A Create Prompt (its image job fails here: no image model; the request stays)."""
        body = {"name": "Mara", "appearance": "short black hair, brown eyes", "gender": "FEMALE"}
        r = self.post("/prompts", body)
        assert r.status_code == 200, r.text
        prompt_id: str = r.json()["promptId"]
        return prompt_id

    def media(self) -> str:
        r = self.http.post(
            "/upload", files={"image": ("a.png", png_bytes(np.zeros((32, 32, 3), np.uint8)))}
        )
        assert r.status_code == 200, r.text
        media_id: str = r.json()["mediaId"]
        return media_id


def assert_error(r: httpx.Response, status: int, code: str, message: str = "") -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == ERROR_KEYS, body
    assert body["status"] == status and body["code"] == code
    assert body["errorType"] == code.upper() and message in body["message"], body


def test_every_helper_answers_the_seeds_shape_for_one_credit(srv: LiveServer) -> None:
    user = User(srv)
    profile, media = user.profile(), user.media()
    calls = {
        "generate-character-builder-prompt": {
            "model": "QWEN3_8B",
            "attributes": {"hairColor": "blonde", "bodyShape": "athletic", "age": 30},
        },
        "generate-character-prompt": {
            "profileId": profile,
            "theme": "winter market",
            "outfit": "red wool coat",
            "additionalDetails": "smiling",
        },
        "generate-prompt": {"model": "ANIME", "inputPrompt": "a knight in the rain"},
        "generate-update-prompt": {
            "model": "MISTRAL",
            "oldRequest": "a woman with blonde hair in a blue dress",
            "newRequest": {"model": "MISTRAL", "attributes": {"hairColor": "black"}},
        },
        "generate-video-prompt": {
            "model": "AUDIO",
            "userInput": "she turns and smiles",
            "mediaId": media,
            "frameCount": 48,
        },
    }
    for path, body in calls.items():
        before = user.credits()
        r = user.post(f"/llm/{path}", body)
        assert r.status_code == 200, (path, r.text)
        out = r.json()
        keys = {"promptText", "negPrompt"} if path.endswith("video-prompt") else {"promptText"}
        assert set(out) == keys, out
        assert all(isinstance(v, str) and v.strip() for v in out.values()), out
        assert user.credits() == (before[0] - 1, 0), path  # held, then captured once
    helpers = [j for j in user.jobs() if j.pipeline == "chat"]
    assert len(helpers) == 5
    assert {j.params["model"] for j in helpers} == {"tiny-llama"}
    assert all(j.status == JobStatus.SUCCEEDED and j.cost == 1 for j in helpers)
    # Helper jobs are no AliveAI prompts: Get Prompts and Get Pending never list them.
    listed = user.http.get("/prompts", params={"page": 0}).json()["prompts"]
    assert {p["promptId"] for p in listed} <= {profile}
    # The character's stored description went into the chat; the still is an upload.
    [character] = [j for j in helpers if j.meta["aliveai"]["llmHelper"] == "CHARACTER"]
    assert "Mara, woman, short black hair" in character.params["messages"][-1]["content"]


def test_the_seeds_samples_replayed(srv: LiveServer) -> None:
    user = User(srv)
    for path, body in SAMPLES.items():
        r = user.post(f"/llm/{path}", body)
        if path == "generate-character-prompt":  # no profile 'string' here
            assert_error(r, 404, "not_found", "profile 'string' not found")
        elif path == "generate-video-prompt":  # no media 'string' here
            assert_error(r, 404, "not_found", "media 'string' not found")
        else:
            assert r.status_code == 200, (path, r.text)
            assert set(r.json()) == {"promptText"} and r.json()["promptText"].strip()
    assert user.credits() == (20 - 3, 0)


def test_unknown_model_and_empty_input_answer_the_error_shape(srv: LiveServer) -> None:
    user = User(srv)
    bad = {
        "generate-character-builder-prompt": {"model": "GPT4", "attributes": {"age": "30"}},
        "generate-update-prompt": {"model": "qwen3_8b", "oldRequest": "x", "newRequest": {}},
        "generate-prompt": {"model": "QWEN3_8B", "inputPrompt": "a cat on a roof"},
        "generate-video-prompt": {"model": "RAW", "userInput": "waves", "mediaId": "m"},
    }
    for path, body in bad.items():
        assert_error(user.post(f"/llm/{path}", body), 400, "invalid_parameter", "model")
    empty = {
        "generate-prompt": {"model": "DEFAULT", "inputPrompt": "      "},
        "generate-video-prompt": {"model": "DEFAULT", "userInput": "", "mediaId": "m"},
        "generate-character-prompt": {"profileId": "p", "theme": " ", "outfit": "coat"},
        "generate-update-prompt": {"model": "GROK", "oldRequest": "", "newRequest": {}},
        "generate-character-builder-prompt": {"model": "GROK", "attributes": {"x": "short key"}},
    }
    for path, body in empty.items():
        assert_error(user.post(f"/llm/{path}", body), 400, "invalid_parameter")
    # RAW is mapped (dialect option) to a model this server has not downloaded.
    raw = {"model": "RAW", "attributes": {"hairColor": "red"}}
    r = user.post("/llm/generate-character-builder-prompt", raw)
    assert_error(r, 503, "model_unavailable", "qwen3-0.6b")
    assert user.credits() == (20, 0) and user.jobs() == []


def test_another_accounts_profile_or_media_is_not_found(srv: LiveServer) -> None:
    owner, other = User(srv), User(srv)
    profile, media = owner.profile(), owner.media()
    body = {"profileId": profile, "theme": "beach", "outfit": "swimsuit"}
    r = other.post("/llm/generate-character-prompt", body)
    assert_error(r, 404, "not_found", f"profile {profile!r} not found")
    body = {"model": "DEFAULT", "userInput": "she waves", "mediaId": media}
    assert_error(other.post("/llm/generate-video-prompt", body), 404, "not_found", media)
    assert other.credits() == (20, 0)
    # A deleted prompt is no profile either.
    assert owner.http.get(f"/prompts/{profile}").json()["status"] in ("FAILED", "PENDING")
    _wait_ended(owner, profile)
    assert owner.http.delete(f"/prompts/{profile}").status_code == 204
    body = {"profileId": profile, "theme": "beach", "outfit": "swimsuit"}
    assert_error(owner.post("/llm/generate-character-prompt", body), 404, "not_found")


def test_a_helper_past_the_blocking_bound_is_canceled_and_not_charged(srv: LiveServer) -> None:
    user = User(srv)
    opts = options_of(srv.services)
    srv.services.extensions["aliveai"] = opts.model_copy(update={"max_blocking_s": 0.01})
    try:
        body = {"model": "DEFAULT", "inputPrompt": "a lighthouse at night"}
        r = user.post("/llm/generate-prompt", body)
    finally:
        srv.services.extensions["aliveai"] = opts
    assert_error(r, 504, "timeout", "nothing was charged")
    [job] = user.jobs()
    deadline = time.monotonic() + 20
    while not JobStatus(job.status).terminal and time.monotonic() < deadline:
        time.sleep(0.05)
        job = srv.services.jobs.get(account_id=user.id, job_id=job.id)
    assert job.status == JobStatus.CANCELED
    assert user.credits() == (20, 0)


def _wait_ended(user: User, prompt_id: str) -> None:
    deadline = time.monotonic() + 30
    while user.http.get(f"/prompts/{prompt_id}").json()["status"] in ("PENDING", "PROCESSING"):
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.slow
def test_smollm2_the_default_writes_an_english_prompt(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    # The default catalog: SmolLM2 from its wheel, converted once into pytest's cache (shared
    # with the AliveAI chat test) and read from there by later runs.
    cache = getattr(pytestconfig, "cache", None)
    models = cache.mkdir("aliveai-chat-smollm2") if cache is not None else tmp_path / "models"
    # The default options but shorter answers: a CPU shared with other tests decodes slowly.
    options = {"aliveai": {"llm_max_tokens": 32}}
    settings = make_settings(tmp_path / "data", models_path=models, dialect_options=options)
    with LiveServer(settings) as server:
        # Converted once and made resident; its first decode (kernel set-up) is paid here.
        with server.services.models.load(None, task="chat") as llm:
            llm.generate("Hello", max_tokens=2)
        user = User(server)
        start = time.monotonic()
        body = {"model": "REALISM", "inputPrompt": "a lighthouse on a cliff at night"}
        r = user.post("/llm/generate-prompt", body)
        elapsed = time.monotonic() - start
        assert r.status_code == 200, r.text
        text = r.json()["promptText"]
        [job] = user.jobs()
        User.close_all()
    assert job.result["model"] == "smollm2-135m-instruct"
    words = re.findall(r"[A-Za-z]{2,}", text)
    assert len(words) >= 5 and sum(len(w) for w in words) > 0.6 * len(text), text
    assert {"the", "a", "and", "of", "with", "on", "in"} & {w.lower() for w in words}, text
    assert elapsed < 20, (elapsed, text)
