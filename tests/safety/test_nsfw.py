"""Tests for pixelforge/safety/nsfw.py and the detect_nsfw pipeline: NudeNet on real photos."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image
from pydantic import ValidationError
from skimage import data

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.bundled import NSFW_MODEL
from pixelforge.models.manager import ModelManager
from pixelforge.pipelines.contract import media_refs
from pixelforge.pipelines.detect_nsfw import DetectNsfwParams, DetectNsfwPipeline
from pixelforge.safety.nsfw import EXPLICIT_LABELS, Detection, NsfwDetector, explicit_labels
from tests.bundled import bundled_models
from tests.pipelines.conftest import FakeRunContext


@pytest.fixture(scope="module")
def detector() -> NsfwDetector:
    return NsfwDetector(bundled_models())


def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


class Canned(NsfwDetector):
    """A detector that 'finds' fixed boxes: explicit cases without explicit test images."""

    def __init__(self, found: list[Detection], **kw: frozenset[str]) -> None:
        super().__init__(bundled_models(), **kw)
        self.found = found

    def detect(self, img: Image.Image) -> list[Detection]:
        return list(self.found)


def canned(monkeypatch: pytest.MonkeyPatch, found: list[Detection]) -> None:
    """Every NsfwDetector the pipeline builds 'finds' `found`."""
    monkeypatch.setattr(NsfwDetector, "detect", lambda self, img: list(found))


def test_labels_exist_in_the_installed_nudenet() -> None:
    import nudenet.nudenet as nn

    known = set(getattr(nn, "__labels"))  # module-private in NudeNet
    assert known >= EXPLICIT_LABELS
    assert "FACE_FEMALE" in known and "MALE_BREAST_EXPOSED" not in EXPLICIT_LABELS


def test_clothed_astronaut_is_not_explicit(detector: NsfwDetector) -> None:
    found = detector.detect(astronaut())
    faces = [d for d in found if d.label == "FACE_FEMALE"]
    assert faces and faces[0].score > 0.5
    x, y, w, h = faces[0].box  # her face: about x 200-260, y 80-180
    assert x <= 210 and x + w >= 250 and y <= 110 and y + h >= 160
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    assert detector.is_explicit(astronaut()) == (False, [])
    assert detector.is_explicit(astronaut(), threshold=0.0) == (False, [])


def test_any_mode_and_no_person(detector: NsfwDetector) -> None:
    photo = astronaut()
    for img in (photo.convert("L"), photo.convert("RGBA"), photo.resize((97, 61))):
        assert detector.is_explicit(img)[0] is False
    assert detector.detect(Image.fromarray(data.coffee())) == []


def test_threshold_edges() -> None:
    found = [
        Detection("FEMALE_BREAST_EXPOSED", 0.5, (0, 0, 10, 10)),
        Detection("BUTTOCKS_EXPOSED", 0.3, (0, 0, 10, 10)),
        Detection("FACE_FEMALE", 0.99, (0, 0, 10, 10)),
        Detection("FEMALE_BREAST_COVERED", 0.99, (0, 0, 10, 10)),
    ]
    assert explicit_labels(found, threshold=0.5) == ["FEMALE_BREAST_EXPOSED"]  # >= counts
    assert explicit_labels(found, threshold=0.5001) == []
    assert explicit_labels(found, threshold=0.3) == ["BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED"]
    assert explicit_labels(found, threshold=0.0) == ["BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED"]
    assert explicit_labels(found, threshold=1.0) == []
    assert explicit_labels([], threshold=0.0) == []
    canned = Canned(found)
    assert canned.is_explicit(astronaut()) == (True, ["FEMALE_BREAST_EXPOSED"])
    for bad in (-0.01, 1.01):
        with pytest.raises(ValueError, match="threshold"):
            canned.is_explicit(astronaut(), threshold=bad)


def test_lazy_and_shared_across_threads(tmp_path: Path) -> None:
    models = ModelManager(tmp_path, device="cpu")
    detector = NsfwDetector(models)
    assert NSFW_MODEL not in models.cache  # nothing loaded until the first detect
    photo = astronaut()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: detector.detect(photo), range(8)))
    assert all(r == results[0] for r in results) and results[0]
    assert models.cache.loads == 1


def test_missing_nudenet_is_model_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "nudenet", None)
    with pytest.raises(PixelForgeError) as err:
        NsfwDetector(ModelManager(tmp_path, device="cpu")).detect(astronaut())
    assert err.value.code == ErrorCode.model_unavailable and "nudenet==" in err.value.message


def test_detect_nsfw_pipeline(tmp_path: Path) -> None:
    ctx = FakeRunContext(root=tmp_path)
    ref = ctx.add_image(astronaut())
    pipeline = DetectNsfwPipeline()
    params = DetectNsfwParams.model_validate({"image": ref})
    assert pipeline.cost(params) == 0 and media_refs(params) == [ref]

    result = pipeline.run(params, ctx)

    assert result["explicit"] is False and result["labels"] == []
    assert result["detections"][0]["label"] == "FACE_FEMALE"
    assert set(result["detections"][0]) == {"label", "score", "box"}
    json.dumps(result)  # a job result is JSON
    assert ctx.saved == [] and ctx.progress_calls == [(1, 1)]


def test_detect_nsfw_pipeline_reports_explicit_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = FakeRunContext(root=tmp_path)
    ref = ctx.add_image(astronaut())
    found = [
        Detection("ANUS_EXPOSED", 0.7, (1, 2, 3, 4)),
        Detection("FACE_MALE", 0.9, (0, 0, 5, 5)),
    ]
    canned(monkeypatch, found)
    pipeline = DetectNsfwPipeline()

    strict = pipeline.run(DetectNsfwParams(image=ref, threshold=0.8), ctx)
    loose = pipeline.run(DetectNsfwParams(image=ref, threshold=0.7), ctx)

    assert (strict["explicit"], strict["labels"]) == (False, [])
    assert (loose["explicit"], loose["labels"]) == (True, ["ANUS_EXPOSED"])
    assert loose["detections"][0] == {"label": "ANUS_EXPOSED", "score": 0.7, "box": [1, 2, 3, 4]}


def test_detect_nsfw_pipeline_uses_the_detector_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = FakeRunContext(root=tmp_path)
    ref = ctx.add_image(astronaut())
    found = [Detection("BELLY_EXPOSED", 0.8, (0, 0, 5, 5))]
    canned(monkeypatch, found)
    wide = DetectNsfwPipeline(labels=EXPLICIT_LABELS | {"BELLY_EXPOSED"})

    assert wide.run(DetectNsfwParams(image=ref), ctx)["labels"] == ["BELLY_EXPOSED"]
    assert DetectNsfwPipeline().run(DetectNsfwParams(image=ref), ctx)["labels"] == []


@pytest.mark.parametrize("params", [{"threshold": 1.5}, {"threshold": -0.1}, {"extra": 1}, {}])
def test_detect_nsfw_params_are_validated(params: dict[str, object]) -> None:
    body = {"image": "med_x", **params} if params else {}
    with pytest.raises(ValidationError):
        DetectNsfwParams.model_validate(body)
