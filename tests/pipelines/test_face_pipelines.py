"""Face analysis, face swap, skin refiner and makeup transfer through the real server, on
real photos (scikit-image's astronaut; its coffee cup for "no face")."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, ClassVar

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

from pixelforge.pipelines.transfer_makeup import to_lab
from pixelforge.vision.face import Face, analyze_faces, feather, region_mask
from tests.bundled import bundled_models
from tests.conftest import make_settings
from tests.live import LiveServer, png_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("face") / "data"
    server = LiveServer(make_settings(data_dir))
    with server:
        yield server
        for client in User.opened:
            client.close()
        User.opened.clear()


class User:
    """A new account with 20 credits and its HTTP client (closed by the `srv` fixture)."""

    opened: ClassVar[list[httpx.Client]] = []

    def __init__(self, srv: LiveServer, credits: int = 20) -> None:
        self.srv = srv
        _, key = srv.account(credits=credits)
        self.http = srv.client(key)
        User.opened.append(self.http)

    def upload(self, img: Image.Image) -> str:
        media_id: str = self.srv.upload(self.http, png_bytes(img))["id"]
        return media_id

    def run(self, pipeline: str, params: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post("/v1/jobs", json={"pipeline": pipeline, "params": params})
        assert r.status_code == 202, r.text
        return self.srv.wait_job(self.http, r.json()["id"])

    def result(self, job: dict[str, Any]) -> Image.Image:
        assert job["status"] == "succeeded", job
        img = Image.open(io.BytesIO(httpx.get(job["outputs"][0]["url"]).content))
        return img.convert("RGB")

    def credits(self) -> tuple[int, int]:
        me = self.http.get("/v1/me").json()
        return me["credits_available"], me["credits_held"]


def astronaut(size: tuple[int, int] = (384, 384)) -> Image.Image:
    return Image.fromarray(data.astronaut()).resize(size, Image.Resampling.LANCZOS)


def coffee() -> Image.Image:
    return Image.fromarray(data.coffee()).resize((400, 300))


def two_people() -> Image.Image:
    """Two photos side by side: the astronaut and her mirror image."""
    left = astronaut((256, 256))
    right = left.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    both = Image.new("RGB", (512, 256))
    both.paste(left, (0, 0))
    both.paste(right, (256, 0))
    return both


def tilted() -> Image.Image:
    """The astronaut turned 45° in the picture plane, about her face."""
    return astronaut((512, 512)).rotate(45, Image.Resampling.BICUBIC, center=(225, 120))


def only_face(img: Image.Image) -> Face:
    faces = analyze_faces(bundled_models(), img)
    assert len(faces) == 1
    return faces[0]


def shape_distance(a: Face, b: Face) -> float:
    """Mean landmark distance once position, size and tilt are factored out (Procrustes)."""
    p, q = (f.landmarks[:468].astype(np.float64) for f in (a, b))
    p, q = p - p.mean(axis=0), q - q.mean(axis=0)
    p, q = p / np.linalg.norm(p), q / np.linalg.norm(q)
    u, s, vt = np.linalg.svd(q.T @ p)
    fitted = s.sum() * p @ (u @ vt).T
    return float(np.linalg.norm(fitted - q, axis=1).mean())


def lip_lab(img: Image.Image) -> np.ndarray[Any, Any]:
    face = only_face(img)
    mean: np.ndarray[Any, Any] = to_lab(np.asarray(img))[
        region_mask(face, img.size, "lips") > 0
    ].mean(0)
    return mean


# --- analysis ------------------------------------------------------------------------------


def test_analyze_face_counts_and_angles(srv: LiveServer) -> None:
    u = User(srv)

    def analyze_image(img: Image.Image) -> dict[str, Any]:
        r = u.http.post("/v1/analyze/face", json={"image": u.upload(img)})
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    one = analyze_image(astronaut((512, 512)))
    assert len(one["faces"]) == 1
    face = one["faces"][0]
    assert face["landmarks_count"] == 478 and face["score"] > 0.8
    assert max(abs(face["pitch"]), abs(face["yaw"]), abs(face["roll"])) < 8, face
    x, y, w, h = face["box"]
    assert 150 < x + w / 2 < 300 and 60 < y + h / 2 < 200  # her face, top left of centre
    assert one["checks"] == dict.fromkeys(
        ("error_no_face", "error_multiple_people", "error_large_face_angle"), False
    )

    two = analyze_image(two_people())
    assert len(two["faces"]) == 2 and two["checks"]["error_multiple_people"]
    none = analyze_image(coffee())
    assert none["faces"] == [] and none["checks"]["error_no_face"]
    turned = analyze_image(tilted())
    assert abs(turned["faces"][0]["roll"]) > 15 and turned["checks"]["error_large_face_angle"]

    # Free and job-less; someone else's media is not found
    assert u.credits() == (20, 0)
    assert u.http.get("/v1/jobs").json()["data"] == []
    other = User(srv)
    r = other.http.post("/v1/analyze/face", json={"image": one["image"]})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert httpx.post(f"{srv.url}/v1/analyze/face", json={"image": "x"}).status_code == 401

    # Documented, and the pipelines are listed at one credit each
    spec = httpx.get(f"{srv.url}/openapi.json").json()
    op = spec["paths"]["/v1/analyze/face"]["post"]
    assert op["summary"] and "FaceAnalysisOut" in str(op["responses"]["200"])
    assert spec["components"]["schemas"]["FaceAnalysisOut"]["examples"]
    listed = {p["name"]: p["cost"] for p in u.http.get("/v1/pipelines").json()}
    assert {n: listed[n] for n in ("face_swap", "refine_skin", "transfer_makeup")} == {
        "face_swap": 1,
        "refine_skin": 1,
        "transfer_makeup": 1,
    }


# --- pipelines -----------------------------------------------------------------------------


def test_face_swap_carries_the_source_face_shape(srv: LiveServer) -> None:
    u = User(srv)
    source = astronaut((384, 384))
    target = astronaut((512, 384))  # the same face stretched: another geometry
    job = u.run("face_swap", {"source": u.upload(source), "target": u.upload(target)})
    out = u.result(job)

    assert out.size == target.size
    swapped, src, tgt = only_face(out), only_face(source), only_face(target)
    to_source, to_target = shape_distance(swapped, src), shape_distance(swapped, tgt)
    print(f"face_swap shape distance: to source {to_source:.5f}, to target {to_target:.5f}")
    assert to_source < 0.7 * to_target
    # Outside the face the target is untouched
    diff = np.abs(np.asarray(out, dtype=np.int16) - np.asarray(target, dtype=np.int16))
    outside = region_mask(tgt, target.size, "face") == 0
    outside &= cv2.dilate((~outside).astype(np.uint8), np.ones((25, 25))) == 0
    assert diff[outside].max() <= 2
    assert job["result"]["target_face"]["faces_found"] == 1
    assert u.credits() == (19, 0)

    bad = u.run(
        "face_swap",
        {"source": job["params"]["source"], "target": job["params"]["target"], "target_index": 1},
    )
    assert bad["status"] == "failed" and bad["error"]["code"] == "invalid_parameter"
    assert "target_index" in bad["error"]["message"]
    assert u.credits() == (19, 0)


def test_refine_skin_smooths_skin_not_eyes(srv: LiveServer) -> None:
    u = User(srv)
    photo = astronaut((512, 512))
    job = u.run("refine_skin", {"image": u.upload(photo), "strength": 0.8})
    out = u.result(job)

    face = only_face(photo)
    skin = cv2.erode(region_mask(face, photo.size, "skin"), np.ones((5, 5), np.uint8)) > 0
    eyes = (
        region_mask(face, photo.size, "left_eye") | region_mask(face, photo.size, "right_eye")
    ) > 0

    def detail(img: Image.Image) -> float:
        gray = cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(cv2.Laplacian(gray, cv2.CV_32F)[skin].var())

    before, after = detail(photo), detail(out)
    change = np.abs(np.asarray(out, dtype=np.float32) - np.asarray(photo, dtype=np.float32))
    skin_change, eye_change = change[skin].mean(), change[eyes].mean()
    print(
        f"refine_skin: Laplacian variance {before:.1f} -> {after:.1f}; "
        f"mean change skin {skin_change:.2f}, eyes {eye_change:.2f}"
    )
    assert after < 0.6 * before
    assert eye_change < 0.2 * skin_change
    assert u.credits() == (19, 0)


def test_transfer_makeup_moves_lip_colour_toward_reference(srv: LiveServer) -> None:
    u = User(srv)
    reference = _purple_lips(astronaut((512, 512)))
    target = astronaut((448, 448)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    job = u.run("transfer_makeup", {"image": u.upload(target), "reference": u.upload(reference)})
    out = u.result(job)

    ref, before, after = lip_lab(reference), lip_lab(target), lip_lab(out)
    print(f"transfer_makeup lips Lab: reference {ref.round(1)}, before {before.round(1)}, ", end="")
    print(f"after {after.round(1)}")
    assert np.linalg.norm((after - ref)[1:]) < 0.4 * np.linalg.norm((before - ref)[1:])
    # Eyeshadow and blush of the reference are bare skin: the rest barely moves
    face = only_face(target)
    skin = region_mask(face, target.size, "skin") > 0
    change = np.abs(np.asarray(out, dtype=np.float32) - np.asarray(target, dtype=np.float32))
    assert change[skin].mean() < 2
    assert u.credits() == (19, 0)


def test_face_errors_fail_the_job_and_cost_nothing(srv: LiveServer) -> None:
    u = User(srv)
    face_id, cup, pair, turned = (
        u.upload(i) for i in (astronaut(), coffee(), two_people(), tilted())
    )
    cases = [
        ("refine_skin", {"image": cup}, "error_no_face"),
        ("face_swap", {"source": cup, "target": face_id}, "error_no_face"),
        ("face_swap", {"source": face_id, "target": cup}, "error_no_face"),
        ("transfer_makeup", {"image": cup, "reference": face_id}, "error_no_face"),
        ("transfer_makeup", {"image": face_id, "reference": pair}, "error_multiple_people"),
        ("transfer_makeup", {"image": turned, "reference": face_id}, "error_large_face_angle"),
    ]
    messages = []
    for pipeline, params, code in cases:
        job = u.run(pipeline, params)
        assert job["status"] == "failed" and job["error"]["code"] == code, (pipeline, job)
        messages.append(job["error"]["message"])
    assert "2 faces found in the reference" in messages[-2]
    assert "tilted" in messages[-1] and "at most 15°" in messages[-1]
    assert u.credits() == (20, 0)


def _purple_lips(img: Image.Image) -> Image.Image:
    """The photo with its lips recoloured deep purple-red (a made-up reference)."""
    face = only_face(img)
    lips = region_mask(face, img.size, "lips")
    lab = to_lab(np.asarray(img))
    shift = np.array([35, 55, -25], np.float32) - lab[lips > 0].mean(axis=0)
    lab += feather(lips, 4)[..., None] * shift
    rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8))
