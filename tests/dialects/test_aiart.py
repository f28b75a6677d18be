"""The AiArt dialect on a real server: the seed's own examples, only the base URL changed."""

from __future__ import annotations

import dataclasses
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from skimage import data
from sqlalchemy import select

from pixelforge.dialects.aiart.settings import options_of
from pixelforge.dialects.aiart.translate import STYLE_PRESETS
from pixelforge.models.base import IMAGE_TO_IMAGE, IMAGE_TO_VIDEO, TEXT_TO_IMAGE
from pixelforge.models.catalog import Catalog
from pixelforge.store.tables import Job, LedgerEntry
from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer, png_bytes

pytestmark = pytest.mark.slow

# The seed's example payload for POST /api/generate.
GENERATE_PAYLOAD = {
    "video_description": "A futuristic city skyline at sunset, with flying cars and neon "
    "holographic billboards, cyberpunk style",
    "negative_prompt": "blurry, low quality, distorted faces, poor lighting",
    "style_preset": "neon-punk",
    "aspect_ratio": "16:9",
    "output_format": "png",
    "seed": 0,
}


@pytest.fixture(scope="module")
def models_dir(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny models, made the defaults for every task the dialect uses (no model is sent)."""
    root = tmp_path_factory.mktemp("aiart-models")
    catalog = Catalog(root)
    for profile in tiny.profiles:
        catalog.add_profile(dataclasses.replace(profile, source=str(tiny.dir / profile.id)))
    catalog.set_default(TEXT_TO_IMAGE, "tiny-sd")
    catalog.set_default(IMAGE_TO_IMAGE, "tiny-sd")
    catalog.set_default(IMAGE_TO_VIDEO, "tiny-svd")
    return root


@pytest.fixture(scope="module")
def srv(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("aiart-data"), models_path=models_dir, worker_threads=1
    )
    with LiveServer(settings) as server:
        yield server


def base(srv: LiveServer) -> str:
    return f"{srv.url}/aiart"


def anonymous_id(srv: LiveServer) -> str:
    return srv.services.accounts.find(options_of(srv.services).anonymous_email).id


def available(srv: LiveServer, account_id: str) -> tuple[int, int]:
    b = srv.services.accounts.balance(account_id)
    return b.available, b.held


def ledger(srv: LiveServer, account_id: str) -> list[tuple[str | None, str]]:
    with srv.services.db.read() as s:
        q = select(LedgerEntry.job_id, LedgerEntry.kind).where(
            LedgerEntry.account_id == account_id, LedgerEntry.kind != "grant"
        )
        return sorted((job_id, kind) for job_id, kind in s.execute(q))


def photo_file(tmp_path: Path, side: int = 64) -> Path:
    path = tmp_path / "image.jpg"
    Image.fromarray(data.astronaut()).resize((side, side)).save(path, format="JPEG")
    return path


def assert_error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"], body
    message: str = body["error"]
    return message


# -- text to image -----------------------------------------------------------------------------
def test_generate_seed_example_charges_once(srv: LiveServer) -> None:
    anon = anonymous_id(srv)
    before = available(srv, anon)
    url = f"{base(srv)}/api/generate"

    # The seed's Python snippet, with `requests` as httpx.
    headers = {"Content-Type": "application/json"}
    response = httpx.post(url, headers=headers, json=GENERATE_PAYLOAD, timeout=60)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["success"] is True
    assert result["message"] == "Image generated successfully"
    assert isinstance(result["seed"], int) and result["seed"] > 0  # seed 0 = random
    assert result["image_url"].startswith(f"{base(srv)}/images/generated_image_")
    assert result["image_url"].endswith(".png")
    image = httpx.get(result["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(image.content))
    assert (img.format, img.size) == ("PNG", (80, 48))  # 16:9 at the tiny model's area

    # The seed's curl example, raw body and all; a fixed seed reproduces the image.
    raw = (
        '{ "video_description": "A futuristic city skyline at sunset", '
        '"style_preset": "neon-punk", "aspect_ratio": "1:1", "output_format": "webp", '
        '"seed": 7 }'
    )
    r1 = httpx.post(url, content=raw, headers=headers, timeout=60)
    r2 = httpx.post(url, content=raw, headers=headers, timeout=60)
    assert r1.status_code == r2.status_code == 200, r1.text
    assert r1.json()["seed"] == 7 and r1.json()["image_url"].endswith(".webp")
    assert r1.json()["image_url"] != r2.json()["image_url"]  # two results...
    assert httpx.get(r1.json()["image_url"]).content == httpx.get(r2.json()["image_url"]).content

    # Three successes, three credits, each captured exactly once.
    assert available(srv, anon) == (before[0] - 3, 0)
    entries = ledger(srv, anon)
    by_job: dict[str | None, list[str]] = {}
    for job_id, kind in entries:
        by_job.setdefault(job_id, []).append(kind)
    assert all(kinds == ["capture", "hold"] for kinds in by_job.values()), by_job


def test_generate_retry_snippet_and_model_names(srv: LiveServer) -> None:
    url = f"{base(srv)}/api/generate"

    # The seed's generate_image_with_retry, verbatim but for the client and base URL.
    def generate_image_with_retry(
        prompt: str, max_retries: int = 3, backoff_factor: int = 2
    ) -> dict[str, Any]:
        payload = {"video_description": prompt}
        headers = {"Content-Type": "application/json"}
        for attempt in range(max_retries):
            response = httpx.post(url, headers=headers, json=payload, timeout=60)
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
            elif response.status_code == 429:
                retry_after = int(
                    response.headers.get("Retry-After", backoff_factor * (2**attempt))
                )
                time.sleep(retry_after)
                continue
            elif response.status_code >= 500:
                time.sleep(backoff_factor * (2**attempt))
                continue
            else:
                error_data: dict[str, Any] = response.json()
                return error_data
        return {"error": "Max retries exceeded"}

    ok = generate_image_with_retry("a lighthouse at dusk")
    assert ok["success"] is True and "/images/" in ok["image_url"], ok
    assert generate_image_with_retry("")["error"].startswith("video_description")

    for model in ("imagen-4", "stable-diffusion-3.5-ultra", "tiny-sd"):
        r = httpx.post(url, json={"video_description": "a cat", "model": model}, timeout=60)
        assert r.status_code == 200, (model, r.text)
    assert "model" in assert_error(
        httpx.post(url, json={"video_description": "a cat", "model": "dall-e-9"}), 400
    )

    # A retry with the same Idempotency-Key gets the same image and is not charged again.
    anon = anonymous_id(srv)
    before = available(srv, anon)
    headers = {"Idempotency-Key": "order-42"}
    first, again = (
        httpx.post(url, json={"video_description": "a cat"}, headers=headers, timeout=60)
        for _ in range(2)
    )
    assert first.status_code == again.status_code == 200, first.text
    assert first.json() == again.json()
    assert available(srv, anon) == (before[0] - 1, 0)
    changed = httpx.post(url, json={"video_description": "a dog"}, headers=headers)
    assert changed.status_code == 422 and list(changed.json()) == ["error"]


def test_generate_bad_requests_are_400_and_free(srv: LiveServer) -> None:
    anon = anonymous_id(srv)
    before = available(srv, anon)
    url = f"{base(srv)}/api/generate"
    assert "video_description" in assert_error(httpx.post(url, json={}), 400)
    assert_error(httpx.post(url, json={"video_description": "   "}), 400)
    assert_error(httpx.post(url, content=b"not json", headers={"content-type": "text/plain"}), 400)
    bad = {
        "style_preset": "vaporwave",
        "aspect_ratio": "21:9",
        "output_format": "gif",
        "seed": -1,
    }
    for field, value in bad.items():
        msg = assert_error(httpx.post(url, json={**GENERATE_PAYLOAD, field: value}), 400)
        assert field in msg, msg
    # Every preset the seed lists is a catalog style, and is accepted.
    assert set(STYLE_PRESETS.values()) <= set(srv.services.catalog.style_names())
    assert len(STYLE_PRESETS) == 16
    for preset in ("3d-model", "analog-film", "modeling-compound", "tile-texture"):
        r = httpx.post(url, json={"video_description": "a cat", "style_preset": preset}, timeout=60)
        assert r.status_code == 200, (preset, r.text)
    assert available(srv, anon) == (before[0] - 4, 0)


def test_failed_job_is_400_and_not_charged(srv: LiveServer) -> None:
    anon = anonymous_id(srv)
    before = available(srv, anon)
    body = {"video_description": "a cat", "model": "tiny-svd"}  # a model that cannot do this
    msg = assert_error(httpx.post(f"{base(srv)}/api/generate", json=body, timeout=60), 400)
    assert "tiny-svd" in msg
    assert available(srv, anon) == before
    with srv.services.db.read() as s:
        job = s.scalars(select(Job).order_by(Job.created_at.desc()).limit(1)).one()
    assert job.status == "failed"
    assert [k for j, k in ledger(srv, anon) if j == job.id] == ["hold", "void"]


# -- image to image ----------------------------------------------------------------------------
def test_img2img_seed_snippet(srv: LiveServer, tmp_path: Path) -> None:
    anon = anonymous_id(srv)
    before = available(srv, anon)
    url = f"{base(srv)}/api/img2img"
    with open(photo_file(tmp_path), "rb") as img_file:
        files = {"image": ("image.jpg", img_file, "image/jpeg")}
        data_ = {
            "prompt": "Transform this into a watercolor painting with vibrant colors and "
            "detailed brushstrokes",
            "negative_prompt": "blurry, low quality, distorted",
            "strength": "0.8",
            "style_preset": "cinematic",
            "aspect_ratio": "1:1",
            "output_format": "png",
            "seed": "0",
        }
        response = httpx.post(url, files=files, data=data_, timeout=60)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["success"] is True
    assert result["message"] == "Image transformed successfully"
    assert isinstance(result["seed"], int) and result["seed"] > 0
    assert result["image_url"].startswith(f"{base(srv)}/processed_images/img2img_transform_")
    image = httpx.get(result["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == (64, 64)
    assert available(srv, anon) == (before[0] - 1, 0)

    # Defaults only (no optional field), a WEBP upload.
    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((64, 48)).save(buf, format="WEBP")
    r = httpx.post(
        url, files={"image": ("a.webp", buf.getvalue())}, data={"prompt": "a cat"}, timeout=60
    )
    assert r.status_code == 200, r.text
    img = Image.open(io.BytesIO(httpx.get(r.json()["image_url"]).content))
    assert img.size[0] == img.size[1]  # default aspect ratio 1:1
    assert available(srv, anon) == (before[0] - 2, 0)

    # A retry of the upload with the same Idempotency-Key is the same job, charged once:
    # the photo sent again is the same input, not a different request under that key.
    headers = {"Idempotency-Key": "transform-7"}
    first, again = (
        httpx.post(
            url,
            files={"image": ("a.webp", buf.getvalue())},
            data={"prompt": "a dog"},
            headers=headers,
            timeout=60,
        )
        for _ in range(2)
    )
    assert first.status_code == again.status_code == 200, again.text
    assert first.json() == again.json()
    assert available(srv, anon) == (before[0] - 3, 0)


def test_upload_errors_413_415_400(srv: LiveServer) -> None:
    anon = anonymous_id(srv)
    before = available(srv, anon)
    url = f"{base(srv)}/api/img2img"
    limit = srv.settings.max_upload_bytes
    assert limit == 10 * 1024 * 1024  # the seed's 10MB
    oversize = b"\x89PNG\r\n\x1a\n" + b"\0" * (limit - 7)
    r = httpx.post(url, files={"image": ("big.png", oversize)}, data={"prompt": "x"}, timeout=60)
    assert "10 MB" in assert_error(r, 413)
    r = httpx.post(f"{base(srv)}/api/img2video", files={"image": ("big.png", oversize)}, timeout=60)
    assert_error(r, 413)

    text = b"hello, this is not an image"
    r = httpx.post(url, files={"image": ("a.txt", text, "text/plain")}, data={"prompt": "x"})
    assert "JPG, PNG or WEBP" in assert_error(r, 415)
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    r = httpx.post(f"{base(srv)}/api/img2video", files={"image": ("a.gif", gif.getvalue())})
    assert_error(r, 415)

    good = png_bytes(Image.new("RGB", (64, 64)))
    assert "image" in assert_error(httpx.post(url, data={"prompt": "x"}), 400)
    assert "prompt" in assert_error(httpx.post(url, files={"image": ("a.png", good)}), 400)
    r = httpx.post(url, files={"image": ("a.png", good)}, data={"prompt": "x", "strength": "2"})
    assert "strength" in assert_error(r, 400)
    r = httpx.post(url, files={"image": ("a.png", good[:40])}, data={"prompt": "x"})
    assert "JPG, PNG or WEBP" in assert_error(r, 415)  # a PNG signature, nothing readable
    noisy = png_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))
    r = httpx.post(url, files={"image": ("a.png", noisy[:200])}, data={"prompt": "x"})
    assert "truncated" in assert_error(r, 400)  # a readable header, cut-off pixels
    assert available(srv, anon) == before


# -- result files ------------------------------------------------------------------------------
def test_result_files_are_unguessable_and_404_otherwise(srv: LiveServer) -> None:
    r = httpx.post(f"{base(srv)}/api/generate", json={"video_description": "a cat"}, timeout=60)
    url = r.json()["image_url"]
    assert httpx.get(url).status_code == 200
    head = httpx.head(url)
    assert head.status_code == 200 and head.headers["content-type"] == "image/png"

    name = url.rsplit("/", 1)[1]
    stem_id, exp, sig, ext = name.split(".")
    tampered = [
        f"{stem_id}.{exp}.{sig[:-2]}AA.{ext}",  # signature changed
        f"{stem_id}.{int(exp) + 1}.{sig}.{ext}",  # expiry moved
        f"{stem_id}.{exp}.{sig}.jpg",  # another extension
        f"{stem_id}.png",  # the bare media id
        "generated_image_123456.png",  # the seed's example name
        "nothing",
    ]
    for bad in tampered:
        assert "not found" in assert_error(httpx.get(f"{base(srv)}/images/{bad}"), 404)
    # The same name under another folder (its stem differs) is not a file there.
    assert_error(httpx.get(f"{base(srv)}/processed_images/{name}"), 404)
    assert_error(httpx.get(f"{base(srv)}/processed_videos/{name}"), 404)
    # Renamed to the other folders' stems, a text-to-image result is still not theirs.
    rest = name.removeprefix("generated_image_")
    assert_error(httpx.get(f"{base(srv)}/processed_images/img2img_transform_{rest}"), 404)
    assert_error(httpx.get(f"{base(srv)}/processed_videos/video_{rest}"), 404)
    # Unknown routes under the prefix answer in the seed's shape too.
    assert_error(httpx.get(f"{base(srv)}/api/nothing-here"), 404)


# -- image to video ----------------------------------------------------------------------------
def test_img2video_polls_202_then_200_with_mp4(
    models_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path / "data", models_path=models_dir, workers=0, max_wait_s=0.5)
    with LiveServer(settings) as srv:
        anon = anonymous_id(srv)
        before = available(srv, anon)
        api = base(srv)

        # Without a worker a blocking call runs out of time: 503 to retry, job canceled, free.
        busy = httpx.post(f"{api}/api/generate", json={"video_description": "a cat"})
        assert "retry" in assert_error(busy, 503) and busy.headers["Retry-After"] == "10"
        with srv.services.db.read() as s:
            assert [j.status for j in s.scalars(select(Job))] == ["canceled"]
        assert available(srv, anon) == before
        image_path = str(photo_file(tmp_path))

        # The seed's Python snippet: start the generation...
        upload_url = f"{api}/api/img2video"
        params = {"seed": 0, "cfg_scale": 1.5, "motion_bucket_id": 127}
        with open(image_path, "rb") as f:
            files = {"image": (os.path.basename(image_path), f)}
            response = httpx.post(upload_url, files=files, data=params)
        generation_data = response.json()
        assert response.is_success, generation_data
        assert generation_data["success"] is True
        assert generation_data["message"] == (
            "Video generation started. Poll for results using the returned ID."
        )
        generation_id = generation_data["id"]
        result_url = f"{api}/api/img2video/result/{generation_id}"

        # ...no worker yet, so it is still in progress...
        pending = httpx.get(result_url)
        assert pending.status_code == 202
        assert pending.json() == {
            "status": "in-progress",
            "message": "Video generation is still in progress. Try again in a few seconds.",
        }
        assert available(srv, anon) == (before[0] - 1, 1)  # held, not charged

        # ...then a worker starts and the snippet's poll loop runs to completion.
        srv.services.pool.workers = 1
        srv.services.pool.start()
        result: dict[str, Any] = {}
        for _attempt in range(1200):
            response = httpx.get(result_url)
            if response.status_code == 202:
                time.sleep(0.05)
                continue
            assert response.status_code == 200, response.text
            result = response.json()
            print(f"Video URL: {api}{result['video_url']}")
            break
        assert result["status"] == "complete" and result["finish_reason"] == "SUCCESS"
        assert isinstance(result["seed"], str) and int(result["seed"]) > 0
        assert result["video_url"].startswith("/processed_videos/video_")
        assert result["video_url"].endswith(".mp4")
        assert capsys.readouterr().out.startswith(f"Video URL: {api}/processed_videos/")

        video = httpx.get(f"{api}{result['video_url']}")
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert video.content[4:8] == b"ftyp"  # an MP4 container

        # Polling again changes nothing; the charge happened once.
        assert httpx.get(result_url).json() == result
        assert available(srv, anon) == (before[0] - 1, 0)
        assert [k for j, k in ledger(srv, anon) if j == generation_id] == ["capture", "hold"]

        assert "not found" in assert_error(httpx.get(f"{api}/api/img2video/result/nope"), 404)
        bad = httpx.post(
            upload_url,
            files={"image": ("a.png", png_bytes(Image.new("RGB", (32, 32))))},
            data={"motion_bucket_id": 0},
        )
        assert "motion_bucket_id" in assert_error(bad, 400)


# -- limits and keys ---------------------------------------------------------------------------
def test_per_ip_rate_limit_429_with_retry_after(models_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data",
        models_path=models_dir,
        rate_limit_enabled=True,
        rate_limit_per_ip="2/2seconds",
    )
    with LiveServer(settings) as srv:
        url = f"{base(srv)}/api/generate"
        responses = [httpx.post(url, json={}) for _ in range(3)]
        assert [r.status_code for r in responses] == [400, 400, 429]
        assert "retry after" in assert_error(responses[2], 429)
        retry_after = int(responses[2].headers["Retry-After"])
        assert 1 <= retry_after <= 2

        # The seed's retry loop: honours Retry-After, then succeeds.
        for _attempt in range(3):
            response = httpx.post(url, json={"video_description": "a cat"}, timeout=60)
            if response.status_code == 429:
                time.sleep(int(response.headers["Retry-After"]))
                continue
            break
        assert response.status_code == 200, response.text


def test_require_key(models_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data",
        models_path=models_dir,
        dialect_options={"aiart": {"require_key": True, "anonymous_credits": 5}},
    )
    with LiveServer(settings) as srv:
        anon = anonymous_id(srv)
        assert available(srv, anon) == (5, 0)  # created at startup with its grant
        url = f"{base(srv)}/api/generate"
        body = {"video_description": "a cat"}
        assert "authentication" in assert_error(httpx.post(url, json=body), 401)
        r = httpx.post(f"{base(srv)}/api/img2img", data={"prompt": "x"})
        assert_error(r, 401)
        assert_error(httpx.get(f"{base(srv)}/api/img2video/result/job_x"), 401)
        bad = httpx.post(url, json=body, headers={"Authorization": "Bearer pf_nope"})
        assert_error(bad, 401)

        account_id, key = srv.account(credits=3)
        r = httpx.post(url, json=body, headers={"X-API-Key": key}, timeout=60)
        assert r.status_code == 200, r.text
        assert httpx.get(r.json()["image_url"]).status_code == 200  # the URL needs no key
        assert available(srv, account_id) == (2, 0)
        assert available(srv, anon) == (5, 0)

        spec = httpx.get(f"{srv.url}/openapi.json")  # the routes document cleanly
        assert spec.status_code == 200
        assert "/aiart/api/img2video/result/{generation_id}" in spec.json()["paths"]
