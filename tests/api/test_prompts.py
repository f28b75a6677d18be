"""POST /v1/prompts/{kind}: the prompt helpers on tiny-llama, one chat job and one credit each,
errors in the native shape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from pixelforge.jobs.status import JobStatus
from pixelforge.models.catalog import Catalog
from pixelforge.models.tiny_llm import TINY_LLAMA, write_tiny_llama
from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    models = tmp_path_factory.mktemp("prompt-models")
    write_tiny_llama(models / TINY_LLAMA.id)
    Catalog(models).add_profile(TINY_LLAMA)
    data = tmp_path_factory.mktemp("prompt-data")
    with LiveServer(make_settings(data, models_path=models, worker_threads=1)) as server:
        yield server


def test_each_kind_answers_text_job_and_usage_for_one_credit(srv: LiveServer) -> None:
    account, key = srv.account(credits=10)
    with srv.client(key) as c:
        image = srv.upload(c, png_bytes(np.zeros((16, 16, 3), np.uint8)))["id"]
        bodies: dict[str, dict[str, Any]] = {
            "character-builder": {"attributes": {"hairColor": "red"}, "style": "anime"},
            "character": {"character": "Mara, short black hair", "theme": "beach", "outfit": "hat"},
            "prompt": {"input": "a knight in the rain"},
            "update": {"prompt": "a woman in a blue dress", "changes": {"dressColor": "green"}},
            "video": {"input": "she waves", "image": image, "frames": 48, "speech": True},
        }
        for kind, body in bodies.items():
            r = c.post(f"/v1/prompts/{kind}", json={"model": "tiny-llama", **body})
            assert r.status_code == 200, (kind, r.text)
            out = r.json()
            assert out["kind"] == kind and out["text"].strip() and out["model"] == "tiny-llama"
            assert (out["negative_prompt"] is not None) == (kind == "video"), out
            usage = out["usage"]
            assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
            job = c.get(f"/v1/jobs/{out['job_id']}").json()
            assert job["pipeline"] == "chat" and job["status"] == JobStatus.SUCCEEDED
            # A quarter of tiny-llama's 512-token window at most.
            assert job["params"]["max_tokens"] == 128 and job["params"]["trim"] is True
    assert srv.services.accounts.balance(account).available == 10 - 5


def test_bad_requests_answer_the_native_shape_and_cost_nothing(srv: LiveServer) -> None:
    account, key = srv.account(credits=3)
    other_account, other_key = srv.account(credits=3)
    with srv.client(other_key) as c:
        theirs = srv.upload(c, png_bytes(np.zeros((16, 16, 3), np.uint8)))["id"]
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        ("prompt", {"input": "    "}, 400, "invalid_parameter"),
        ("prompt", {"input": "a cat", "surprise": 1}, 400, "invalid_parameter"),
        ("update", {"prompt": "", "changes": {}}, 400, "invalid_parameter"),
        ("poem", {"input": "a cat sat"}, 404, "not_found"),
        ("video", {"input": "she waves", "image": theirs}, 404, "not_found"),
        (
            "prompt",
            {"input": "a cat on a roof", "model": "no-such-model"},
            400,
            "invalid_parameter",
        ),
        ("prompt", {"input": "a cat on a roof", "model": "qwen3-0.6b"}, 503, "model_unavailable"),
    ]
    with srv.client(key) as c:
        for kind, body, status, code in cases:
            r = c.post(f"/v1/prompts/{kind}", json={"model": "tiny-llama", **body})
            assert r.status_code == status, (kind, body, r.text)
            assert set(r.json()) == {"error"} and set(r.json()["error"]) == {"code", "message"}
            assert r.json()["error"]["code"] == code, r.text
    assert srv.services.accounts.balance(account).available == 3
    jobs, _ = srv.services.jobs.search(account_id=account, statuses=list(JobStatus))
    assert jobs == []
    assert other_account != account


def test_the_window_cap_and_a_smaller_max_tokens(srv: LiveServer) -> None:
    _, key = srv.account(credits=2)
    with srv.client(key) as c:
        body = {"model": "tiny-llama", "input": "a lighthouse", "max_tokens": 20}
        out = c.post("/v1/prompts/prompt", json=body).json()
        job = c.get(f"/v1/jobs/{out['job_id']}").json()
    assert job["params"]["max_tokens"] == 20
    assert 0 < job["result"]["usage"]["completion_tokens"] <= 20


def test_a_client_that_leaves_cancels_its_helper_job(srv: LiveServer) -> None:
    account, key = srv.account(credits=10)
    with srv.client(key) as c:
        # The one worker is busy with a long reply, so the helper's job waits in the queue.
        busy = {"model": "tiny-llama", "prompt": "once upon a time", "n": 4, "max_tokens": 480}
        first = c.post("/v1/jobs", json={"pipeline": "chat", "params": busy}).json()
        body = {"model": "tiny-llama", "input": "a lighthouse at night"}
        with pytest.raises(httpx.ReadTimeout):
            c.post("/v1/prompts/prompt", json=body, timeout=0.3)
        deadline = time.monotonic() + 20
        while True:
            jobs, _ = srv.services.jobs.search(account_id=account, statuses=list(JobStatus))
            [helper] = [j for j in jobs if j.id != first["id"]]
            if JobStatus(helper.status).terminal or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert helper.status == JobStatus.CANCELED and helper.started_at is None
        c.delete(f"/v1/jobs/{first['id']}")
        assert srv.wait_job(c, first["id"])["status"] in ("canceled", "succeeded")
    ended = srv.services.jobs.get(account_id=account, job_id=first["id"])
    assert srv.services.accounts.balance(account).available == 10 - (
        4 if ended.status == JobStatus.SUCCEEDED else 0
    )
