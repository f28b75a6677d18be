"""AliveAI's vision endpoints against a real server with tiny-vlm: Create Vision, Update
Vision, Generate Vision Prompt, Get Clothes Description; the seed's samples, its error shape,
the per-user rate limit, another account's ids and a server without a vision model."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from skimage import data

from pixelforge.dialects.aliveai import visions as vs
from pixelforge.models.base import INPAINT, VISION
from pixelforge.models.catalog import Catalog
from pixelforge.store.tables import AliveaiVisionRow, Job
from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer, png_bytes

CARD_KEYS = {"name", "description", "personality", "scenario", "first_mes", "tags", "visionId"}
ERROR_KEYS = {"status", "errorType", "code", "message"}
RATE = 6  # vision requests a user may make per minute on the test server


@pytest.fixture(scope="module")
def models_dir(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny models, tiny-vlm the vision default (AliveAI requests name no model)."""
    root = tmp_path_factory.mktemp("vision-models")
    catalog = Catalog(root)
    for profile in tiny.profiles:
        catalog.add_profile(dataclasses.replace(profile, source=str(tiny.dir / profile.id)))
    catalog.set_default(VISION, "tiny-vlm")
    catalog.set_default(INPAINT, "tiny-sd-inpaint")
    return root


@pytest.fixture(scope="module")
def srv(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("vision-data"),
        models_path=models_dir,
        worker_threads=1,
        url_fetch_allow_networks=["127.0.0.1/32"],
        dialect_options={
            "aliveai": {"vision_max_tokens": 40, "vision_rate_limit": f"{RATE}/minute"}
        },
    )
    with LiveServer(settings) as server:
        yield server
        User.close_all()


