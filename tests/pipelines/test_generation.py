"""Generation pipelines through the real server with the tiny random-weight models."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from PIL import Image
from skimage import data
from websockets.sync.client import connect

from pixelforge.catalog.types import LoraTemplate
from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer, png_bytes

pytestmark = pytest.mark.slow


@pytest.fixture
def srv(tiny: TinyModels, tmp_path: Path) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path / "data", models_path=tiny.dir, worker_threads=1)
    with LiveServer(settings) as server:
        yield server
        for session in Session.opened:
            session.http.close()
        Session.opened.clear()


class Session:
    opened: ClassVar[list[Session]] = []  # closed by the `srv` fixture

    def __init__(self, srv: LiveServer, credits: int = 100) -> None:
        self.srv = srv
        _, self.key = srv.account(credits=credits)
        self.http = srv.client(self.key)
        Session.opened.append(self)

    def upload(self, img: Image.Image) -> str:
        media_id: str = self.srv.upload(self.http, png_bytes(img))["id"]
        return media_id

    def run(
        self, pipeline: str, params: dict[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Submit, follow the account's event stream to the end; (job, its events)."""
        url = f"{self.srv.url.replace('http', 'ws')}/v1/events?token={self.key}"
        with connect(url) as ws:
            r = self.http.post("/v1/jobs", json={"pipeline": pipeline, "params": params})
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            events: list[dict[str, Any]] = []
            while not events or events[-1]["type"] not in ("succeeded", "failed", "canceled"):
                ev = json.loads(ws.recv(timeout=120))
                if ev.get("job_id") == job_id:
                    events.append(ev)
        return self.http.get(f"/v1/jobs/{job_id}").json(), events

    def download(self, job: dict[str, Any], i: int = 0) -> bytes:
        return httpx.get(job["outputs"][i]["url"]).content

    def credits(self) -> tuple[int, int]:
        me = self.http.get("/v1/me").json()
        return me["credits_available"], me["credits_held"]


def _photo(side: int = 64) -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((side, side))


def test_text_to_image_size_format_seed_progress(srv: LiveServer) -> None:
    s = Session(srv)
    params = {
        "prompt": "a cat",
        "model": "tiny-sd",
        "steps": 3,
        "width": 64,
        "height": 48,
        "seed": 7,
        "output_format": "webp",
    }
    job, events = s.run("text_to_image", params)
    assert job["status"] == "succeeded", job
    assert [e["step"] for e in events if e["type"] == "progress"] == [1, 2, 3]
    img = Image.open(io.BytesIO(s.download(job)))
    assert (img.format, img.size) == ("WEBP", (64, 48))
    assert job["seed"] == 7 and job["result"]["seeds"] == [7]

    again, _ = s.run("text_to_image", params)
    other, _ = s.run("text_to_image", {**params, "seed": 8})
    assert s.download(again) == s.download(job)
    assert s.download(other) != s.download(job)
    assert s.credits() == (97, 0)


def test_text_to_image_batch_aspect_ratio_and_style(srv: LiveServer) -> None:
    s = Session(srv)
    params = {
        "prompt": "a city",
        "model": "tiny-sd",
        "steps": 2,
        "aspect_ratio": "16:9",
        "num_images": 2,
        "style": "neon-punk",
    }
    job, _ = s.run("text_to_image", params)
    assert job["status"] == "succeeded", job
    assert [(o["width"], o["height"]) for o in job["outputs"]] == [(80, 48), (80, 48)]
    assert s.download(job, 0) != s.download(job, 1)  # seed and seed + 1
    assert job["result"]["prompt"].startswith("neon punk style a city")
    assert s.credits() == (98, 0)  # one credit per image
    bad, _ = s.run("text_to_image", {**params, "style": "no-such-style"})
    assert bad["status"] == "failed" and bad["error"]["code"] == "invalid_parameter"
    assert s.credits() == (98, 0)


