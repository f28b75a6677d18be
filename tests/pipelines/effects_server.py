"""A real server with the photo-effect pipelines registered, and a client session for tests."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from PIL import Image
from skimage import data

from pixelforge.app import create_app
from pixelforge.pipelines.background import (
    BlurBackgroundPipeline,
    RemoveBackgroundPipeline,
    ReplaceBackgroundPipeline,
)
from pixelforge.pipelines.colorize import ColorizePipeline
from pixelforge.pipelines.contract import Pipeline
from pixelforge.pipelines.correct_color import CorrectColorPipeline, RelightPipeline
from pixelforge.pipelines.enhance import EnhancePipeline
from pixelforge.pipelines.registry import PipelineRegistry, default_registry
from pixelforge.pipelines.remove_object import RemoveObjectPipeline
from pixelforge.pipelines.stylize import StylizePipeline
from pixelforge.services import Services, build_services
from tests.conftest import make_settings
from tests.live import free_port, png_bytes

EFFECTS: list[Pipeline] = [
    RemoveBackgroundPipeline(),
    BlurBackgroundPipeline(),
    ReplaceBackgroundPipeline(),
    RemoveObjectPipeline(),
    ColorizePipeline(),
    CorrectColorPipeline(),
    RelightPipeline(),
    StylizePipeline(),
    EnhancePipeline(),
]


def effects_registry() -> PipelineRegistry:
    """The shipped pipelines plus the effects (skipping any already shipped)."""
    registry = default_registry()
    for pipeline in EFFECTS:
        if pipeline.name not in registry.names():
            registry.register(pipeline)
    return registry


class Session:
    """One account on the server, talking HTTP like any client."""

    def __init__(self, services: Services, url: str, credits: int = 200) -> None:
        import uuid

        _, key = services.accounts.create_account(
            email=f"fx-{uuid.uuid4().hex[:8]}@example.com", password=None, credits=credits
        )
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key.plaintext}"}, timeout=120
        )

    def upload(self, img: Image.Image | np.ndarray[Any, Any]) -> str:
        r = self.http.post("/v1/media", files={"file": ("x.png", png_bytes(img), "image/png")})
        assert r.status_code == 201, r.text
        media_id: str = r.json()["id"]
        return media_id

    def submit(self, pipeline: str, params: dict[str, Any]) -> httpx.Response:
        return self.http.post(
            "/v1/jobs",
            json={"pipeline": pipeline, "params": params},
            headers={"Prefer": "wait=60"},
        )

    def run(self, pipeline: str, params: dict[str, Any]) -> dict[str, Any]:
        """Submit and wait for the job's end (blocking mode, polling as a backstop)."""
        r = self.submit(pipeline, params)
        assert r.status_code in (200, 202), r.text
        job: dict[str, Any] = r.json()
        deadline = time.monotonic() + 120
        while job["status"] not in ("succeeded", "failed", "canceled"):
            assert time.monotonic() < deadline, f"job {job['id']} still {job['status']}"
            time.sleep(0.05)
            job = self.http.get(f"/v1/jobs/{job['id']}").json()
        return job

    def image(self, job: dict[str, Any], i: int = 0) -> Image.Image:
        assert job["status"] == "succeeded", job
        content = httpx.get(job["outputs"][i]["url"]).content
        img = Image.open(io.BytesIO(content))
        img.load()
        return img

    def credits(self) -> tuple[int, int]:
        me = self.http.get("/v1/me").json()
        return me["credits_available"], me["credits_held"]


class EffectsServer:
    def __init__(self, services: Services, url: str) -> None:
        self.services = services
        self.url = url
        self.sessions: list[Session] = []  # closed when the server stops

    def session(self, credits: int = 200) -> Session:
        session = Session(self.services, self.url, credits)
        self.sessions.append(session)
        return session


@contextmanager
def effects_server(data_dir: Path) -> Iterator[EffectsServer]:
    """uvicorn in a thread serving create_app with the effects registered; one worker."""
    settings = make_settings(data_dir, worker_threads=2)
    services = build_services(settings, registry=effects_registry())
    app = create_app(settings, services=services)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    effects = EffectsServer(services, f"http://127.0.0.1:{port}")
    try:
        yield effects
    finally:
        for session in effects.sessions:
            session.http.close()
        server.should_exit = True
        thread.join(15)


def photo(name: str, side: int | None = None) -> Image.Image:
    """A skimage.data photo as RGB, optionally scaled so its longest side is `side`."""
    pixels = getattr(data, name)()
    img = Image.fromarray(pixels).convert("RGB")
    if side is not None:
        scale = side / max(img.size)
        size = (round(img.width * scale), round(img.height * scale))
        img = img.resize(size, Image.Resampling.LANCZOS)
    return img


def rgb(img: Image.Image) -> np.ndarray[Any, Any]:
    return np.asarray(img.convert("RGB"), dtype=np.float64)


def lab(img: Image.Image | np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """CIE Lab (L 0..100) in float32."""
    import cv2

    pixels = np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img)
    return np.asarray(cv2.cvtColor(pixels.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab))
