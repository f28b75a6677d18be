"""The `describe_image` pipeline as a job: tiny-vlm on the real workers, tokens on the event
bus, partial text kept on cancel, 1 credit on success only, model_unavailable named clearly."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from websockets.sync.client import connect

from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer, png_bytes

RED = Image.new("RGB", (64, 48), (200, 30, 30))
BLUE = Image.new("RGB", (48, 64), (20, 40, 230))


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, tiny: TinyModels) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("describe-data")
    with LiveServer(make_settings(data, models_path=tiny.dir, worker_threads=1)) as s:
        yield s


def _submit(srv: LiveServer, key: str, params: dict[str, Any], wait: int = 60) -> dict[str, Any]:
    with srv.client(key) as c:
        r = c.post(
            "/v1/jobs",
            json={"pipeline": "describe_image", "params": params},
            headers={"Prefer": f"wait={wait}"} if wait else {},
        )
    assert r.status_code in (200, 201, 202), r.text
    body: dict[str, Any] = r.json()
    return body


def _image(srv: LiveServer, key: str, img: Image.Image) -> str:
    with srv.client(key) as c:
        media_id: str = srv.upload(c, png_bytes(img))["id"]
    return media_id


def _balance(srv: LiveServer, account_id: str) -> int:
    return srv.services.accounts.balance(account_id).available


def _ws(srv: LiveServer, key: str) -> Any:
    return connect(srv.url.replace("http://", "ws://", 1) + f"/v1/events?token={key}")


def test_a_description_streams_its_tokens_and_costs_one_credit(srv: LiveServer) -> None:
    account, key = srv.account(credits=5)
    red = _image(srv, key, RED)
    params = {"model": "tiny-vlm", "image": red, "prompt": "what is she wearing?", "seed": 7}
    with _ws(srv, key) as ws:
        job = _submit(srv, key, {**params, "max_tokens": 24})
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not events or events[-1]["type"] not in ("succeeded", "failed", "canceled"):
            assert time.monotonic() < deadline, events[-3:]
            events.append(json.loads(ws.recv(timeout=30)))
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["model"] == "tiny-vlm" and result["text"]
    [choice] = result["choices"]
    assert choice["text"] == result["text"] and choice["finish_reason"] == result["finish_reason"]
    tokens = [e for e in events if e["type"] == "token"]
    assert "".join(e["delta"] for e in tokens) == result["text"]
    assert tokens[-1]["finish_reason"] == result["finish_reason"] in ("stop", "length")
    usage = result["usage"]
    # The prompt counts the image's tokens; the completion is what was decoded.
    assert usage["prompt_tokens"] > 20 and usage["completion_tokens"] == choice["completion_tokens"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert result["timings"]["total_ms"] > 0 and result["timings"]["ttft_ms"] > 0
    assert _balance(srv, account) == 4


def test_the_same_seed_and_image_give_the_same_text_and_the_image_matters(
    srv: LiveServer,
) -> None:
    _, key = srv.account(credits=10)
    red, blue = _image(srv, key, RED), _image(srv, key, BLUE)
    base = {"model": "tiny-vlm", "max_tokens": 12, "temperature": 0}
    a, b = (_submit(srv, key, {**base, "image": red})["result"]["text"] for _ in range(2))
    c = _submit(srv, key, {**base, "image": blue})["result"]["text"]
    assert a == b and a != c
    sampled = {**base, "image": red, "temperature": 1.0, "seed": 3}
    x, y = (_submit(srv, key, sampled)["result"]["text"] for _ in range(2))
    assert x == y


def test_a_canceled_description_keeps_its_partial_text_and_is_not_charged(
    srv: LiveServer,
) -> None:
    account, key = srv.account(credits=5)
    red = _image(srv, key, RED)
    with _ws(srv, key) as ws:
        params = {"model": "tiny-vlm", "image": red, "max_tokens": 470, "temperature": 0}
        job = _submit(srv, key, params, wait=0)
        pieces: list[str] = []
        while len(pieces) < 3:
            ev = json.loads(ws.recv(timeout=30))
            if ev["type"] == "token":
                pieces.append(ev["delta"])
        with srv.client(key) as c:
            assert c.delete(f"/v1/jobs/{job['id']}").status_code in (200, 202)
            done = srv.wait_job(c, job["id"])
    assert done["status"] == "canceled", done
    result = done["result"]
    assert result["finish_reason"] == "cancelled"
    assert result["text"].startswith("".join(pieces))
    assert 0 < result["usage"]["completion_tokens"] < 470
    assert _balance(srv, account) == 5


def test_without_a_vision_model_on_disk_the_job_fails_naming_the_pull(srv: LiveServer) -> None:
    account, key = srv.account(credits=5)
    red = _image(srv, key, RED)
    failed = _submit(srv, key, {"image": red})  # the default: smolvlm-256m-instruct
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] == "model_unavailable"
    assert "pixelforge models pull smolvlm-256m-instruct" in failed["error"]["message"]
    assert _balance(srv, account) == 5


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"max_tokens": 0}, "params.max_tokens"),
        ({"stop": [""]}, "stop sequences must not be empty"),
        ({"prompt": ""}, "params.prompt"),
        ({"temperature": 3}, "params.temperature"),
        ({"colour": "red"}, "params.colour"),
    ],
)
def test_bad_params_are_refused_before_anything_is_held(
    srv: LiveServer, params: dict[str, Any], needle: str
) -> None:
    account, key = srv.account(credits=5)
    with srv.client(key) as c:
        r = c.post(
            "/v1/jobs",
            json={"pipeline": "describe_image", "params": {"model": "tiny-vlm", **params}},
        )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid_parameter"
    assert needle in r.json()["error"]["message"]
    assert _balance(srv, account) == 5


def test_another_accounts_image_is_not_found(srv: LiveServer) -> None:
    _, mine = srv.account(credits=5)
    _, theirs = srv.account(credits=5)
    red = _image(srv, theirs, RED)
    with srv.client(mine) as c:
        r = c.post(
            "/v1/jobs",
            json={"pipeline": "describe_image", "params": {"model": "tiny-vlm", "image": red}},
        )
    assert r.status_code == 404, r.text
