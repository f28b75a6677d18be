"""Credits and idempotency are the core's, whichever door a job comes in by.

One account generates through the native API and four dialects, each request sent twice
under its door's idempotency mechanism. Every door must land on the same ledger: one job per
distinct request, each held once and captured once, all visible on the native job list.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI
from sqlalchemy import select

from pixelforge.models.base import TEXT_TO_IMAGE
from pixelforge.models.catalog import Catalog
from pixelforge.store.tables import LedgerEntry
from tests.conftest import TinyModels, make_settings
from tests.live import LiveServer

ES_TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


@pytest.fixture(scope="module")
def srv(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("doors-models")
    catalog = Catalog(root)
    for profile in tiny.profiles:
        catalog.add_profile(dataclasses.replace(profile, source=str(tiny.dir / profile.id)))
    catalog.set_default(TEXT_TO_IMAGE, "tiny-sd")
    settings = make_settings(
        tmp_path_factory.mktemp("doors-data"),
        models_path=root,
        worker_threads=1,
        dialect_options={"aiart": {"require_key": True}},
    )
    with LiveServer(settings) as server:
        yield server


def twice(send: Any) -> tuple[httpx.Response, httpx.Response]:
    first = send()
    assert first.status_code in (200, 202), first.text
    again = send()
    assert again.status_code in (200, 202), again.text
    return first, again


def test_each_door_charges_each_request_once(srv: LiveServer) -> None:
    account_id, key = srv.account(credits=20)
    auth = {"Authorization": f"Bearer {key}"}
    job_ids: set[str] = set()
    with httpx.Client(base_url=srv.url, headers=auth, timeout=120) as c:
        # Native: request_id in the body, waited for.
        body = {"pipeline": "text_to_image", "params": {"prompt": "a red fox"}, "request_id": "n1"}
        a, b = twice(lambda: c.post("/v1/jobs", json=body, headers={"Prefer": "wait=60"}))
        assert a.json()["id"] == b.json()["id"] and b.headers["Idempotent-Replayed"] == "true"
        job_ids.add(a.json()["id"])

        # AiArt (with a key, as the aiart option require_key asks): Idempotency-Key header.
        gen = {"video_description": "a lighthouse", "aspect_ratio": "1:1", "seed": 5}
        a, b = twice(
            lambda: c.post("/aiart/api/generate", json=gen, headers={"Idempotency-Key": "a1"})
        )
        assert a.json()["success"] is True and a.json()["image_url"] == b.json()["image_url"]

        # AliveAI: idempotency-key header on Create Prompt, blocking.
        prompt = {"name": "Fox", "appearance": "a red fox in snow", "gender": "FEMALE"}
        headers = {
            "Authorization": f"Key {key}",
            "idempotency-key": "l1",
            "x-aliveai-request-blocking": "true",
        }
        a, b = twice(lambda: c.post("/aliveai/prompts", json=prompt, headers=headers))
        assert a.json()["promptId"] == b.json()["promptId"]
        job_ids.add(a.json()["promptId"])

        # Eventstation: Idempotency-Key on a run endpoint, then polled.
        es = {"positive_prompt": "a fox", "ratio": "square", "capture_mode": 1, "workflow_id": 1}
        a, b = twice(
            lambda: c.post(
                "/eventstation/v1/run/self_prompting/", json=es, headers={"Idempotency-Key": "e1"}
            )
        )
        assert a.json()["job_id"] == b.json()["job_id"]
        es_job = a.json()["job_id"]
        job_ids.add(es_job)
        for _ in range(600):
            status = c.post(f"/eventstation/v2/status/{es_job}").json()["status"]
            if status in ES_TERMINAL:
                break
            time.sleep(0.1)
        assert status == "COMPLETED"

    # OpenAI: the official client, Idempotency-Key through extra_headers.
    client = OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0)
    urls = [
        client.images.generate(
            prompt="a fox", size="256x256", extra_headers={"Idempotency-Key": "o1"}
        )
        .data[0]
        .url
        for _ in range(2)
    ]
    assert urls[0] == urls[1]
    client.close()

    # Five doors, ten requests: five jobs, each held once and captured once, nothing else.
    with srv.services.db.read() as s:
        rows = list(
            s.execute(
                select(LedgerEntry.job_id, LedgerEntry.kind).where(
                    LedgerEntry.account_id == account_id, LedgerEntry.kind != "grant"
                )
            )
        )
    kinds = Counter(kind for _, kind in rows)
    assert kinds == {"hold": 5, "capture": 5}, rows
    per_job = Counter(job_id for job_id, _ in rows)
    assert len(per_job) == 5 and set(per_job.values()) == {2}
    assert job_ids <= set(per_job)
    with httpx.Client(base_url=srv.url, headers=auth, timeout=30) as c:
        listed = c.get("/v1/jobs", params={"limit": 100}).json()["data"]
        me = c.get("/v1/me").json()
    assert {j["id"] for j in listed} == set(per_job)
    assert all(j["status"] == "succeeded" for j in listed)
    assert me["credits_available"] == 15 and me["credits_held"] == 0
