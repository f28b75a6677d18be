"""The Eventstation dialect through a real server: the seed's requests, shapes and codes."""

from __future__ import annotations

import base64
import io
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from skimage import data

from pixelforge.models.catalog import Catalog
from pixelforge.settings import Settings
from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer, png_bytes

ES = "/eventstation"
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def b64(img: Image.Image) -> str:
    return base64.b64encode(png_bytes(img)).decode()


def astronaut(side: int = 128) -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((side, side), Image.Resampling.LANCZOS)


def coffee() -> Image.Image:
    """A cup of coffee: no person, no face."""
    return Image.fromarray(data.coffee()).resize((120, 80), Image.Resampling.LANCZOS)


def decoded(text: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(text, validate=True)))
    img.load()
    return img


def poll(c: httpx.Client, job_id: str, timeout: float = 240) -> dict[str, Any]:
    """POST /v2/status/{job_id} until the job has ended."""
    deadline = time.monotonic() + timeout
    while True:
        r = c.post(f"{ES}/v2/status/{job_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        assert body["job_id"] == job_id
        if body["status"] in TERMINAL:
            return body
        assert body["status"] in ("IN_QUEUE", "IN_PROGRESS"), body
        assert set(body) - {"video_name"} == {"job_id", "status"}
        assert time.monotonic() < deadline, f"job {job_id} still {body['status']}"
        time.sleep(0.1)


def run(c: httpx.Client, path: str, body: dict[str, Any]) -> str:
    r = c.post(f"{ES}{path}", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "IN_QUEUE" and out["job_id"].startswith("job_"), out
    job_id: str = out["job_id"]
    return job_id


def credits(c: httpx.Client) -> tuple[int, int]:
    me = c.get("/v1/me").json()
    return me["credits_available"], me["credits_held"]


def settings_for(data_dir: Path, **overrides: Any) -> Settings:
    return make_settings(data_dir, dialects=["eventstation"], **overrides)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real server with no diffusion models: generation jobs fail (model_unavailable)."""
    with LiveServer(settings_for(tmp_path / "data")) as srv:
        yield srv


def admin_key(srv: LiveServer) -> str:
    acc, _ = srv.services.accounts.create_account(
        email=f"root-{uuid.uuid4().hex[:6]}@example.com", is_admin=True
    )
    return srv.services.accounts.create_key(account_id=acc.id).plaintext


# -- without models: listings, auth, errors, the request translation ---------------------------


def test_listings_replay_the_seed(server: LiveServer) -> None:
    _, key = server.account()
    with server.client(key) as c:
        r = c.get(f"{ES}/v1/filters/")
        assert r.status_code == 200
        filters = r.json()
        ids = [f["id"] for f in filters]
        assert ids[:12] == list(range(1, 13)) and ids[12:] == [20, 21]
        assert all(isinstance(i, int) for i in ids)
        assert set(filters[0]) == {"id", "name", "description", "thumbnail", "persons"}
        assert {f["id"] for f in filters if f["persons"] == 2} == {20, 21}

        workflows = c.get(f"{ES}/v1/workflows/").json()
        assert [w["id"] for w in workflows] == [0, 1, 2]
        assert all(w["name"] and w["description"] for w in workflows)

        styles = c.get(f"{ES}/v1/lazy_pose_styles/").json()
        assert [s["id"] for s in styles] == list(range(17))
        assert styles[4]["name"] == "Anime"

        # Swagger's Authorize button: an OAuth2 password flow against the dialect's /token.
        spec = c.get("/openapi.json").json()
        flow = spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
        assert flow["password"]["tokenUrl"] == f"{ES}/token"
        assert f"{ES}/v2/run/{{filter_id}}/" in spec["paths"]


def test_auth_swagger_login_and_error_shape(server: LiveServer) -> None:
    email = f"es-{uuid.uuid4().hex[:6]}@example.com"
    _, key = server.account(email=email, password="a long enough password")
    with server.client() as anon:
        r = anon.get(f"{ES}/v1/filters/")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert set(r.json()) == {"detail"} and "authentication" in r.json()["detail"]

        # Swagger's Authorize dialog: OAuth2 password form, username + password.
        tok = anon.post(f"{ES}/token", data={"username": email, "password": key})
        assert tok.status_code == 200, tok.text
        assert tok.json() == {"access_token": key, "token_type": "bearer"}
        bearer = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        assert anon.get(f"{ES}/v1/filters/", headers=bearer).status_code == 200

        pw = anon.post(
            f"{ES}/token", data={"username": email, "password": "a long enough password"}
        )
        assert pw.status_code == 200 and pw.json()["token_type"] == "bearer"
        bearer = {"Authorization": f"Bearer {pw.json()['access_token']}"}
        assert anon.get(f"{ES}/v1/workflows/", headers=bearer).status_code == 200

        for form in (
            {"username": "someone-else@example.com", "password": key},
            {"username": email, "password": "wrong password"},
            {"username": email, "password": key[:-2] + "xx"},
        ):
            bad = anon.post(f"{ES}/token", data=form)
            assert bad.status_code == 401 and set(bad.json()) == {"detail"}, bad.text
        assert anon.get(f"{ES}/v1/filters/", headers={"X-API-Key": key}).status_code == 200


def test_unknown_filter_and_bad_requests(server: LiveServer) -> None:
    _, key = server.account(credits=10)
    photo = b64(astronaut(64))
    with server.client(key) as c:
        for fid in ("999", "not-a-filter", str(uuid.uuid4())):
            r = c.post(f"{ES}/v2/run/{fid}/", json={"base64": photo})
            assert r.status_code == 404, r.text
            assert r.json() == {"detail": f"filter {fid} not found"}
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("/v2/run/1/", {"ratio": "portrait"}, "base64"),
            ("/v2/run/1/", {"base64": photo, "ratio": "panorama"}, "ratio"),
            ("/v2/run/1/", {"base64": photo, "capture_mode": 2}, "capture_mode"),
            ("/v2/run/1/", {"base64": photo, "gender": 4}, "gender"),
            ("/v2/run/1/", {"base64": photo, "style_id": 17}, "style_id"),
            ("/v2/run/1/", {"base64": photo, "workflow_id": 9}, "workflow_id"),
            ("/v2/run/1/", {"base64": "%%% not base64 %%%"}, "base64"),
            ("/v2/run/20/", {"base64": photo}, "two_persons"),
            ("/v1/run/two_persons/", {"base64": photo, "filter_id": 1}, "1-person"),
            ("/v1/run/self_prompting/", {"base64": photo}, "positive_prompt"),
            ("/v1/run/animate_image/", {"input_image": photo, "base_video": 1}, "base_video"),
            ("/v1/run/comic/", {"base64": photo, "input_image": b64(coffee())}, "not both"),
        ]
        for path, body, word in cases:
            r = c.post(f"{ES}{path}", json=body)
            assert r.status_code == 400, (path, body, r.text)
            assert set(r.json()) == {"detail"} and word in r.json()["detail"], r.text
        r = c.post(f"{ES}/v2/status/job_nope")
        assert r.status_code == 404 and set(r.json()) == {"detail"}
        assert credits(c) == (10, 0)  # nothing was accepted


def test_ratio_capture_mode_and_prompt_translation(server: LiveServer) -> None:
    """The core job each request becomes. sd-turbo (the default model) is not on this
    machine, so every job fails: the status says FAILED and no credit is charged."""
    _, key = server.account(credits=50)
    photo = b64(astronaut(64))
    with server.client(key) as c:
        expect = {
            ("portrait", 3): (768, 1152, 2),
            ("landscape", 3): (1152, 768, 2),
            ("square", 3): (1024, 1024, 2),
            ("portrait", 1): (768, 1152, 1),
            ("portrait", 5): (768, 1152, 3),
            ("portrait", 4): (1360, 2048, 2),
            ("square", 4): (2048, 2048, 2),
        }
        jobs = {}
        for (ratio, mode), size in expect.items():
            body = {"base64": photo, "ratio": ratio, "capture_mode": mode, "gender": 1}
            jobs[run(c, "/v2/run/4/", body)] = (mode, size)
        for job_id, (mode, (w, h, steps)) in jobs.items():
            params = c.get(f"/v1/jobs/{job_id}").json()["params"]
            assert (params["width"], params["height"], params["steps"]) == (w, h, steps)
            assert params.get("fast_decode", False) is (mode == 1)
            assert params["prompt"].startswith("professional headshot of a woman in business")
            assert params["strength"] == 0.55 and params["image"].startswith("med_")

        two = run(
            c,
            "/v1/run/two_persons/",
            {"base64": photo, "filter_id": 20, "gender": 2, "gender_2": 3, "style_id": 10},
        )
        params = c.get(f"/v1/jobs/{two}").json()["params"]
        assert params["prompt"].startswith("photo of a boy and a girl as best friends")
        assert params["style"] == "neon-punk"
        own = run(
            c,
            "/v1/run/two_persons_self_prompting/",
            {"positive_prompt": "dancing in the rain", "workflow_id": 1, "gender": 0},
        )
        params = c.get(f"/v1/jobs/{own}").json()
        assert params["pipeline"] == "text_to_image"
        assert params["params"]["prompt"] == "photo of a man and a man, dancing in the rain"
        # A prompt that places the gender words itself is taken as written.
        own2 = run(
            c,
            "/v1/run/self_prompting/",
            {"positive_prompt": "a {gender} on a horse", "gender": 3, "workflow_id": 1},
        )
        assert c.get(f"/v1/jobs/{own2}").json()["params"]["prompt"] == "a girl on a horse"

        failed = poll(c, two)
        assert failed["status"] == "FAILED" and "sd-turbo" in failed["error"]
        assert set(failed) == {"job_id", "status", "error"}
        for job_id in [*jobs, own, own2]:
            assert poll(c, job_id)["status"] == "FAILED"
        assert credits(c) == (50, 0)


# -- admin edits of the filters ------------------------------------------------------------------


def test_admin_filter_crud_and_reseed(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "data")
    with LiveServer(settings) as srv:
        root = admin_key(srv)
        _, user = srv.account(credits=10)
        with srv.client(root) as admin, srv.client(user) as c:
            assert c.get("/v1/admin/filters").status_code == 403
            seeded = admin.get("/v1/admin/filters").json()["data"]
            assert [f["id"] for f in seeded][:3] == [1, 2, 3]
            assert seeded[0]["pipeline"] == "image_to_image" and "{gender}" in seeded[0]["prompt"]

            custom = {
                "name": "Retro pixels",
                "pipeline": "stylize",
                "params": {"filter": "pixel_art", "pixel_size": 4},
            }
            r = admin.post("/v1/admin/filters", json=custom)
            assert r.status_code == 201, r.text
            fid = r.json()["id"]
            assert str(uuid.UUID(fid)) == fid  # a custom filter: a UUID
            assert r.json()["gender_words"] == ["man", "woman", "boy", "girl"]
            assert admin.post("/v1/admin/filters", json={**custom, "id": 1}).status_code == 409
            bad = admin.post("/v1/admin/filters", json={**custom, "pipeline": "nope"})
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "unknown_pipeline"
            assert fid in [f["id"] for f in c.get(f"{ES}/v1/filters/").json()]

            # The custom filter runs for real (a classical filter needs no model).
            photo = astronaut(96)
            job = run(c, f"/v2/run/{fid}/", {"base64": b64(photo), "ratio": "square"})
            done = poll(c, job)
            assert done["status"] == "COMPLETED", done
            assert decoded(done["image"]).size == photo.size
            assert credits(c) == (9, 0)

            r = admin.patch(f"/v1/admin/filters/{fid}", json={"name": "Big pixels"})
            assert r.status_code == 200 and r.json()["name"] == "Big pixels"
            assert r.json()["params"]["pixel_size"] == 4
            edited = admin.patch("/v1/admin/filters/2", json={"prompt": "a {gender} hero"})
            assert edited.json()["prompt"] == "a {gender} hero"
            assert admin.delete("/v1/admin/filters/3").status_code == 204
            assert admin.delete("/v1/admin/filters/3").status_code == 404
            assert admin.patch("/v1/admin/filters/3", json={"name": "x"}).status_code == 404
            gone = c.post(f"{ES}/v2/run/3/", json={"base64": b64(photo)})
            assert gone.status_code == 404 and gone.json() == {"detail": "filter 3 not found"}
            assert 3 not in [f["id"] for f in c.get(f"{ES}/v1/filters/").json()]

    # A restart reseeds the shipped filters: the edit and the deletion are kept.
    with LiveServer(settings) as srv, srv.client(admin_key(srv)) as admin:
        ids = [f["id"] for f in admin.get("/v1/admin/filters").json()["data"]]
        assert 3 not in ids and 1 in ids and fid in ids
        assert admin.get("/v1/admin/filters/2").json()["prompt"] == "a {gender} hero"
        # A deleted id can be taken again.
        again = admin.post("/v1/admin/filters", json={**custom, "id": 3})
        assert again.status_code == 201 and again.json()["id"] == 3


def test_admin_filter_routes_come_with_the_dialect(tmp_path: Path) -> None:
    # The filters are Eventstation's own concept: without the dialect, no admin routes for them.
    settings = make_settings(tmp_path / "data", dialects=["openai"])
    with LiveServer(settings) as srv, srv.client(admin_key(srv)) as admin:
        assert admin.get("/v1/admin/filters").status_code == 404
        assert "eventstation" not in srv.services.extensions


# -- generation with the tiny models, photo tools on real photos --------------------------------


@pytest.fixture(scope="module")
def srv(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The tiny models as the default of every task the dialect uses; loopback URLs allowed."""
    models = tmp_path_factory.mktemp("es") / "models"
    shutil.copytree(tiny.dir, models)
    catalog = Catalog(models)
    for task, model in (
        ("text_to_image", "tiny-sd"),
        ("image_to_image", "tiny-sd"),
        ("pose_transfer", "tiny-controlnet-openpose"),
        ("image_to_video", "tiny-svd"),
    ):
        catalog.set_default(task, model)
    settings = settings_for(
        models.parent / "data",
        models_path=models,
        worker_threads=1,
        url_fetch_allow_networks=["127.0.0.1/32"],
    )
    with LiveServer(settings) as server:
        yield server


@pytest.mark.slow
def test_filter_from_url_and_self_prompting(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    with srv.client(key) as c:
        # The seed's flow: a filter id, the photo by URL, ratio, capture mode and gender.
        url = srv.upload(c, png_bytes(astronaut(96)))["url"]
        job = run(
            c,
            "/v2/run/1/",
            {"base64": url, "ratio": "portrait", "capture_mode": 1, "gender": 1},
        )
        done = poll(c, job)
        assert set(done) == {"job_id", "status", "image"} and done["status"] == "COMPLETED"
        # The tiny model draws the portrait ratio at its own toy scale (64 px short side).
        assert decoded(done["image"]).size == (64, 96)
        assert "woman as an astronaut" in c.get(f"/v1/jobs/{job}").json()["params"]["prompt"]

        job = run(
            c,
            "/v1/run/self_prompting/",
            {
                "positive_prompt": "a lighthouse at dusk",
                "workflow_id": 1,
                "style_id": 4,
                "ratio": "landscape",
                "gender": 0,
            },
        )
        done = poll(c, job)
        assert done["status"] == "COMPLETED", done
        assert decoded(done["image"]).size == (96, 64)
        result = c.get(f"/v1/jobs/{job}").json()["result"]
        assert result["prompt"].startswith("anime artwork of photo of a man, a lighthouse")
        assert credits(c) == (8, 0)  # one credit per image


@pytest.mark.slow
def test_two_persons_pose_transfer_and_animate(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    photo = b64(astronaut(128))
    with srv.client(key) as c:
        two = run(
            c,
            "/v1/run/two_persons/",
            {"base64": photo, "filter_id": 21, "gender": 0, "gender_2": 1, "ratio": "square"},
        )
        pose = run(c, "/v1/run/pose_transfer/", {"base64": photo, "positive_prompt": "on the moon"})
        clip = run(c, "/v1/run/animate_image/", {"input_image": photo, "video_name": "party"})
        assert poll(c, two)["status"] == "COMPLETED"
        assert decoded(poll(c, two)["image"]).size == (64, 64)
        done = poll(c, pose)
        assert done["status"] == "COMPLETED", done
        assert decoded(done["image"]).size == (64, 96)  # portrait by default
        done = poll(c, clip)
        assert set(done) == {"job_id", "status", "video", "video_name"}, done
        assert done["video_name"] == f"party_{clip}.mp4"
        assert base64.b64decode(done["video"])[4:8] == b"ftyp"  # an MP4
        assert credits(c) == (7, 0)

        r = c.post(f"{ES}/v2/run/animate_image/", json={"base64": photo, "video_name": "x"})
        assert r.json()["video_name"] == f"x_{r.json()['job_id']}.mp4"


def test_idempotency_key_makes_a_retry_the_same_job(srv: LiveServer) -> None:
    _, key = srv.account(credits=5)
    photo = b64(astronaut(128))
    body = {"base64": photo, "positive_prompt": "on the moon", "ratio": "square"}
    with srv.client(key) as c:
        first = c.post(f"{ES}/v1/run/pose_transfer/", json=body, headers={"Idempotency-Key": "k1"})
        again = c.post(f"{ES}/v1/run/pose_transfer/", json=body, headers={"Idempotency-Key": "k1"})
        assert first.status_code == again.status_code == 200, again.text
        assert again.json()["job_id"] == first.json()["job_id"]
        assert poll(c, first.json()["job_id"])["status"] == "COMPLETED"
        # The same key for a different request is refused, not silently merged.
        other = {**body, "positive_prompt": "under the sea"}
        r = c.post(f"{ES}/v1/run/pose_transfer/", json=other, headers={"Idempotency-Key": "k1"})
        assert r.status_code == 422 and "detail" in r.json()
        assert credits(c) == (4, 0)


@pytest.mark.slow
def test_photo_tools_and_no_charge_on_failure(srv: LiveServer) -> None:
    _, key = srv.account(credits=10)
    photo = astronaut(256)
    with srv.client(key) as c:
        cut = poll(c, run(c, "/v1/run/background_remover/", {"base64": b64(photo)}))
        img = decoded(cut["image"])
        assert img.mode == "RGBA" and img.size == photo.size
        alpha = img.getchannel("A")
        assert alpha.getextrema() == (0, 255)  # the person kept, the background cut

        comic = poll(c, run(c, "/v1/run/comic/", {"base64": b64(photo)}))
        assert decoded(comic["image"]).size == photo.size
        skin = poll(c, run(c, "/v1/run/skin_refiner/", {"input_image": b64(photo)}))
        assert skin["status"] == "COMPLETED" and decoded(skin["image"]).size == photo.size
        assert credits(c) == (7, 0)

        # A coffee cup has no face to refine and no person to cut out: nothing is charged.
        for path in ("/v1/run/skin_refiner/", "/v1/run/pose_transfer/"):
            failed = poll(c, run(c, path, {"base64": b64(coffee())}))
            assert failed["status"] == "FAILED" and failed["error"], failed
        assert credits(c) == (7, 0)
