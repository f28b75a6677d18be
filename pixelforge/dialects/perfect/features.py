"""Perfect's AI features, each mapped to a core pipeline (or to none: not available here).

A feature is one path slug (`file/<slug>`, `task/<slug>`, `task/style-group/<slug>`,
`task/style/<slug>`) and a recipe for turning its run-task payload into pipeline params:
which `file_sets` list feeds which params field, whether it takes a catalog style or a prompt,
and which output formats it offers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pixelforge.dialects.perfect.errors import PerfectError
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.services import Services

PREFIX = "/perfect"
API = f"{PREFIX}/s2s/v1.0"

Params = dict[str, Any]
Builder = Callable[[Params], tuple[str, Params]]

IMAGES = ("image/jpg", "image/jpeg", "image/png")


@dataclass(frozen=True)
class Feature:
    slug: str
    title: str
    pipeline: str | None  # None: PixelForge has no pipeline for it
    aliases: tuple[str, ...] = ()  # other slugs clients use for the same feature
    inputs: tuple[tuple[str, str], ...] = (("src_ids", "image"),)  # file_sets list -> field
    optional_inputs: tuple[tuple[str, str], ...] = ()
    styled: bool = False  # style_group_id + style_ids from the catalog (task = pipeline)
    prompt: bool = False
    uploads: bool = True  # has a file/<slug> endpoint
    upload_types: tuple[str, ...] = IMAGES
    output_exts: tuple[str, ...] = ("jpg",)
    build: Builder | None = None  # action params -> (pipeline, params); default: as given
    pipelines: tuple[str, ...] = field(default=())  # every pipeline its tasks may run

    def all_pipelines(self) -> tuple[str, ...]:
        return self.pipelines or ((self.pipeline,) if self.pipeline else ())

    def slugs(self) -> tuple[str, ...]:
        return (self.slug, *self.aliases)


def _enhance(params: Params) -> tuple[str, Params]:
    """Perfect's scale 1 is a same-size enhance; 2 and 4 are Real-ESRGAN upscales."""
    scale = params.pop("scale", 1)
    if scale not in (1, 2, 4):
        raise PixelForgeError(ErrorCode.invalid_parameter, "scale: available values are 1, 2 and 4")
    if scale == 1:
        return "enhance", params
    return "upscale", {**params, "scale": scale}


FEATURES: tuple[Feature, ...] = (
    Feature("hair-style", "AI Hairstyle Generator", "change_hairstyle", styled=True),
    Feature("wig", "AI Wig Generator", "try_wig", aliases=("hair-wig",), styled=True),
    Feature(
        "hair-ext", "AI Hair Extension", "hair_extension", aliases=("hair-extension",), styled=True
    ),
    Feature(
        "hair-bang", "AI Hair Bang Generator", "hair_bangs", aliases=("hair-bangs",), styled=True
    ),
    Feature(
        "hair-vol", "AI Hair Volume Generator", "hair_volume", aliases=("hair-volume",), styled=True
    ),
    Feature("aging", "AI Aging Generator", "age", aliases=("ai-aging",)),
    Feature(
        "mu-trans-rec",
        "AI Makeup Transfer",
        "transfer_makeup",
        aliases=("makeup-transfer",),
        inputs=(("src_ids", "image"), ("ref_ids", "reference")),
        upload_types=(*IMAGES, "image/tiff", "image/gif"),
    ),
    Feature(
        "obj-removal",
        "AI Object Removal",
        "remove_object",
        aliases=("object-removal",),
        inputs=(("src_ids", "image"), ("mask_ids", "mask")),
        output_exts=("jpg", "webp"),
    ),
    Feature(
        "colorize",
        "AI Photo Colorize",
        "colorize",
        optional_inputs=(("ref_ids", "reference"),),
        output_exts=("jpg", "webp"),
    ),
    Feature(
        "sod",
        "AI Photo Background Removal",
        "remove_background",
        aliases=("background-removal",),
        output_exts=("png", "webp"),
    ),
    Feature(
        "enhance",
        "AI Photo Enhance",
        "enhance",
        aliases=("photo-enhance",),
        output_exts=("jpg", "webp"),
        build=_enhance,
        pipelines=("enhance", "upscale"),
    ),
    Feature(
        "text-to-image",
        "AI Image Generator",
        "text_to_image",
        inputs=(),
        styled=True,
        prompt=True,
        uploads=False,
    ),
    # In the seed's table of formats, without request samples of their own: same task shape.
    Feature(
        "bg-blur", "AI Photo Background Blur", "blur_background", output_exts=("jpg", "png", "webp")
    ),
    Feature(
        "bg-change",
        "AI Photo Background Change",
        "replace_background",
        optional_inputs=(("ref_ids", "background_image"),),
        output_exts=("jpg", "png", "webp"),
    ),
    Feature("lighting", "AI Photo Lighting", "relight", output_exts=("jpg", "png", "webp")),
    Feature(
        "color-correction",
        "AI Photo Color Correction",
        "correct_color",
        output_exts=("jpg", "png", "webp"),
    ),
    Feature(
        "face-swap",
        "AI Face Swap",
        "face_swap",
        inputs=(("src_ids", "target"), ("ref_ids", "source")),
        output_exts=("jpg", "png", "webp"),
    ),
    Feature("video-enhance", "AI Video Enhance", None),
    Feature("replace", "AI Replace", None),
)


def by_slug() -> dict[str, Feature]:
    return {slug: f for f in FEATURES for slug in f.slugs()}


def unavailable(feature: Feature) -> PerfectError:
    """What every endpoint of a feature this server cannot run answers."""
    why = (
        "PixelForge has no pipeline for it"
        if feature.pipeline is None
        else f"its pipeline {feature.pipeline!r} is not installed on this server"
    )
    return PerfectError(
        ErrorCode.unknown_pipeline,
        f"{feature.title} is not available on this server: {why}",
        perfect_code="OperationNotSupport",
        status=400,
    )


def pipeline_of(services: Services, feature: Feature) -> str:
    """The feature's pipeline, or OperationNotSupport when this server lacks it."""
    names = services.registry.names()
    if feature.pipeline is None or any(p not in names for p in feature.all_pipelines()):
        raise unavailable(feature)
    return feature.pipeline


def envelope(result: dict[str, Any]) -> dict[str, Any]:
    """Perfect's success shape."""
    return {"status": 200, "result": result}
