"""The input limits pipelines declare (Perfect's per-effect table) are enforced when a job is
submitted: 400/415, no job."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.pipelines.limits import JPG, JPG_PNG, InputLimit, check_face_width, check_input
from pixelforge.pipelines.registry import default_registry
from pixelforge.store.tables import Job
from tests.live import LiveServer, png_bytes


def encoded(size: tuple[int, int], fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


EFFECT = InputLimit(formats=JPG_PNG)
HAIR = InputLimit(max_long_side=1024, min_face_width=128, formats=JPG_PNG)

# Perfect's "Supported Formats & Dimensions" table, by our pipeline names.
PERFECT_TABLE = {
    "enhance": EFFECT,
    "remove_object": EFFECT,
    "remove_background": EFFECT,
    "replace_background": EFFECT,
    "blur_background": EFFECT,
    "colorize": EFFECT,
    "relight": InputLimit(min_short_side=256, formats=JPG_PNG),
    "correct_color": EFFECT,
    "change_hairstyle": InputLimit(max_long_side=1024, min_face_width=128, formats=JPG),
    "hair_extension": HAIR,
    "hair_bangs": HAIR,
    "hair_volume": HAIR,
    "try_wig": HAIR,
    "age": HAIR,
    "transfer_makeup": InputLimit(max_long_side=1024, formats=JPG_PNG),
    "face_swap": EFFECT,
}


def test_pipelines_declare_the_table() -> None:
    declared = {p.name: p.input_limit for p in default_registry() if p.input_limit is not None}
    assert declared == PERFECT_TABLE


@pytest.mark.parametrize(
    ("pipeline", "size", "ctype", "code"),
    [
        ("remove_background", (4097, 300), "image/png", ErrorCode.invalid_parameter),
        ("remove_background", (4096, 300), "image/webp", ErrorCode.unsupported_media_type),
        ("relight", (800, 255), "image/jpeg", ErrorCode.invalid_parameter),
        ("transfer_makeup", (1025, 600), "image/png", ErrorCode.invalid_parameter),
        ("change_hairstyle", (800, 600), "image/png", ErrorCode.unsupported_media_type),
    ],
)
def test_outside_the_table_is_refused(
    pipeline: str, size: tuple[int, int], ctype: str, code: ErrorCode
) -> None:
    with pytest.raises(PixelForgeError) as err:
        check_input(
            default_registry().get(pipeline),
            "params.image",
            width=size[0],
            height=size[1],
            content_type=ctype,
        )
    assert err.value.code == code
    assert err.value.message.startswith("params.image: ")
    assert pipeline in err.value.message


@pytest.mark.parametrize(
    ("pipeline", "size", "ctype"),
    [
        ("remove_background", (4096, 4096), "image/png"),
        ("relight", (800, 256), "image/jpeg"),
        ("change_hairstyle", (1024, 768), "image/jpeg"),
        ("upscale", (5000, 5000), "image/webp"),  # not in the table: its own checks apply
    ],
)
def test_inside_the_table_passes(pipeline: str, size: tuple[int, int], ctype: str) -> None:
    check_input(
        default_registry().get(pipeline),
        "params.image",
        width=size[0],
        height=size[1],
        content_type=ctype,
    )


def test_face_width_floor_for_hair_effects() -> None:
    registry = default_registry()
    check_face_width(registry.get("hair_bangs"), 128)
    with pytest.raises(PixelForgeError) as err:
        check_face_width(registry.get("hair_bangs"), 90)
    assert err.value.code == ErrorCode.error_no_face and "128 px" in err.value.message
    check_face_width(registry.get("remove_background"), 10)  # no floor there


def test_submit_refuses_before_holding_credits(server: LiveServer) -> None:
    _, key = server.account(credits=10)
    with server.client(key) as c:
        wide = server.upload(c, png_bytes(np.zeros((200, 4200, 3), np.uint8)))
        r = c.post(
            "/v1/jobs", json={"pipeline": "remove_background", "params": {"image": wide["id"]}}
        )
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "invalid_parameter"
        assert "params.image: 4200x200 is over 4096 px" in err["message"]

        webp = c.post("/v1/media", files={"file": ("x.webp", encoded((300, 300), "WEBP"))})
        assert webp.status_code == 201 and webp.json()["content_type"] == "image/webp"
        r = c.post(
            "/v1/jobs",
            json={"pipeline": "correct_color", "params": {"image": webp.json()["id"]}},
        )
        assert r.status_code == 415, r.text
        assert r.json()["error"]["code"] == "unsupported_media_type"
        assert "jpg/png" in r.json()["error"]["message"]

        # A jpg inside the table is accepted by the same route.
        ok = c.post("/v1/media", files={"file": ("x.jpg", encoded((300, 300), "JPEG"))})
        r = c.post(
            "/v1/jobs", json={"pipeline": "correct_color", "params": {"image": ok.json()["id"]}}
        )
        assert r.status_code == 202, r.text
        server.wait_job(c, r.json()["id"])
        me = c.get("/v1/me").json()
    assert me["credits_available"] == 9  # only the accepted job was charged
    with server.services.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Job)) == 1
