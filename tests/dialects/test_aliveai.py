"""The AliveAI dialect against a real server: the seed's request samples, real photos."""

from __future__ import annotations

import dataclasses
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data
from sqlalchemy import select
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from pixelforge.dialects.aliveai.settings import options_of
from pixelforge.models.base import EDIT, IMAGE_TO_VIDEO, INPAINT, POSE_TRANSFER, TEXT_TO_IMAGE
from pixelforge.models.catalog import Catalog
from pixelforge.store.tables import Media
from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer, png_bytes

pytestmark = pytest.mark.slow

# The seed's request sample for Create Prompt (its required detailLevel left out, as there).
CREATE_PROMPT = {
    "name": "Marcielle Strongmaid",
    "appearance": "a strong viking woman, blonde hair, hazel eyes, powerful face, wearing "
    "revealing viking armour, full body",
    "gender": "FEMALE",
    "fromLocation": "NORWAY",
    "faceImproveEnabled": True,
    "model": "DEFAULT",
}
BLOCKING = {"x-aliveai-request-blocking": "true"}
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def models_dir(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny models as every task's default (AliveAI requests name no PixelForge model)."""
    root = tmp_path_factory.mktemp("aliveai-models")
    catalog = Catalog(root)
    for profile in tiny.profiles:
        catalog.add_profile(dataclasses.replace(profile, source=str(tiny.dir / profile.id)))
    catalog.set_default(TEXT_TO_IMAGE, "tiny-sd")
    catalog.set_default(INPAINT, "tiny-sd-inpaint")
    catalog.set_default(EDIT, "tiny-pix2pix")
    catalog.set_default(IMAGE_TO_VIDEO, "tiny-svd")
    catalog.set_default(POSE_TRANSFER, "tiny-controlnet-openpose")
    return root


@pytest.fixture(scope="module")
def srv(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("aliveai-data"), models_path=models_dir, worker_threads=1
    )
    with LiveServer(settings) as server:
        yield server
        for client in User.opened:
            client.close()
        User.opened.clear()


class User:
    """An account that authenticates as the seed says: `Authorization: Key <API key>`."""

    opened: list[httpx.Client] = []  # closed by the srv fixture

    def __init__(self, srv: LiveServer, credits: int = 50, password: str | None = None) -> None:
        self.srv = srv
        self.id, self.key = srv.account(credits=credits, password=password)
        self.http = httpx.Client(
            base_url=f"{srv.url}/aliveai", headers={"Authorization": f"Key {self.key}"}, timeout=90
        )
        User.opened.append(self.http)

    def upload(self, img: Image.Image) -> str:
        r = self.http.post("/upload", files={"image": ("photo.png", png_bytes(img), "image/png")})
        assert r.status_code == 200, r.text
        assert r.json()["mediaType"] == "IMAGE"
        media_id: str = r.json()["mediaId"]
        return media_id

    def create(self, path: str, body: dict[str, Any], blocking: bool = False) -> dict[str, Any]:
        r = self.http.post(path, json=body, headers=BLOCKING if blocking else {})
        assert r.status_code == 200, r.text
        out: dict[str, Any] = r.json()
        return out

    def done(self, prompt_id: str, timeout: float = 90) -> dict[str, Any]:
        """Get Prompt until it has ended, as the seed's clients poll."""
        deadline = time.monotonic() + timeout
        while True:
            body: dict[str, Any] = self.http.get(f"/prompts/{prompt_id}").json()
            if body["status"] in ("COMPLETED", "FAILED", "CANCELED"):
                return body
            assert time.monotonic() < deadline, body
            time.sleep(0.05)

    def credits(self) -> tuple[int, int]:
        bal = self.srv.services.accounts.balance(self.id)
        return bal.available, bal.held

    def ws(self, path: str) -> Any:
        return connect(f"{self.srv.url.replace('http', 'ws')}/aliveai{path}?token={self.key}")


def photo(size: tuple[int, int] = (64, 64)) -> Image.Image:
    return Image.fromarray(data.astronaut()).resize(size, Image.Resampling.LANCZOS)


def fetch(media: dict[str, Any]) -> Image.Image:
    r = httpx.get(media["mediaUrl"])
    assert r.status_code == 200
    return Image.open(io.BytesIO(r.content))


def test_login_me_upload_and_create_prompt_polled_to_the_end(srv: LiveServer) -> None:
    email = f"viking-{time.monotonic_ns()}@example.com"
    user = User(srv, password=PASSWORD)
    login = httpx.post(
        f"{srv.url}/aliveai/members/login",
        json={"email": srv.services.accounts.find(user.id).email, "password": PASSWORD},
    )
    assert login.status_code == 200 and set(login.json()) == {"accessToken"}
    token = login.json()["accessToken"]
    me = httpx.get(
        f"{srv.url}/aliveai/members/me", headers={"Authorization": f"Bearer {token}"}
    ).json()
    assert me["id"] == user.id and me["credits"] == 50 and me["apiKey"] is None
    assert me["created"].endswith("Z") and me["emailConfirmed"] is True
    assert user.http.get("/members/me").json()["apiKey"] == user.key
    wrong = httpx.post(
        f"{srv.url}/aliveai/members/login", json={"email": email, "password": "nope nope"}
    )
    assert wrong.status_code == 401 and wrong.json()["errorType"] == "UNAUTHORIZED"

    created = user.create("/prompts", {**CREATE_PROMPT, "seed": "7"})
    assert set(created) == {"promptId", "seed", "promptContainer"} and created["seed"] == "7"
    assert created["promptContainer"]["originalPrompt"]["name"] == "Marcielle Strongmaid"
    prompt = user.done(created["promptId"])
    assert prompt["status"] == "COMPLETED" and prompt["isComplete"] is True
    assert prompt["originalPrompt"] == {**CREATE_PROMPT, **prompt["originalPrompt"]}
    assert prompt["originalPrompt"]["detailLevel"] == "MEDIUM"
    assert prompt["createEditImageRequest"] is None and prompt["isFavorite"] is False
    [media] = prompt["medias"]
    assert media["mediaType"] == "IMAGE" and fetch(media).size == (64, 64)
    assert user.credits() == (49, 0)

    # Same seed, same pixels; the job is the core's (its id is the promptId).
    again = user.create("/prompts", {**CREATE_PROMPT, "seed": "7"}, blocking=True)
    assert (
        httpx.get(again["promptContainer"]["medias"][0]["mediaUrl"]).content
        == httpx.get(media["mediaUrl"]).content
    )
    job = srv.services.jobs.get(account_id=user.id, job_id=created["promptId"])
    assert job.pipeline == "text_to_image" and "Marcielle Strongmaid" in job.params["prompt"]
    assert "woman" in job.params["prompt"] and "from NORWAY" in job.params["prompt"]


def test_blocking_header_answers_the_finished_prompt_within_the_bound(srv: LiveServer) -> None:
    user = User(srv)
    body = {**CREATE_PROMPT, "detailLevel": "HIGH", "aspectRatio": "LANDSCAPE", "cfg": 3}
    start = time.monotonic()
    out = user.create("/prompts", body, blocking=True)
    assert time.monotonic() - start < options_of(srv.services).max_blocking_s
    container = out["promptContainer"]
    assert container["status"] == "COMPLETED" and container["progress"] == 100
    [media] = container["medias"]
    img = fetch(media)
    assert img.width > img.height  # LANDSCAPE
    job = srv.services.jobs.get(account_id=user.id, job_id=out["promptId"])
    assert job.params["steps"] == 4 and job.params["guidance"] == 3.0  # HIGH = 2x the default


def test_websocket_delivers_queue_progress_and_completion(srv: LiveServer) -> None:
    user = User(srv)
    first = user.upload(photo())
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[16:48, 16:48] = 255
    mask_id = user.upload(Image.fromarray(mask))
    with user.ws(f"/ws/users/{user.id}") as queue_ws:
        # Something in front, so the prompt we follow is still queued when we connect.
        ahead = user.create(
            "/prompts/inpaint",
            {
                "maskMediaId": mask_id,
                "originalMediaId": first,
                "createdFromPromptId": "",
                "strength": 80,
                "prompt": "a red helmet",
            },
        )
        followed = user.create("/prompts", {**CREATE_PROMPT, "detailLevel": "HIGH"})
        with user.ws(f"/ws/prompts/{followed['promptId']}") as ws:
            events = []
            while not events or not (events[-1]["isComplete"] or events[-1]["isError"]):
                events.append(json.loads(ws.recv(timeout=90)))
        changes = []
        while len(changes) < 4:  # queued x2, then started/succeeded of the first at least
            changes.append(json.loads(queue_ws.recv(timeout=90)))
    first_ev, last = events[0], events[-1]
    assert set(first_ev) >= {
        "promptId",
        "progress",
        "isComplete",
        "promptContainer",
        "isError",
        "isSystem",
        "message",
        "errorType",
        "queuePosition",
        "created",
    }
    assert all(e["promptId"] == followed["promptId"] for e in events)
    assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)
    assert any(0 < e["progress"] < 100 for e in events)
    assert last["isComplete"] is True and last["progress"] == 100 and last["isError"] is False
    assert last["promptContainer"]["medias"][0]["mediaType"] == "IMAGE"
    assert {c["eventType"] for c in changes} == {"QUEUE_CHANGE"}
    assert ahead["promptId"] in {c["promptId"] for c in changes}
    assert any(q["promptId"] == followed["promptId"] for c in changes for q in c["queue"])


