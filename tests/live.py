"""A real uvicorn server in a background thread, plus small client helpers for tests."""

from __future__ import annotations

import io
import socket
import threading
import time
from typing import Any

import httpx
import numpy as np
import uvicorn
from PIL import Image

from pixelforge.app import create_app
from pixelforge.services import Services
from pixelforge.settings import Settings
from pixelforge.web.serving import uvicorn_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def png_bytes(arr: np.ndarray[Any, Any] | Image.Image) -> bytes:
    img = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


class LiveServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn_config(  # what `pixelforge serve` runs, slow-client guards included
            self.app,
            settings,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            ws="websockets-sansio",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(15)

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def client(self, key: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)

    def account(
        self, *, credits: int = 100, email: str | None = None, password: str | None = None
    ) -> tuple[str, str]:
        """(account id, API key) for a new account."""
        import uuid

        acc, key = self.services.accounts.create_account(
            email=email or f"user-{uuid.uuid4().hex[:8]}@example.com",
            password=password,
            credits=credits,
        )
        return acc.id, key.plaintext

    def upload(self, client: httpx.Client, data: bytes, name: str = "x.png") -> dict[str, Any]:
        r = client.post("/v1/media", files={"file": (name, data, "image/png")})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def wait_job(self, client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            body: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
            if body["status"] in ("succeeded", "failed", "canceled"):
                return body
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {body['status']}")
            time.sleep(0.05)
