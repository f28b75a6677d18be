"""Perfect's hairstyle and aging tasks on a real portrait, with the tiny inpainting model.

The seed's flow for AI Hairstyle Generator: list style groups, list a group's styles, run
`task/hair-style` with one style, poll, download. Extra action params (model, steps) pass
through to the pipeline, which is how a test picks the tiny model.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from skimage import data

from tests.conftest import TinyModels, make_settings
from tests.dialects.test_perfect import API, Server, jpeg_bytes, ledger

pytestmark = pytest.mark.slow

TINY = {"model": "tiny-sd-inpaint", "steps": 2, "seed": 3}


@pytest.fixture
def srv(tiny: TinyModels, tmp_path: Path) -> Iterator[Server]:
    settings = make_settings(tmp_path / "data", models_path=tiny.dir, worker_threads=1)
    with Server(settings) as server:
        yield server


def portrait() -> Image.Image:
    """The astronaut's head and shoulders, face wide enough for the hair tools."""
    head = Image.fromarray(data.astronaut()).crop((55, 0, 395, 340))
    return head.resize((512, 512), Image.Resampling.LANCZOS)


def test_hairstyle_and_aging_through_perfect(srv: Server) -> None:
    pc = srv.perfect(credits=5)
    pc.login()

    groups = pc.http.get(f"{API}/task/style-group/hair-style").json()["result"]["groups"]
    group = groups[0]
    r = pc.http.get(f"{API}/task/style/hair-style", params={"style_group_id": group["id"]})
    style = r.json()["result"]["styles"][0]

    file_id = pc.upload("hair-style", jpeg_bytes(portrait()))
    payload = {
        "file_sets": {"src_ids": [file_id]},
        "actions": [
            {
                "id": 0,
                "params": {"style_group_id": group["id"], "style_ids": [style["id"]], **TINY},
            }
        ],
        "output_ext": "jpg",
    }
    task = pc.run("hair-style", payload)
    assert task.status_code == 200, task.text
    result = pc.poll("hair-style", task.json()["result"]["task_id"], timeout=300)
    assert result["status"] == "success", result
    out = httpx.get(result["results"][0]["data"][0]["url"])
    assert out.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(out.content)).size == (512, 512)
    assert ledger(srv, task.json()["result"]["task_id"]) == ["capture", "hold"]

    # A style of another feature's group is refused before anything runs.
    wig = pc.http.get(f"{API}/task/style-group/wig").json()["result"]["groups"][0]
    wrong = {
        **payload,
        "actions": [{"id": 0, "params": {"style_group_id": wig["id"], "style_ids": [style["id"]]}}],
    }
    assert pc.run("hair-style", wrong, request_id=1).json()["error_code"] == "invalid_parameter"

    # Aging: no style endpoints in the seed; the result is one aged photo.
    aged = pc.run(
        "aging", {"file_sets": {"src_ids": [file_id]}, "actions": [{"id": 0, "params": TINY}]}
    )
    assert aged.status_code == 200, aged.text
    result = pc.poll("aging", aged.json()["result"]["task_id"], timeout=300)
    assert result["status"] == "success", result
    assert len(result["results"][0]["data"]) == 1
    assert pc.credits() == (3, 0)


def test_no_face_is_the_seeds_engine_error(srv: Server) -> None:
    pc = srv.perfect(credits=2)
    pc.login()
    cup = Image.fromarray(data.coffee()).resize((400, 300))
    file_id = pc.upload("hair-vol", jpeg_bytes(cup))
    groups = pc.http.get(f"{API}/task/style-group/hair-vol").json()["result"]["groups"]
    styles = pc.http.get(
        f"{API}/task/style/hair-vol", params={"style_group_id": groups[0]["id"]}
    ).json()["result"]["styles"]
    params = {"style_group_id": groups[0]["id"], "style_ids": [styles[0]["id"]], **TINY}
    task = pc.run(
        "hair-vol", {"file_sets": {"src_ids": [file_id]}, "actions": [{"id": 0, "params": params}]}
    )
    assert task.status_code == 200, task.text
    result = pc.poll("hair-vol", task.json()["result"]["task_id"], timeout=300)
    assert (result["status"], result["error"]) == ("error", "error_no_face")
    assert pc.credits() == (2, 0)