def test_image_to_image_inpaint_outpaint_edit(srv: LiveServer) -> None:
    s = Session(srv)
    image = s.upload(_photo(64))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    mask_id = s.upload(mask.convert("RGB"))

    job, events = s.run(
        "image_to_image",
        {"prompt": "a statue", "model": "tiny-sd", "image": image, "strength": 0.5, "steps": 4},
    )
    assert job["status"] == "succeeded", job
    assert (job["outputs"][0]["width"], job["outputs"][0]["height"]) == (64, 64)
    assert [e["step"] for e in events if e["type"] == "progress"] == [1, 2]  # 4 x 0.5

    job, _ = s.run(
        "inpaint",
        {
            "prompt": "a hat",
            "model": "tiny-sd-inpaint",
            "image": image,
            "mask": mask_id,
            "steps": 2,
        },
    )
    assert job["status"] == "succeeded", job
    painted = Image.open(io.BytesIO(s.download(job))).convert("RGB")
    assert painted.size == (64, 64)

    job, _ = s.run(
        "outpaint",
        {
            "prompt": "more sky",
            "model": "tiny-sd-inpaint",
            "image": image,
            "left": 16,
            "top": 8,
            "steps": 2,
        },
    )
    assert job["status"] == "succeeded", job
    assert (job["outputs"][0]["width"], job["outputs"][0]["height"]) == (80, 72)

    job, _ = s.run(
        "edit", {"prompt": "make it winter", "model": "tiny-pix2pix", "image": image, "steps": 2}
    )
    assert job["status"] == "succeeded", job
    assert (job["outputs"][0]["width"], job["outputs"][0]["height"]) == (64, 64)

    small = s.upload(_photo(32).convert("RGB"))
    bad, _ = s.run(
        "inpaint",
        {"prompt": "x", "model": "tiny-sd-inpaint", "image": image, "mask": small, "steps": 2},
    )
    assert bad["status"] == "failed" and "mask" in bad["error"]["message"]


def test_image_to_video_mp4_and_preview(srv: LiveServer) -> None:
    import av

    s = Session(srv)
    image = s.upload(_photo(64))
    params = {
        "image": image,
        "model": "tiny-svd",
        "frames": 3,
        "fps": 6,
        "steps": 2,
        "seed": 5,
        "motion_bucket_id": 100,
        "cfg_scale": 2.0,
    }
    job, events = s.run("image_to_video", params)
    assert job["status"] == "succeeded", job
    assert [e["step"] for e in events if e["type"] == "progress"] == [1, 2]
    video = next(o for o in job["outputs"] if o["content_type"] == "video/mp4")
    preview = next(o for o in job["outputs"] if o["content_type"] == "image/webp")
    with av.open(io.BytesIO(httpx.get(video["url"]).content)) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    assert len(frames) == 3 and frames[0].size == (32, 32)
    anim = Image.open(io.BytesIO(httpx.get(preview["url"]).content))
    assert getattr(anim, "n_frames", 1) == 3
    again, _ = s.run("image_to_video", params)
    assert (
        httpx.get(again["outputs"][0]["url"]).content == httpx.get(job["outputs"][0]["url"]).content
    )


def test_cancel_mid_run_is_not_charged(srv: LiveServer) -> None:
    s = Session(srv, credits=5)
    url = f"{srv.url.replace('http', 'ws')}/v1/events?token={s.key}"
    params = {"prompt": "slow", "model": "tiny-sd", "steps": 150, "width": 64, "height": 64}
    with connect(url) as ws:
        job_id = s.http.post(
            "/v1/jobs", json={"pipeline": "text_to_image", "params": params}
        ).json()["id"]
        while True:
            ev = json.loads(ws.recv(timeout=60))
            if ev["type"] == "progress" and ev["job_id"] == job_id:
                s.http.delete(f"/v1/jobs/{job_id}")
                break
        while ev["type"] not in ("canceled", "succeeded", "failed") or ev["job_id"] != job_id:
            ev = json.loads(ws.recv(timeout=60))
    job = s.http.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "canceled" and job["step"] < 150 and job["outputs"] == []
    assert s.credits() == (5, 0)


