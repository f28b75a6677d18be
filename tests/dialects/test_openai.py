"""The OpenAI images dialect, driven by the official `openai` client against a real server."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from openai import OpenAI
from PIL import Image

from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer, png_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def srv(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("openai") / "data"
    settings = make_settings(data_dir, models_path=tiny.dir, worker_threads=1)
    with LiveServer(settings) as server:
        yield server


@pytest.fixture
def account(srv: LiveServer) -> Iterator[tuple[OpenAI, httpx.Client]]:
    """An OpenAI client and a native client for a fresh account with 100 credits."""
    _, key = srv.account(credits=100)
    client = OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0)
    with client, srv.client(key) as native:
        yield client, native


def balance(native: httpx.Client) -> tuple[int, int]:
    me = native.get("/v1/me").json()
    return me["credits_available"], me["credits_held"]


def decode(b64: str | None) -> Image.Image:
    assert b64 is not None
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def photo(side: int = 64, alpha: bool = False) -> Image.Image:
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 255, (side, side, 4 if alpha else 3), dtype=np.uint8)
    if alpha:
        arr[..., 3] = 255
        arr[16:48, 16:48, 3] = 0  # the hole to fill
    return Image.fromarray(arr)


def test_generate_url_and_b64(srv: LiveServer, account: tuple[OpenAI, httpx.Client]) -> None:
    client, native = account
    res = client.images.generate(prompt="a cat", model="tiny-sd", size="256x256")
    assert res.created > 0 and res.data is not None and len(res.data) == 1
    url = res.data[0].url
    assert url is not None and url.startswith(srv.url) and res.data[0].b64_json is None
    img = Image.open(io.BytesIO(httpx.get(url).content))  # signed: no auth header needed
    assert (img.format, img.size) == ("PNG", (256, 256))

    res = client.images.generate(
        prompt="a dog",
        model="tiny-sd",
        size="96x64",
        n=2,
        response_format="b64_json",
        output_format="webp",
        quality="low",
        style="vivid",
        user="someone",
    )
    assert res.data is not None and len(res.data) == 2
    images = [decode(d.b64_json) for d in res.data]
    assert [(i.format, i.size) for i in images] == [("WEBP", (96, 64))] * 2
    assert res.data[0].revised_prompt is not None
    assert res.data[0].revised_prompt.startswith("a dog, vivid")
    assert (res.size, res.output_format) == ("96x64", "webp")
    assert balance(native) == (97, 0)  # one credit per image


def test_edit_with_mask_and_with_transparency(account: tuple[OpenAI, httpx.Client]) -> None:
    client, native = account
    image = png_bytes(photo())
    mask = np.full((64, 64, 4), 255, dtype=np.uint8)
    mask[8:24, 8:24, 3] = 0  # transparent = edit here
    res = client.images.edit(
        image=("photo.png", image, "image/png"),
        mask=("mask.png", png_bytes(mask), "image/png"),
        prompt="a red door",
        model="tiny-sd-inpaint",
        response_format="b64_json",
    )
    assert res.data is not None and decode(res.data[0].b64_json).size == (64, 64)

    # No mask: the image's own transparent area is the one edited; size resizes it.
    res = client.images.edit(
        image=("holed.png", png_bytes(photo(alpha=True)), "image/png"),
        prompt="a window",
        model="tiny-sd-inpaint",
        size="128x128",
        n=2,
    )
    assert res.data is not None and len(res.data) == 2
    assert res.data[0].url is not None
    assert Image.open(io.BytesIO(httpx.get(res.data[0].url).content)).size == (128, 128)

    # Nothing transparent and no mask: nothing to edit.
    with pytest.raises(openai.BadRequestError) as e:
        client.images.edit(image=image, prompt="x", model="tiny-sd-inpaint")
    assert e.value.param == "mask" and "transparent" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.images.edit(
            image=image,
            mask=png_bytes(photo(32, alpha=True)),
            prompt="x",
            model="tiny-sd-inpaint",
        )
    assert e.value.param == "mask" and "size" in e.value.message
    with pytest.raises(openai.BadRequestError) as e:
        client.images.edit(image=[image, image], prompt="x", model="tiny-sd-inpaint")
    assert e.value.param == "image"
    assert balance(native) == (97, 0)


# The client marks create_variation deprecated (OpenAI retired the endpoint); we serve it.
@pytest.mark.filterwarnings("ignore:^deprecated$:DeprecationWarning")
def test_variation(account: tuple[OpenAI, httpx.Client]) -> None:
    client, native = account
    res = client.images.create_variation(
        image=("photo.png", png_bytes(photo()), "image/png"),
        model="tiny-sd",
        n=2,
        size="64x64",  # type: ignore[arg-type]  # the client's type lists OpenAI's sizes
        response_format="b64_json",
    )
    assert res.data is not None
    assert [decode(d.b64_json).size for d in res.data] == [(64, 64)] * 2
    assert balance(native) == (98, 0)


def test_models_list_and_retrieve(account: tuple[OpenAI, httpx.Client]) -> None:
    client, _ = account
    models = {m.id: m for m in client.models.list()}
    assert {"tiny-sd", "tiny-sd-inpaint", "sd-turbo"} <= set(models)
    assert models["sd-turbo"].owned_by == "stabilityai" and models["sd-turbo"].object == "model"
    one = client.models.retrieve("tiny-sd")
    assert (one.id, one.owned_by) == ("tiny-sd", "local") and one.created > 0
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_errors_in_openai_shape(srv: LiveServer, account: tuple[OpenAI, httpx.Client]) -> None:
    client, native = account
    cases: list[tuple[dict[str, object], str]] = [
        ({"size": "13x7"}, "size"),
        ({"size": "huge"}, "size"),
        ({"n": 5}, "n"),
        ({"model": "tiny-sd-inpaint"}, "model"),  # it cannot do text to image
        ({"extra_body": {"colour": "red"}}, "colour"),
        ({"stream": True}, "stream"),
        ({"output_format": "gif"}, "output_format"),
    ]
    for kwargs, param in cases:
        args = {"prompt": "a cat", "model": "tiny-sd", **kwargs}
        with pytest.raises(openai.BadRequestError) as e:
            client.images.generate(**args)  # type: ignore[call-overload]
        assert e.value.param == param, (kwargs, e.value.body)
        assert e.value.type == "invalid_request_error" and e.value.message
        assert isinstance(e.value.body, dict)
        assert set(e.value.body) == {"message", "type", "param", "code"}

    with pytest.raises(openai.NotFoundError) as nf:
        client.images.generate(prompt="a cat", model="midjourney-v6")
    assert (nf.value.code, nf.value.param) == ("model_not_found", "model")

    bad_key = OpenAI(base_url=f"{srv.url}/v1", api_key="pf_not_a_key", max_retries=0)
    with bad_key, pytest.raises(openai.AuthenticationError) as auth:
        bad_key.images.generate(prompt="a cat", model="tiny-sd")
    assert auth.value.code == "invalid_api_key"

    r = native.get("/v1/images/generations")  # wrong method, still OpenAI's shape
    assert r.status_code == 405 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert balance(native) == (100, 0)


def test_insufficient_credits_is_429_insufficient_quota(srv: LiveServer) -> None:
    _, key = srv.account(credits=1)
    client = OpenAI(base_url=f"{srv.url}/v1", api_key=key)
    with client, pytest.raises(openai.RateLimitError) as e:
        client.images.generate(prompt="a cat", model="tiny-sd", n=2)
    assert e.value.code == "insufficient_quota" and e.value.type == "insufficient_quota"
    assert "credits" in e.value.message
    # The client would retry a 429; this one says it must not.
    assert e.value.response.headers["x-should-retry"] == "false"


def test_idempotency_key_charges_once(account: tuple[OpenAI, httpx.Client]) -> None:
    client, native = account
    headers = {"Idempotency-Key": "gen-1"}
    first = client.images.with_raw_response.generate(
        prompt="a cat", model="tiny-sd", extra_headers=headers
    )
    again = client.images.with_raw_response.generate(
        prompt="a cat", model="tiny-sd", extra_headers=headers
    )
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    a, b = first.parse().data, again.parse().data
    assert a and b and a[0].url and b[0].url
    assert httpx.get(a[0].url).content == httpx.get(b[0].url).content
    assert balance(native) == (99, 0)

    # Edits upload their inputs; a retry with the same key still maps to the same job.
    image = png_bytes(photo(alpha=True))
    for _ in range(2):
        client.images.edit(
            image=image,
            prompt="a window",
            model="tiny-sd-inpaint",
            extra_headers={"Idempotency-Key": "edit-1"},
        )
    assert balance(native) == (98, 0)
    with pytest.raises(openai.UnprocessableEntityError):  # same key, different request
        client.images.generate(prompt="a dog", model="tiny-sd", extra_headers=headers)


def test_timeout_is_504_and_cancels(tiny: TinyModels, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data", models_path=tiny.dir, worker_threads=1, max_wait_s=0.05
    )
    with LiveServer(settings) as server:
        _, key = server.account(credits=10)
        client = OpenAI(base_url=f"{server.url}/v1", api_key=key)
        with client, pytest.raises(openai.InternalServerError) as e:
            client.images.generate(
                prompt="a cat", model="tiny-sd", size="256x256", extra_body={"steps": 100}
            )
        assert (e.value.status_code, e.value.code) == (504, "timeout")
        assert "canceled" in e.value.message
        assert e.value.response.headers["x-should-retry"] == "false"
        with server.client(key) as native:
            deadline = time.monotonic() + 60
            while balance(native) != (10, 0):
                assert time.monotonic() < deadline, balance(native)
                time.sleep(0.1)
            jobs = native.get("/v1/jobs").json()["data"]
        assert [j["status"] for j in jobs] == ["canceled"]
