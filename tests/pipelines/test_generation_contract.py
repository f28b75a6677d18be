"""Every diffusion pipeline keeps the same contract: seeds, one event per step, cancel."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PIL import Image
from skimage import data
from websockets.sync.client import connect

from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer
from tests.pipelines.test_generation import Session

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def srv(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("contract") / "data"
    with LiveServer(make_settings(data_dir, models_path=tiny.dir, worker_threads=1)) as server:
        yield server
        for session in Session.opened:
            session.http.close()
        Session.opened.clear()


def _inputs(s: Session) -> dict[str, str]:
    photo = Image.fromarray(data.astronaut()).resize((64, 64))
    mask = Image.new("RGB", (64, 64))
    mask.paste((255, 255, 255), (16, 16, 48, 48))
    pose = Image.fromarray(data.astronaut()).crop((0, 0, 384, 512))
    return {"image": s.upload(photo), "mask": s.upload(mask), "pose": s.upload(pose)}


# pipeline -> params for `steps` denoising steps (strength 1 so steps are not scaled down)
CASES: dict[str, Callable[[dict[str, str], int], dict[str, Any]]] = {
    "text_to_image": lambda m, n: {
        "prompt": "a cat",
        "model": "tiny-sd",
        "steps": n,
        "width": 32,
        "height": 32,
    },
    "image_to_image": lambda m, n: {
        "prompt": "a cat",
        "model": "tiny-sd",
        "steps": n,
        "image": m["image"],
        "strength": 1.0,
    },
    "inpaint": lambda m, n: {
        "prompt": "a hat",
        "model": "tiny-sd-inpaint",
        "steps": n,
        "image": m["image"],
        "mask": m["mask"],
    },
    "outpaint": lambda m, n: {
        "prompt": "sky",
        "model": "tiny-sd-inpaint",
        "steps": n,
        "image": m["image"],
        "left": 8,
    },
    "edit": lambda m, n: {
        "prompt": "make it winter",
        "model": "tiny-pix2pix",
        "steps": n,
        "image": m["image"],
    },
    "image_to_video": lambda m, n: {
        "model": "tiny-svd",
        "steps": n,
        "image": m["image"],
        "frames": 2,
    },
    "pose_transfer": lambda m, n: {
        "prompt": "a dancer",
        "model": "tiny-controlnet-openpose",
        "steps": n,
        "pose_image": m["pose"],
        "width": 32,
        "height": 48,
    },
}


@pytest.mark.parametrize("pipeline", sorted(CASES))
def test_seed_steps_and_cancel(srv: LiveServer, pipeline: str) -> None:
    s = Session(srv, credits=20)
    media = _inputs(s)
    params = {**CASES[pipeline](media, 3), "seed": 21}

    # Same seed -> identical bytes; another seed -> different; one event per step.
    first, events = s.run(pipeline, params)
    assert first["status"] == "succeeded", first
    assert [e["step"] for e in events if e["type"] == "progress"] == [1, 2, 3]
    same, _ = s.run(pipeline, params)
    other, _ = s.run(pipeline, {**params, "seed": 22})
    assert s.download(same) == s.download(first)
    assert s.download(other) != s.download(first)
    spent = 20 - s.credits()[0]

    # Cancel at the first step of a long run: canceled, nothing charged.
    url = f"{srv.url.replace('http', 'ws')}/v1/events?token={s.key}"
    with connect(url) as ws:
        body = {"pipeline": pipeline, "params": {**CASES[pipeline](media, 100), "seed": 5}}
        job_id = s.http.post("/v1/jobs", json=body).json()["id"]
        ev: dict[str, Any] = {}
        while not (ev.get("job_id") == job_id and ev.get("type") == "progress"):
            ev = json.loads(ws.recv(timeout=120))
        s.http.delete(f"/v1/jobs/{job_id}")
        while not (ev.get("job_id") == job_id and ev["type"] in ("canceled", "succeeded")):
            ev = json.loads(ws.recv(timeout=120))
    job = s.http.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "canceled" and job["step"] < 100 and job["outputs"] == []
    assert s.credits() == (20 - spent, 0)