def test_edit_inpaint_upscale_face_improve_and_face_swap_on_real_photos(srv: LiveServer) -> None:
    user = User(srv)
    small = user.upload(photo())
    edit = user.create(
        "/prompts/edit-image",
        {
            "editModel": "CREATIVE",
            "mediaId": small,
            "createdFromPromptId": "",
            "ignoreFace": True,
            "restoreFace": True,
            "prompt": "make it winter",
            "seed": "3",
        },
        blocking=True,
    )["promptContainer"]
    assert edit["createEditImageRequest"]["prompt"] == "make it winter"
    assert edit["promptType"] == "EDIT_IMAGE" and len(edit["medias"]) == 1

    mask = np.zeros((64, 64, 3), np.uint8)
    mask[:32] = 255
    inpaint = user.create(
        "/prompts/inpaint",
        {
            "maskMediaId": user.upload(Image.fromarray(mask)),
            "originalMediaId": small,
            "createdFromPromptId": edit["promptId"],
            "strength": 100,
            "prompt": "a night sky",
            "negativePrompt": "blurry",
        },
        blocking=True,
    )["promptContainer"]
    assert inpaint["inpaintRequest"]["strength"] == 100 and fetch(inpaint["medias"][0]).size == (
        64,
        64,
    )

    upscale = user.create(
        "/prompts/upscale-image",
        {
            "mediaId": small,
            "createdFromPromptId": edit["promptId"],
            "restoreFace": True,
            "upscaleModel": "DEFAULT",
        },
        blocking=True,
    )["promptContainer"]
    assert fetch(upscale["medias"][0]).size == (128, 128)

    face = user.upload(photo((384, 384)))
    improved = user.create(
        "/prompts/face-improve",
        {"mediaId": face, "strength": 60, "faceModel": "CREATIVE", "faceDetails": "freckles"},
        blocking=True,
    )["promptContainer"]
    assert improved["faceImprovePrompt"]["faceDetails"] == "freckles"
    assert fetch(improved["medias"][0]).size == (384, 384)

    # Two real faces: the astronaut, and the same face stretched into another geometry.
    target = user.upload(photo((512, 384)))
    swapped = user.create(
        "/prompts/after-face-swap",
        {"mediaId": target, "faceSwap": {"mediaId": face}, "createdFromPromptId": ""},
        blocking=True,
    )["promptContainer"]
    assert swapped["status"] == "COMPLETED", swapped
    assert fetch(swapped["medias"][0]).size == (512, 384)

    video = user.create(
        "/prompts/image-to-video",
        {"mediaId": small, "text": "She is walking towards the camera"},
        blocking=True,
    )["promptContainer"]
    assert {m["mediaType"] for m in video["medias"]} >= {"VIDEO"}
    used = 50 - user.credits()[0]
    assert used >= 6 and user.credits()[1] == 0

    # A photo without a face fails in the seed's error shape, with its promptId, uncharged.
    before = user.credits()
    cup = user.upload(Image.fromarray(data.coffee()).resize((400, 300)))
    r = user.http.post(
        "/prompts/after-face-swap",
        json={"mediaId": target, "faceSwap": {"mediaId": cup}},
        headers=BLOCKING,
    )
    assert r.status_code == 400 and r.json()["errorType"] == "ERROR_NO_FACE"
    assert r.json()["promptId"].startswith("job_") and user.credits() == before