def test_missing_model_fails_with_pull_hint(srv: LiveServer) -> None:
    s = Session(srv, credits=3)
    job, _ = s.run("text_to_image", {"prompt": "a cat", "model": "sd-turbo"})
    assert job["status"] == "failed" and job["error"]["code"] == "model_unavailable"
    assert "pixelforge models pull sd-turbo" in job["error"]["message"]
    assert s.credits() == (3, 0)
    listed = {m["id"]: m for m in s.http.get("/v1/models").json()["data"]}
    assert listed["tiny-sd"]["available"] is True and listed["sd-turbo"]["available"] is False


def test_lora_changes_output_and_strength_zero_does_not(srv: LiveServer, tmp_path: Path) -> None:
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    # 1. A tiny LoRA for tiny-sd's UNet, with random (non-zero) weights.
    pipe = StableDiffusionPipeline.from_pretrained(
        str(srv.services.settings.models_dir / "tiny-sd")
    )
    torch.manual_seed(0)
    pipe.unet.add_adapter(
        LoraConfig(
            r=4,
            lora_alpha=4,
            init_lora_weights=False,
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        )
    )
    lora_dir = tmp_path / "lora"
    StableDiffusionPipeline.save_lora_weights(
        str(lora_dir), unet_lora_layers=get_peft_model_state_dict(pipe.unet)
    )
    srv.services.catalog.put_lora(
        LoraTemplate(id="tiny-lora", name="Tiny", type="IMAGE", source=str(lora_dir))
    )
    # 2. Same seed with and without it.
    s = Session(srv)
    base = {"prompt": "a cat", "model": "tiny-sd", "steps": 2, "seed": 3}
    plain, _ = s.run("text_to_image", base)
    with_lora, _ = s.run("text_to_image", {**base, "loras": [{"id": "tiny-lora", "strength": 1.0}]})
    zero, _ = s.run("text_to_image", {**base, "loras": [{"id": "tiny-lora", "strength": 0.0}]})
    after, _ = s.run("text_to_image", base)
    assert with_lora["status"] == zero["status"] == "succeeded", (with_lora, zero)
    assert s.download(with_lora) != s.download(plain)
    assert s.download(zero) == s.download(plain)
    assert s.download(after) == s.download(plain)  # the adapter did not stay loaded


def test_same_shape_jobs_run_as_one_batch(tiny: TinyModels, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "d", models_path=tiny.dir, worker_threads=1, workers=0)
    with LiveServer(settings) as server:
        s = Session(server, credits=10)
        shape = {"model": "tiny-sd", "steps": 2, "width": 32, "height": 32}
        ids = [
            s.http.post(
                "/v1/jobs",
                json={
                    "pipeline": "text_to_image",
                    "params": {**shape, "prompt": f"cat {i}", "seed": 10 + i},
                },
            ).json()["id"]
            for i in range(3)
        ]
        odd = s.http.post(
            "/v1/jobs",
            json={"pipeline": "text_to_image", "params": {**shape, "width": 64, "prompt": "dog"}},
        ).json()["id"]
        server.services.pool.workers = 1
        server.services.pool.start()
        jobs = [server.wait_job(s.http, i) for i in [*ids, odd]]
        assert [j["status"] for j in jobs] == ["succeeded"] * 4, jobs
        assert [j["result"].get("batch_size") for j in jobs] == [3, 3, 3, None]
        assert [j["result"]["seeds"] for j in jobs[:3]] == [[10], [11], [12]]
        images = {s.download(j) for j in jobs[:3]}
        assert len(images) == 3  # own seed and prompt each
        assert s.credits() == (6, 0)  # each charged once
        for session in Session.opened:
            session.http.close()
        Session.opened.clear()
