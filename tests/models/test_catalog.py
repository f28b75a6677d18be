"""The catalog: built-in profiles, the user's models.json, defaults per task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import (
    EDIT,
    IMAGE_TO_VIDEO,
    INPAINT,
    POSE_TRANSFER,
    TEXT_TO_IMAGE,
    ModelProfile,
)
from pixelforge.models.catalog import BUILTIN, Catalog


def test_builtins_and_their_defaults(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    ids = [p.id for p in catalog.list_profiles()]
    for model_id in ("sd-turbo", "sdxl-turbo", "sd15", "sd-inpainting", "svd-xt"):
        assert model_id in ids
    turbo = catalog.get("sd-turbo")
    assert turbo is not None and turbo.source == "stabilityai/sd-turbo"
    assert turbo.default_guidance == 0.0 and turbo.default_width == 512
    svd = catalog.get("svd-xt")
    assert svd is not None and (svd.default_width, svd.default_height) == (1024, 576)
    assert svd.default_steps == 25
    pose = catalog.get("controlnet-openpose")
    assert pose is not None and pose.base_model == "sd15"
    assert catalog.default_for(TEXT_TO_IMAGE) == "sd-turbo"
    assert catalog.default_for(INPAINT) == "sd-inpainting"
    assert catalog.default_for(EDIT) == "instruct-pix2pix"
    assert catalog.default_for(IMAGE_TO_VIDEO) == "svd-xt"
    assert catalog.default_for(POSE_TRANSFER) == "controlnet-openpose"
    with pytest.raises(PixelForgeError):
        catalog.default_for("dance")


def test_every_builtin_pipeline_exists_in_this_diffusers() -> None:
    import diffusers

    classes = {
        "flux": "FluxPipeline",
        "flux-kontext": "FluxKontextPipeline",
        "qwen-image-edit": "QwenImageEditPipeline",
        "svd": "StableVideoDiffusionPipeline",
        "instruct-pix2pix": "StableDiffusionInstructPix2PixPipeline",
        "controlnet": "ControlNetModel",
        "taesd": "AutoencoderTiny",
    }
    names = set(dir(diffusers))  # the lazy module lists its classes without importing them
    for p in BUILTIN:
        if p.family in classes:
            assert classes[p.family] in names, p.id


def test_add_and_remove_round_trip(tmp_path: Path) -> None:
    mine = ModelProfile(
        id="my-model",
        family="sd15",
        tasks=(TEXT_TO_IMAGE,),
        source="/srv/models/my-model",
        extra={"note": "fine-tuned"},
    )
    Catalog(tmp_path).add_profile(mine)
    again = Catalog(tmp_path)  # a second reader (another process) sees the file
    assert again.get("my-model") == mine
    assert again.list_profiles()[-1] == mine
    assert json.loads((tmp_path / "models.json").read_text())["models"]["my-model"]["tasks"] == [
        "text_to_image"
    ]
    again.set_default(TEXT_TO_IMAGE, "my-model")
    assert Catalog(tmp_path).default_for(TEXT_TO_IMAGE) == "my-model"
    again.remove_profile("my-model")
    assert Catalog(tmp_path).get("my-model") is None
    assert Catalog(tmp_path).default_for(TEXT_TO_IMAGE) == "sd-turbo"  # its default went too


def test_overriding_a_builtin_and_removing_the_override(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path)
    builtin = catalog.get("sd15")
    assert builtin is not None
    local = ModelProfile(**{**builtin.__dict__, "source": "/mnt/sd15"})
    catalog.add_profile(local)
    assert catalog.get("sd15") == local
    catalog.remove_profile("sd15")
    assert catalog.get("sd15") == builtin
    with pytest.raises(PixelForgeError) as e:
        catalog.remove_profile("sd15")
    assert e.value.code == ErrorCode.invalid_parameter and "built-in" in e.value.message


@pytest.mark.parametrize(
    ("profile", "words"),
    [
        (ModelProfile(id="a b", family="x", tasks=(), source="r/x"), "without spaces"),
        (ModelProfile(id="ok", family="x", tasks=("dance",), source="r/x"), "unknown task"),
        (ModelProfile(id="ok", family="x", tasks=(), source=""), "no source"),
    ],
)
def test_bad_profiles_are_refused(tmp_path: Path, profile: ModelProfile, words: str) -> None:
    with pytest.raises(PixelForgeError) as e:
        Catalog(tmp_path).add_profile(profile)
    assert words in e.value.message


def test_a_broken_user_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "models.json").write_text("{not json")
    with pytest.raises(PixelForgeError) as e:
        Catalog(tmp_path).list_profiles()
    assert "models.json is not valid JSON" in e.value.message
    (tmp_path / "models.json").write_text(json.dumps({"models": {"x": {"colour": "red"}}}))
    with pytest.raises(PixelForgeError) as e:
        Catalog(tmp_path).list_profiles()
    assert "unknown profile field(s) ['colour']" in e.value.message
