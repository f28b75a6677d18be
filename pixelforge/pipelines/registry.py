"""The registry: pipeline names to pipelines, and the pipelines that ship with PixelForge.

The only module that imports the concrete pipelines; none of them imports it.
"""

from __future__ import annotations

from collections.abc import Iterator

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.pipelines.contract import Pipeline


class PipelineRegistry:
    """Name -> pipeline. Built by `default_registry()` in the app's wiring, never at import."""

    def __init__(self, pipelines: list[Pipeline] | None = None) -> None:
        self._by_name: dict[str, Pipeline] = {}
        for p in pipelines or []:
            self.register(p)

    def register(self, pipeline: Pipeline) -> None:
        if pipeline.name in self._by_name:
            raise ValueError(f"pipeline {pipeline.name!r} registered twice")
        self._by_name[pipeline.name] = pipeline

    def get(self, name: str) -> Pipeline:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(sorted(self._by_name))
            raise PixelForgeError(
                ErrorCode.unknown_pipeline,
                f"pipeline {name!r} does not exist; known pipelines: {known}",
            ) from None

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def __iter__(self) -> Iterator[Pipeline]:
        return iter(self._by_name[n] for n in self.names())


def default_registry() -> PipelineRegistry:
    """The pipelines that ship with PixelForge."""
    from pixelforge.pipelines.age import AgePipeline
    from pixelforge.pipelines.background import (
        BlurBackgroundPipeline,
        RemoveBackgroundPipeline,
        ReplaceBackgroundPipeline,
    )
    from pixelforge.pipelines.chat import ChatPipeline
    from pixelforge.pipelines.colorize import ColorizePipeline
    from pixelforge.pipelines.convert import ConvertPipeline
    from pixelforge.pipelines.correct_color import CorrectColorPipeline, RelightPipeline
    from pixelforge.pipelines.describe_image import DescribeImagePipeline
    from pixelforge.pipelines.detect_nsfw import DetectNsfwPipeline
    from pixelforge.pipelines.edit import EditPipeline
    from pixelforge.pipelines.enhance import EnhancePipeline
    from pixelforge.pipelines.extract_clothes import ExtractClothesPipeline
    from pixelforge.pipelines.face_swap import FaceSwapPipeline
    from pixelforge.pipelines.hair import (
        ChangeHairstylePipeline,
        HairBangsPipeline,
        HairExtensionPipeline,
        HairVolumePipeline,
        TryWigPipeline,
    )
    from pixelforge.pipelines.image_to_image import ImageToImagePipeline
    from pixelforge.pipelines.image_to_video import ImageToVideoPipeline
    from pixelforge.pipelines.inpaint import InpaintPipeline, OutpaintPipeline
    from pixelforge.pipelines.pose_transfer import PoseTransferPipeline
    from pixelforge.pipelines.refine_skin import RefineSkinPipeline
    from pixelforge.pipelines.remove_object import RemoveObjectPipeline
    from pixelforge.pipelines.stylize import StylizePipeline
    from pixelforge.pipelines.text_to_image import TextToImagePipeline
    from pixelforge.pipelines.transfer_makeup import TransferMakeupPipeline
    from pixelforge.pipelines.upscale import UpscalePipeline

    return PipelineRegistry(
        [
            ConvertPipeline(),
            UpscalePipeline(),
            TextToImagePipeline(),
            ImageToImagePipeline(),
            InpaintPipeline(),
            OutpaintPipeline(),
            EditPipeline(),
            ImageToVideoPipeline(),
            PoseTransferPipeline(),
            DetectNsfwPipeline(),
            FaceSwapPipeline(),
            RefineSkinPipeline(),
            TransferMakeupPipeline(),
            RemoveBackgroundPipeline(),
            BlurBackgroundPipeline(),
            ReplaceBackgroundPipeline(),
            RemoveObjectPipeline(),
            ColorizePipeline(),
            CorrectColorPipeline(),
            RelightPipeline(),
            StylizePipeline(),
            EnhancePipeline(),
            ChangeHairstylePipeline(),
            TryWigPipeline(),
            HairExtensionPipeline(),
            HairBangsPipeline(),
            HairVolumePipeline(),
            AgePipeline(),
            ExtractClothesPipeline(),
            ChatPipeline(),
            DescribeImagePipeline(),
        ]
    )