def test_pending_queue_and_delete_from_queue_is_not_charged(srv: LiveServer) -> None:
    user = User(srv, credits=10)
    busy = user.create("/prompts", {**CREATE_PROMPT, "detailLevel": "HIGH"})
    queued = user.create("/prompts/upscale-image", _upscale_body(user))
    pending = user.http.get("/prompts/queue").json()["queue"]
    mine = {q["promptId"]: q for q in pending}
    if queued["promptId"] in mine:  # still waiting behind the first
        assert mine[queued["promptId"]]["promptType"] == "EDIT_UPSCALE_IMAGE"
    r = user.http.delete("/prompts/queue", params={"promptId": queued["promptId"]})
    assert r.status_code == 204, r.text
    canceled = user.done(queued["promptId"])
    assert canceled["status"] == "CANCELED" and canceled["medias"] == []
    user.done(busy["promptId"])
    assert user.credits() == (9, 0)  # only the first prompt was charged
    assert user.http.get("/prompts/queue").json() == {"queue": []}
    again = user.http.delete("/prompts/queue", params={"promptId": busy["promptId"]})
    assert again.status_code == 400 and again.json()["errorType"] == "INVALID_PARAMETER"


def _upscale_body(user: User) -> dict[str, Any]:
    return {
        "mediaId": user.upload(photo()),
        "createdFromPromptId": "",
        "restoreFace": False,
        "upscaleModel": "ALTERNATIVE",
    }