class User:
    """An account calling /aliveai with `Authorization: Key <API key>`, as the seed says."""

    opened: list[httpx.Client] = []  # closed with their server

    def __init__(self, srv: LiveServer, credits: int = 20) -> None:
        self.srv = srv
        self.id, self.key = srv.account(credits=credits)
        self.http = httpx.Client(
            base_url=f"{srv.url}/aliveai", headers={"Authorization": f"Key {self.key}"}, timeout=90
        )
        User.opened.append(self.http)

    @classmethod
    def close_all(cls) -> None:
        for client in cls.opened:
            client.close()
        cls.opened.clear()

    def image_url(self, img: Image.Image) -> str:
        """A public (signed) URL of an upload: what Create Vision fetches."""
        with self.srv.client(self.key) as c:
            url: str = self.srv.upload(c, png_bytes(img))["url"]
        return url

    def media(self, img: Image.Image) -> str:
        r = self.http.post("/upload", files={"image": ("p.png", png_bytes(img), "image/png")})
        assert r.status_code == 200, r.text
        media_id: str = r.json()["mediaId"]
        return media_id

    def post(self, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
        r = self.http.post(path, json=body)
        assert r.status_code == status, r.text
        out: dict[str, Any] = r.json()
        return out

    def credits(self) -> int:
        return self.srv.services.accounts.balance(self.id).available


def photo(size: int = 64) -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((size, size), Image.Resampling.LANCZOS)


def vision_job(srv: LiveServer, vision_id: str) -> Job:
    with srv.services.db.read() as s:
        row = s.get(AliveaiVisionRow, vision_id)
        assert row is not None
        job = s.get(Job, row.job_id)
        assert job is not None
        return job


def last_job(srv: LiveServer, account_id: str) -> Job:
    jobs, _ = srv.services.jobs.search(account_id=account_id, statuses=("succeeded",), limit=1)
    return jobs[0]


def is_error(body: dict[str, Any], status: int, code: str) -> bool:
    return (
        set(body) == ERROR_KEYS
        and body["status"] == status
        and body["code"] == code
        and (body["errorType"] == code.upper())
    )


def test_create_vision_writes_a_card_from_the_image_and_stores_it(srv: LiveServer) -> None:
    user, other = User(srv), User(srv)
    card = user.post(
        "/chat-characters/vision",
        {"imageUrl": user.image_url(photo()), "characterName": "Mira"},
    )
    assert set(card) == CARD_KEYS and card["name"] == "Mira"
    assert all(isinstance(card[k], str) for k in vs.TEXT_FIELDS)
    assert isinstance(card["tags"], list)
    job = vision_job(srv, card["visionId"])
    assert job.pipeline == "describe_image" and job.status == "succeeded"
    assert job.params["model"] == "tiny-vlm" and job.params["image"].startswith("med_")
    assert "named Mira" in job.params["prompt"] and '"first_mes"' in job.params["prompt"]
    # Random weights write no JSON: the card is its description, the name the one asked for.
    assert card["description"] == job.result["text"].strip()
    assert user.credits() == 19

    stored = user.http.get(f"/chat-characters/vision/{card['visionId']}")
    assert stored.status_code == 200 and stored.json() == card
    theirs = other.http.get(f"/chat-characters/vision/{card['visionId']}")
    assert theirs.status_code == 404 and is_error(theirs.json(), 404, "not_found")


def test_update_vision_refines_the_stored_card_with_its_image(srv: LiveServer) -> None:
    user, other = User(srv), User(srv)
    card = user.post(
        "/chat-characters/vision",
        {"imageUrl": user.image_url(photo()), "characterName": "Mira"},
    )
    first = vision_job(srv, card["visionId"])
    # The seed: pass the response back unchanged, with a free-form instruction.
    body = {"chatCharacterFromImageResponse": card, "updatePrompt": "make her more shy"}
    updated = user.post("/chat-characters/vision/update", body)
    assert set(updated) == CARD_KEYS and updated["visionId"] == card["visionId"]
    job = vision_job(srv, card["visionId"])
    assert job.id != first.id and job.params["image"] == first.params["image"]
    assert (
        "make her more shy" in job.params["prompt"]
        and json.dumps(card["description"], ensure_ascii=False) in job.params["prompt"]
    )
    # No JSON came back: the fields the model gave none for are kept, its text describes.
    assert updated["name"] == "Mira" and updated["description"] == job.result["text"].strip()
    assert user.http.get(f"/chat-characters/vision/{card['visionId']}").json() == updated
    assert user.credits() == 18

    # Another account's vision id: 404, nothing run, nothing charged.
    r = other.http.post("/chat-characters/vision/update", json=body)
    assert r.status_code == 404 and is_error(r.json(), 404, "not_found")
    assert other.credits() == 20


def test_the_seeds_samples_replayed(srv: LiveServer) -> None:
    """The seed's request samples as they are, only the base URL changed."""
    user = User(srv)
    bad_url = user.post(
        "/chat-characters/vision", {"imageUrl": "string", "characterName": "string"}, 400
    )
    assert set(bad_url) == ERROR_KEYS and bad_url["status"] == 400
    no_media = user.post("/llm/generate-vision-prompt", {"mediaId": "string"}, 404)
    assert is_error(no_media, 404, "not_found")
    no_clothes = user.http.get("/llm/clothes-description/string")
    assert no_clothes.status_code == 404 and is_error(no_clothes.json(), 404, "not_found")
    assert user.credits() == 20
    # Update Vision's sample (the card as the seed renders it: an empty object): a card of a
    # vision not stored here is refined from its text alone, and stored as a new one.
    card = user.post(
        "/chat-characters/vision/update",
        {"chatCharacterFromImageResponse": {}, "updatePrompt": "string"},
    )
    assert set(card) == CARD_KEYS and card["visionId"].startswith("vis_")
    job = vision_job(srv, card["visionId"])
    assert job.params["image"] is None and "string" in job.params["prompt"]
    assert user.credits() == 19


def test_generate_vision_prompt_describes_a_media(srv: LiveServer) -> None:
    user, other = User(srv), User(srv)
    media = user.media(photo())
    out = user.post("/llm/generate-vision-prompt", {"mediaId": media})
    assert set(out) == {"promptText"}
    job = last_job(srv, user.id)
    assert job.params["image"] == media and "text-to-image prompt" in job.params["prompt"]
    assert out["promptText"] == job.result["text"].strip()
    assert job.meta == {"aliveai": {"vision": "VISION_PROMPT"}}
    assert user.credits() == 19
    # Someone else's media is not found.
    theirs = other.post("/llm/generate-vision-prompt", {"mediaId": media}, 404)
    assert is_error(theirs, 404, "not_found") and other.credits() == 20


def test_get_clothes_description_reads_a_create_clothes_result(srv: LiveServer) -> None:
    user, other = User(srv), User(srv)
    made = user.http.post(
        "/prompts/clothes",
        json={"mediaId": user.media(photo(96)), "seed": "3"},
        headers={"x-aliveai-request-blocking": "true"},
    )
    assert made.status_code == 200, made.text
    assert made.json()["promptContainer"]["status"] == "COMPLETED"
    clothes_id = made.json()["promptId"]
    assert user.http.get(f"/clothes/custom/{clothes_id}").status_code == 200
    before = user.credits()
    r = user.http.get(f"/llm/clothes-description/{clothes_id}")
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"promptText"}
    job = last_job(srv, user.id)
    output = srv.services.jobs.outputs(clothes_id)[0]
    assert job.pipeline == "describe_image" and job.params["image"] == output.id
    assert "clothes" in job.params["prompt"] and user.credits() == before - 1
    r = other.http.get(f"/llm/clothes-description/{clothes_id}")
    assert r.status_code == 404 and is_error(r.json(), 404, "not_found")


