"""End to end on the real server: upload a photo, upscale it, follow the socket, download."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image
from skimage import data
from sqlalchemy import select
from websockets.sync.client import connect

from pixelforge.store.tables import LedgerEntry
from tests.live import LiveServer, png_bytes


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


def test_upload_upscale_follow_download(server: LiveServer) -> None:
    account_id, key = server.account(credits=10)
    photo = Image.fromarray(data.astronaut()).resize((128, 128), Image.Resampling.LANCZOS)
    with server.client(key) as c:
        media = server.upload(c, png_bytes(photo), "astronaut.png")
        assert (media["width"], media["height"]) == (128, 128)

        r = c.post(
            "/v1/jobs",
            json={"pipeline": "upscale", "params": {"image": media["id"], "scale": 2, "tile": 64}},
        )
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["status"] in ("queued", "running", "succeeded")
        assert job["polling_interval_ms"] > 0 and job["links"]["events"].startswith("ws://")

        # Follow the websocket to the end; the server closes it after the final event.
        events = []
        with connect(job["links"]["events"] + f"?token={key}", open_timeout=10) as ws:
            for raw in ws:
                events.append(json.loads(raw))
        assert events[-1]["type"] == "succeeded", events[-1]
        steps = [e for e in events if e["type"] == "progress"]
        assert all(0.0 <= e["progress"] <= 1.0 for e in events)
        assert [e["step"] for e in steps] == sorted(e["step"] for e in steps)

        done = c.get(f"/v1/jobs/{job['id']}").json()
        assert done["status"] == "succeeded" and done["progress"] == 1.0
        assert done["step"] == done["total"] == 4  # 128 px in 64 px tiles
        assert done["timings"]["run_s"] >= 0
        [out] = done["outputs"]

    # The signed URL works without any credentials.
    with server.client() as anon:
        r = anon.get(out["url"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    result = Image.open(io.BytesIO(r.content)).convert("RGB")
    assert result.size == (256, 256)
    bicubic = photo.resize((256, 256), Image.Resampling.BICUBIC)
    assert psnr(np.asarray(result), np.asarray(bicubic)) > 22.0

    # The ledger: one hold and exactly one capture, and the balance shows the charge.
    with server.services.db.read() as s:
        kinds = sorted(
            e.kind for e in s.scalars(select(LedgerEntry).where(LedgerEntry.job_id == job["id"]))
        )
    assert kinds == ["capture", "hold"]
    with server.client(key) as c:
        me = c.get("/v1/me").json()
    assert (me["credits_available"], me["credits_held"]) == (9, 0)
    assert me["id"] == account_id
