"""Hair edits, age and create-clothes through the real server with the tiny inpainting model,
on real photos (scikit-image's astronaut; its coffee cup for "no face")."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer, png_bytes

pytestmark = pytest.mark.slow

HAIR = ("change_hairstyle", "try_wig", "hair_extension", "hair_bangs", "hair_volume")
PORTRAIT_TOOLS = (*HAIR, "age")
TASKS = (*PORTRAIT_TOOLS, "extract_clothes")
# One style of each task, as a user would pick it from the listing.
STYLE = {
    "change_hairstyle": "pixie-cut",
    "try_wig": "wig-auburn",
    "hair_extension": "waist-length",
    "hair_bangs": "curtain-bangs",
    "hair_volume": "volume-full",
    "age": "senior",
    "extract_clothes": "jacket",
}
TINY = {"model": "tiny-sd-inpaint", "steps": 2, "seed": 3}


class User:
    """A new account and its HTTP client (closed when its server stops)."""

    opened: ClassVar[list[httpx.Client]] = []

    def __init__(self, srv: LiveServer, credits: int = 30) -> None:
        self.srv = srv
        _, key = srv.account(credits=credits)
        self.http = srv.client(key)
        User.opened.append(self.http)

    def upload(self, img: Image.Image, *, jpeg: bool = False) -> str:
        if not jpeg:
            return str(self.srv.upload(self.http, png_bytes(img))["id"])
        r = self.http.post("/v1/media", files={"file": ("x.jpg", jpeg_bytes(img), "image/jpeg")})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def run(self, pipeline: str, params: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post("/v1/jobs", json={"pipeline": pipeline, "params": params})
        assert r.status_code == 202, r.text
        return self.srv.wait_job(self.http, r.json()["id"], timeout=120)

    def image(self, job: dict[str, Any], i: int = 0) -> Image.Image:
        assert job["status"] == "succeeded", job
        img = Image.open(io.BytesIO(httpx.get(job["outputs"][i]["url"]).content))
        img.load()
        return img

    def download(self, media_id: str) -> Image.Image:
        r = self.http.get(f"/v1/media/{media_id}")
        assert r.status_code == 200, r.text
        img = Image.open(io.BytesIO(httpx.get(r.json()["url"]).content))
        img.load()
        return img

    def credits(self) -> tuple[int, int]:
        me = self.http.get("/v1/me").json()
        return me["credits_available"], me["credits_held"]


def _serve(data_dir: Path, **settings: object) -> Iterator[LiveServer]:
    with LiveServer(make_settings(data_dir, worker_threads=1, **settings)) as server:
        yield server
        for client in User.opened:
            client.close()
        User.opened.clear()


@pytest.fixture(scope="module")
def srv(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from _serve(tmp_path_factory.mktemp("portrait") / "data", models_path=tiny.dir)


def portrait() -> Image.Image:
    """The astronaut down to her chest, her face about 135 px wide (the hair tools want at
    least 128), with room around the head."""
    head = Image.fromarray(data.astronaut()).crop((0, 0, 512, 420))
    return head.resize((742, 609), Image.Resampling.LANCZOS)


def two_people() -> Image.Image:
    left = portrait().resize((320, 320), Image.Resampling.LANCZOS)
    both = Image.new("RGB", (640, 320))
    both.paste(left, (0, 0))
    both.paste(left.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (320, 0))
    return both


def coffee() -> Image.Image:
    return Image.fromarray(data.coffee()).resize((400, 300))


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def pixels(img: Image.Image) -> np.ndarray[Any, Any]:
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def _unchanged_outside(
    before: np.ndarray[Any, Any], after: np.ndarray[Any, Any], box: list[int]
) -> None:
    x, y, w, h = box
    outside = np.ones(before.shape[:2], dtype=bool)
    outside[y : y + h, x : x + w] = False
    assert outside.mean() > 0.2
    changed = np.any(before != after, axis=-1)
    ys, xs = np.nonzero(changed & outside)
    assert len(ys) == 0, (
        f"changed outside {box}: rows {ys.min()}-{ys.max()}, cols {xs.min()}-{xs.max()}"
    )


@pytest.mark.parametrize("pipeline", PORTRAIT_TOOLS)
def test_portrait_edit_repaints_only_its_area(srv: LiveServer, pipeline: str) -> None:
    u = User(srv)
    photo = portrait()
    jpeg = pipeline == "change_hairstyle"  # Perfect takes jpg only for this one
    media = u.upload(photo, jpeg=jpeg)
    before = pixels(u.download(media))  # the photo as the server stored it

    job = u.run(pipeline, {"image": media, "style": STYLE[pipeline], **TINY})
    after = pixels(u.image(job))
    result = job["result"]
    assert after.shape == before.shape  # the input's size
    assert 0.01 < result["mask_coverage"] < 0.6
    assert result["style"] == STYLE[pipeline] and result["model"] == "tiny-sd-inpaint"
    # Only the repainted area (with its feathering and context margin) changes ...
    _unchanged_outside(before, after, result["edit_box"])
    # ... and it does change (the tiny model paints noise).
    assert np.abs(after - before).mean() > 1
    # The eyes stay put: their pixels are untouched by the hair tools and kept out of the
    # age mask (only its feathering reaches them).
    fx, fy, fw, fh = result["face"]["box"]
    eye_row = slice(fy + fh // 3, fy + fh // 2)
    if pipeline in HAIR and pipeline != "hair_bangs":
        centre = slice(fx + fw // 4, fx + 3 * fw // 4)
        assert np.array_equal(before[eye_row, centre], after[eye_row, centre])
    assert u.credits() == (29, 0)


def test_free_prompt_seed_and_unknown_style(srv: LiveServer) -> None:
    u = User(srv)
    media = u.upload(portrait())
    params = {"image": media, "prompt": "auburn", **TINY}
    job = u.run("hair_volume", params)
    assert job["status"] == "succeeded", job
    assert job["result"]["style"] is None and job["result"]["prompt"] == "auburn"
    again = u.run("hair_volume", params)
    assert np.array_equal(pixels(u.image(job)), pixels(u.image(again)))
    styled = u.run("hair_bangs", {"image": media, "style": "micro-bangs", "prompt": "red", **TINY})
    assert "micro bangs, red" in styled["result"]["prompt"]
    bad = u.run("try_wig", {"image": media, "style": "pixie-cut", **TINY})  # not a wig style
    assert bad["status"] == "failed" and bad["error"]["code"] == "invalid_parameter"
    assert "try_wig" in bad["error"]["message"]
    assert u.credits() == (27, 0)


def test_extract_clothes_collage_and_mask(srv: LiveServer) -> None:
    u = User(srv)
    photo = Image.fromarray(data.astronaut()).resize((320, 320), Image.Resampling.LANCZOS)
    job = u.run("extract_clothes", {"image": u.upload(photo), "style": "jacket", **TINY})
    assert job["status"] == "succeeded", job
    result = job["result"]
    collage, mask = u.image(job, 0).convert("RGB"), u.image(job, 1).convert("L")
    x, y, w, h = result["clothes_box"]
    assert collage.size == (w, h) and mask.size == photo.size
    assert 0.1 < result["mask_coverage"] < 0.6 and result["completed_share"] > 0
    # The clothes mask: below her chin (the face is in the photo's upper third).
    ys, xs = np.nonzero(np.asarray(mask) > 127)
    assert ys.min() > 0.25 * photo.height and 0.2 * photo.width < xs.mean() < 0.7 * photo.width
    # The collage: the clothes on a clean background (its corners are the plain grey).
    arr = pixels(collage)
    assert np.array_equal(arr[0, 0], [245, 245, 245]) and np.array_equal(arr[-1, 0], arr[0, 0])
    # Where the clothes were kept as they are, the collage shows the photo's pixels.
    cut = np.asarray(mask)[y : y + h, x : x + w] > 127
    same = np.all(arr == pixels(photo)[y : y + h, x : x + w], axis=-1)
    assert np.mean(same[cut]) > 0.5
    assert u.credits() == (29, 0)


@pytest.mark.parametrize("task", TASKS)
def test_styles_are_listed_by_task_and_paginated(srv: LiveServer, task: str) -> None:
    u = User(srv)
    shipped = json.loads(
        (resources.files("pixelforge.catalog") / "data" / "styles.json").read_text()
    )
    expected = [s["name"] for s in shipped["styles"] if s.get("task") == task]
    groups = u.http.get("/v1/style-groups", params={"task": task, "page_size": 1}).json()
    assert len(groups["data"]) == 1 and groups["data"][0]["task"] == task
    names: list[str] = []
    token: str | None = None
    while True:
        query: dict[str, Any] = {"task": task, "page_size": 2}
        if token:
            query["starting_token"] = token
        page = u.http.get("/v1/styles", params=query).json()
        assert len(page["data"]) <= 2
        names += [s["name"] for s in page["data"]]
        token = page["next_token"]
        if token is None:
            break
    assert names == expected and STYLE[task] in names and len(names) >= 3


@pytest.mark.parametrize(
    ("pipeline", "image", "code"),
    [
        ("change_hairstyle", "coffee", "error_no_face"),
        ("hair_volume", "two", "error_multiple_people"),
        ("age", "coffee", "error_no_face"),
        ("age", "two", "error_multiple_people"),
        ("extract_clothes", "coffee", "error_no_shoulder"),
        ("extract_clothes", "two", "error_multiple_people"),
    ],
)
def test_portrait_checks_are_not_charged(
    srv: LiveServer, pipeline: str, image: str, code: str
) -> None:
    u = User(srv)
    photo = coffee() if image == "coffee" else two_people()
    media = u.upload(photo, jpeg=pipeline == "change_hairstyle")
    job = u.run(pipeline, {"image": media, **TINY})
    assert job["status"] == "failed" and job["error"]["code"] == code, job
    assert u.credits() == (30, 0)


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[LiveServer]:
    """A server whose models directory holds no inpainting model."""
    empty = tmp_path / "models"
    empty.mkdir()
    yield from _serve(tmp_path / "data", models_path=empty)


def test_without_the_inpainting_model_fails_uncharged(bare: LiveServer) -> None:
    u = User(bare)
    media = u.upload(portrait())
    for pipeline in ("hair_bangs", "age", "extract_clothes"):
        job = u.run(pipeline, {"image": media})
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "model_unavailable"
        assert "sd-inpainting" in job["error"]["message"]
    assert u.credits() == (30, 0)