def test_vision_requests_are_rate_limited_per_user(srv: LiveServer) -> None:
    user, other = User(srv), User(srv)
    for _ in range(RATE):  # each passes the limit (and then finds no such media)
        user.post("/llm/generate-vision-prompt", {"mediaId": "med_nope"}, 404)
    r = user.http.post("/llm/generate-vision-prompt", json={"mediaId": "med_nope"})
    assert r.status_code == 429 and is_error(r.json(), 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1 and "per user" in r.json()["message"]
    limited = user.http.post(
        "/chat-characters/vision", json={"imageUrl": "string", "characterName": "x"}
    )
    assert limited.status_code == 429
    # Another user is not limited by this one.
    other.post("/llm/generate-vision-prompt", {"mediaId": "med_nope"}, 404)


def test_bad_bodies_answer_400_in_the_seed_shape(srv: LiveServer) -> None:
    user = User(srv)
    for path, body in (
        ("/chat-characters/vision", {"imageUrl": "http://127.0.0.1:1/x.png"}),
        ("/chat-characters/vision", {"imageUrl": "", "characterName": "x"}),
        ("/chat-characters/vision/update", {"chatCharacterFromImageResponse": {}}),
        ("/chat-characters/vision/update", {"updatePrompt": "x"}),
        ("/llm/generate-vision-prompt", {}),
    ):
        out = user.post(path, body, 400)
        assert set(out) == ERROR_KEYS and out["errorType"] == "INVALID_PARAMETER", out
    assert user.credits() == 20


def test_without_a_vision_model_the_endpoints_answer_model_unavailable(
    tmp_path: Path,
) -> None:
    empty = tmp_path / "models"
    empty.mkdir()
    with LiveServer(make_settings(tmp_path / "data", models_path=empty)) as server:
        user = User(server)
        for path, body in (
            ("/chat-characters/vision", {"imageUrl": "string", "characterName": "x"}),
            (
                "/chat-characters/vision/update",
                {"chatCharacterFromImageResponse": {}, "updatePrompt": "x"},
            ),
            ("/llm/generate-vision-prompt", {"mediaId": user.media(photo())}),
        ):
            out = user.post(path, body, 503)
            assert is_error(out, 503, "model_unavailable"), out
            assert "pixelforge models pull smolvlm-256m-instruct" in out["message"]
        assert user.credits() == 20
        User.close_all()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            'Sure! ```json\n{"name": "Zed", "description": "tall", "personality": ["calm", '
            '"kind"], "scenario": "a bar", "first_mes": "Hi.", "tags": "Tall, Quiet"}\n```',
            {
                "name": "Zed",
                "description": "tall",
                "personality": "calm, kind",
                "scenario": "a bar",
                "first_mes": "Hi.",
                "tags": ["tall", "quiet"],
            },
        ),
        (
            'text {not json} then {"description": "short"} and {"name": "later"}',
            {"description": "short", "name": "Old", "scenario": "old scene"},
        ),
        ("  just words about a woman  ", {"description": "just words about a woman"}),
        ('{"description": "cut off', {"description": '{"description": "cut off'}),
    ],
)
def test_model_answers_are_read_as_cards(answer: str, expected: dict[str, Any]) -> None:
    base = {"name": "Old", "scenario": "old scene", "tags": ["x"]}
    card = vs.read_card(answer, base=base)
    assert set(card) == {*vs.TEXT_FIELDS, "tags"}
    for key, value in expected.items():
        assert card[key] == value, key
    if "tags" not in expected:
        assert card["tags"] == ["x"]


def test_a_vision_job_past_the_wait_is_canceled_uncharged(models_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "data",
        models_path=models_dir,
        worker_threads=1,
        dialect_options={"aliveai": {"max_blocking_s": 0.001}},
    )
    with LiveServer(settings) as server:
        user = User(server)
        out = user.post("/llm/generate-vision-prompt", {"mediaId": user.media(photo())}, 504)
        assert is_error(out, 504, "timeout") and "nothing was charged" in out["message"]
        # A running job stops at its next token; then it is canceled and its hold voided.
        every = ("queued", "running", "succeeded", "failed", "canceled")
        deadline = time.monotonic() + 30
        while True:
            [job], _ = server.services.jobs.search(account_id=user.id, statuses=every)
            if job.status in ("succeeded", "failed", "canceled"):
                break
            assert time.monotonic() < deadline, job.status
            time.sleep(0.05)
        assert job.pipeline == "describe_image" and job.status == "canceled"
        assert user.credits() == 20
        User.close_all()