def test_get_prompts_search_and_delete_prompt(srv: LiveServer) -> None:
    user = User(srv)
    a = user.create("/prompts", {**CREATE_PROMPT, "name": "Astrid Berg"}, blocking=True)
    b = user.create("/prompts/upscale-image", _upscale_body(user), blocking=True)
    listed = user.http.get("/prompts", params={"page": 0}).json()
    assert [p["promptId"] for p in listed["prompts"]] == [b["promptId"], a["promptId"]]
    assert listed["hasNextPage"] is False and listed["totalPageCount"] == 1
    paged = user.http.get("/prompts", params={"page": 0, "pageSize": 1}).json()
    assert paged["hasNextPage"] is True and paged["totalPageCount"] == 2
    only = user.http.get("/prompts", params={"page": 0, "promptType": "IMAGE_DEFAULT"}).json()
    assert [p["promptId"] for p in only["prompts"]] == [a["promptId"]]
    found = user.http.get("/prompts", params={"page": 0, "query": "astrid"}).json()
    assert [p["promptId"] for p in found["prompts"]] == [a["promptId"]]

    url = a["promptContainer"]["medias"][0]["mediaUrl"]
    assert user.http.delete(f"/prompts/{a['promptId']}").status_code == 204
    assert user.http.get(f"/prompts/{a['promptId']}").status_code == 404
    assert httpx.get(url).status_code == 404  # its image is gone too
    left = user.http.get("/prompts", params={"page": 0}).json()["prompts"]
    assert [p["promptId"] for p in left] == [b["promptId"]]


def test_prompt_pages_beyond_64_bits_are_a_400_in_the_seed_shape(srv: LiveServer) -> None:
    user = User(srv)
    for page in (461168601842738791, 2**63, 2**31):  # page x pageSize overflows an SQL OFFSET
        for extra in ({}, {"query": "x"}):
            r = user.http.get("/prompts", params={"page": page, **extra})
            assert r.status_code == 400, r.text
            body = r.json()
            assert body["errorType"] == "INVALID_PARAMETER" and body["status"] == 400, body
            assert body["message"].startswith("page"), body


def test_another_accounts_prompt_is_404_in_the_seed_shape(srv: LiveServer) -> None:
    owner, other = User(srv), User(srv)
    prompt = owner.create("/prompts", CREATE_PROMPT)["promptId"]
    r = other.http.get(f"/prompts/{prompt}")
    assert r.status_code == 404
    assert r.json() == {
        "status": 404,
        "errorType": "NOT_FOUND",
        "code": "not_found",
        "message": f"prompt {prompt!r} not found",
    }
    assert other.http.delete(f"/prompts/{prompt}").status_code == 404
    assert other.http.delete("/prompts/queue", params={"promptId": prompt}).status_code == 404
    with pytest.raises(InvalidStatus) as denied:
        other.ws(f"/ws/prompts/{prompt}").__enter__()
    assert denied.value.response.status_code == 404
    with pytest.raises(InvalidStatus):
        other.ws(f"/ws/users/{owner.id}").__enter__()
    owner.done(prompt)


def test_errors_and_what_is_not_available(srv: LiveServer) -> None:
    user = User(srv)
    anon = httpx.get(f"{srv.url}/aliveai/members/me")
    assert anon.status_code == 401 and anon.json()["errorType"] == "UNAUTHORIZED"
    missing = user.http.post("/prompts", json={"appearance": "no name"})
    assert missing.status_code == 400 and missing.json()["errorType"] == "INVALID_PARAMETER"
    assert "name" in missing.json()["message"]
    bad_seed = user.http.post("/prompts", json={**CREATE_PROMPT, "seed": "12a"})
    assert bad_seed.status_code == 400
    cases = [
        ("/prompts", {**CREATE_PROMPT, "model": "GROK"}),
        ("/prompts/upscale-video", {"videoUpscaleModel": "DEFAULT", "mediaId": "med_x"}),
        ("/prompts/image-to-video", {"mediaId": "med_x", "text": "hi", "videoModel": "AUDIO"}),
    ]
    for path, body in cases:
        r = user.http.post(path, json=body)
        assert r.status_code == 501, (path, r.text)
        assert r.json()["errorType"] == "NOT_AVAILABLE" and r.json()["code"] == "not_available"
    assert user.credits() == (50, 0)
    if "extract_clothes" not in srv.services.registry.names():
        r = user.http.post("/prompts/clothes", json={"mediaId": user.upload(photo())})
        assert r.status_code == 501 and "extract_clothes" in r.json()["message"]


