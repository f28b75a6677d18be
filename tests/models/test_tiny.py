"""create_tiny_models: real diffusers classes at toy sizes, registered as tiny-* profiles."""

from __future__ import annotations

from pixelforge.models.catalog import TINY_DESCRIPTION, Catalog
from tests.conftest import TinyModels

TINY_IDS = {
    "tiny-sd",
    "tiny-sd-inpaint",
    "tiny-pix2pix",
    "tiny-svd",
    "tiny-controlnet-openpose",
    "tiny-llama",
    "tiny-vlm",
}


def test_builds_all_in_seconds_and_registers_them(tiny: TinyModels) -> None:
    assert {p.id for p in tiny.profiles} == TINY_IDS
    assert tiny.seconds < 30, f"building the tiny models took {tiny.seconds:.1f} s"
    catalog = Catalog(tiny.dir)
    for p in tiny.profiles:
        assert catalog.get(p.id) == p
        assert p.tiny and p.description == TINY_DESCRIPTION
        assert (tiny.dir / p.id).is_dir()
    assert catalog.get("tiny-controlnet-openpose").base_model == "tiny-sd"  # type: ignore[union-attr]


def test_they_reload_with_from_pretrained(tiny: TinyModels) -> None:
    import diffusers

    expected = {
        "tiny-sd": "StableDiffusionPipeline",
        "tiny-sd-inpaint": "StableDiffusionInpaintPipeline",
        "tiny-pix2pix": "StableDiffusionInstructPix2PixPipeline",
        "tiny-svd": "StableVideoDiffusionPipeline",
    }
    for model_id, class_name in expected.items():
        pipe = diffusers.DiffusionPipeline.from_pretrained(tiny.dir / model_id)
        assert type(pipe).__name__ == class_name
    controlnet = diffusers.ControlNetModel.from_pretrained(tiny.dir / "tiny-controlnet-openpose")
    assert controlnet.config.cross_attention_dim == 32
    sd = diffusers.DiffusionPipeline.from_pretrained(tiny.dir / "tiny-sd")
    assert sd.unet.config.block_out_channels == [32, 64]
    assert sd.unet.config.in_channels == 4
    pix2pix = diffusers.DiffusionPipeline.from_pretrained(tiny.dir / "tiny-pix2pix")
    assert pix2pix.unet.config.in_channels == 8
    inpaint = diffusers.DiffusionPipeline.from_pretrained(tiny.dir / "tiny-sd-inpaint")
    assert inpaint.unet.config.in_channels == 9


def test_the_locally_trained_tokenizer_round_trips(tiny: TinyModels) -> None:
    import diffusers

    tok = diffusers.DiffusionPipeline.from_pretrained(tiny.dir / "tiny-sd").tokenizer
    ids = tok("A photo of a cat")["input_ids"]
    assert ids[0] == tok.bos_token_id == 0 and ids[-1] == tok.eos_token_id == 1
    assert tok.decode(ids, skip_special_tokens=True) == "a photo of a cat"
    assert tok.model_max_length == 77