def test_catalog_listings(srv: LiveServer) -> None:
    from pixelforge.catalog.types import LoraTemplate

    srv.services.catalog.put_lora(
        LoraTemplate(
            id="viking-armour", name="Viking armour", type="IMAGE", source="x", trigger="armour"
        )
    )
    user = User(srv)
    listed = user.http.get("/loras/type/IMAGE").json()
    tpl = next(t for t in listed if t["id"] == "viking-armour")
    assert tpl["templateType"] == "IMAGE" and tpl["prompts"] == ["armour"] and tpl["strength"] == 10
    assert user.http.get("/loras/type/VIDEO_AUDIO").json() == []
    assert user.http.get("/loras/type/NOPE").status_code == 400
    assert user.http.get("/loras/viking-armour").json()["name"] == "Viking armour"
    assert user.http.get("/loras/nope").status_code == 404
    assert any(t["id"] == "viking-armour" for t in user.http.get("/templates").json())
    poses = user.http.get("/poses").json()
    assert set(poses) == {
        "posesStanding",
        "posesLying",
        "posesAllFours",
        "posesKneeling",
        "posesSitting",
        "posesSquatting",
        "posesSuspended",
        "posesPorn",
    }
    assert user.http.get("/poses/custom").json() == []
    assert user.http.get("/clothes").json() == []
    assert user.http.get("/clothes/custom").json() == []
    # An IMAGE template where Edit Image takes IMAGE_EDIT ones: refused before any job.
    wrong_type = user.http.post(
        "/prompts/edit-image",
        json={
            "editModel": "CREATIVE",
            "mediaId": "med_x",
            "createdFromPromptId": "",
            "ignoreFace": False,
            "restoreFace": False,
            "prompt": "x",
            "modelTemplates": [{"id": "viking-armour"}],
        },
    )
    assert wrong_type.status_code == 400 and "IMAGE_EDIT" in wrong_type.json()["message"]


def test_prompt_request_is_stored_on_its_job_and_native_jobs_are_no_prompts(
    srv: LiveServer,
) -> None:
    user = User(srv)
    key = {"idempotency-key": f"viking-{time.monotonic_ns()}"}
    first = user.http.post("/prompts", json=CREATE_PROMPT, headers=key)
    assert first.status_code == 200, first.text
    prompt_id = first.json()["promptId"]
    job = srv.services.jobs.get(account_id=user.id, job_id=prompt_id)
    assert job.meta is not None and job.meta["aliveai"]["promptType"] == "IMAGE_DEFAULT"
    assert job.meta["aliveai"]["request"]["name"] == CREATE_PROMPT["name"]
    with srv.services.db.read() as s:
        kinds = set(s.scalars(select(Media.kind).where(Media.account_id == user.id)))
    assert kinds <= {"upload", "result"}  # no media rows of the dialect's own

    # The stored request is part of the idempotent request, fields only stored included.
    again = user.http.post("/prompts", json=CREATE_PROMPT, headers=key)
    assert again.json()["promptId"] == prompt_id
    changed = user.http.post(
        "/prompts", json={**CREATE_PROMPT, "faceImproveEnabled": False}, headers=key
    )
    assert changed.status_code == 422 and changed.json()["errorType"] == "IDEMPOTENCY_MISMATCH"

    with srv.client(user.key) as native:
        image = srv.upload(native, png_bytes(photo()))["id"]
        r = native.post("/v1/jobs", json={"pipeline": "convert", "params": {"image": image}})
        assert r.status_code == 202, r.text
        native_id = r.json()["id"]
        assert r.json()["metadata"] is None
        assert native.get(f"/v1/jobs/{prompt_id}").json()["metadata"] == job.meta
    assert user.http.get(f"/prompts/{native_id}").status_code == 404
    queue = user.http.get("/prompts/queue").json()["queue"]
    assert native_id not in {q["promptId"] for q in queue}
    user.done(prompt_id)
    listed = user.http.get("/prompts", params={"page": 0}).json()["prompts"]
    assert [p["promptId"] for p in listed] == [prompt_id]
