"""What the rest of PixelForge sees of the model manager: profiles and a loading facade."""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

# Tasks a profile can serve; pipelines ask for a model by task.
TEXT_TO_IMAGE = "text_to_image"
IMAGE_TO_IMAGE = "image_to_image"
INPAINT = "inpaint"
EDIT = "edit"
IMAGE_TO_VIDEO = "image_to_video"
POSE_TRANSFER = "pose_transfer"
# Photo effects that can run a downloaded model instead of their bundled method.
MATTING = "matting"  # foreground alpha matte (remove/blur/replace background)
ERASE = "erase"  # fill a masked region from its surroundings, no prompt (remove_object)
COLORIZE = "colorize"  # greyscale -> colour, conditioned on the photo (ControlNet)
# Analysis and restoration served by models whose weights ship in pip packages (bundled.py).
FACE_DETECTION = "face_detection"
FACE_MESH = "face_mesh"
PERSON_SEGMENTATION = "person_segmentation"
POSE_ESTIMATION = "pose_estimation"
NSFW_DETECTION = "nsfw_detection"
UPSCALE = "upscale"
# Language models (llm.py): chat messages or a prompt -> text.
CHAT = "chat"
# Vision-language models (vlm.py): an image and an instruction -> text.
VISION = "vision"


@dataclass(frozen=True)
class ModelProfile:
    """One model a user can name: where it comes from and how to run it by default."""

    id: str  # e.g. "sd-turbo", "tiny-sd"
    family: str  # sd15 | sdxl | sd-turbo | sdxl-turbo | flux | svd | instruct-pix2pix | ...
    tasks: tuple[str, ...]
    source: str  # Hugging Face repo id, or a local directory
    revision: str | None = None
    variant: str | None = None  # e.g. "fp16" weight files
    description: str = ""
    default_steps: int = 20
    default_guidance: float = 7.5
    default_width: int = 512
    default_height: int = 512
    base_model: str | None = None  # for add-ons such as a ControlNet: the model they extend
    dtype_gpu: str = "float16"
    dtype_cpu: str = "float32"
    tiny: bool = False  # random weights, for tests and offline demos: outputs are noise
    extra: dict[str, Any] = field(default_factory=dict)
    # diffusers (a pipeline or single-model folder) | onnx (ONNX Runtime; `extra` holds its
    # layout, see pixelforge.models.onnx_model.OnnxSpec) | mediapipe | nudenet | ncnn (weights
    # shipped in the pip package named by `source`, see pixelforge.models.bundled) |
    # transformers-llm (a causal language model; `extra` may name a GGUF file, see
    # pixelforge.models.llm) | llama-cpp (a GGUF file run by llama.cpp, see
    # pixelforge.models.llm_cpp) | openai-upstream (an OpenAI-compatible server named in
    # `extra`, see pixelforge.models.llm_upstream)
    kind: str = "diffusers"


class ModelProvider(Protocol):
    """The narrow view pipelines get (RunContext.models)."""

    @property
    def device(self) -> str:
        """cuda | mps | cpu: where loaded models run."""

    def profile(self, model_id: str | None, *, task: str) -> ModelProfile:
        """The named profile (or the default for `task`); invalid_parameter if it cannot
        serve the task, model_unavailable (naming `pixelforge models pull`) if not on disk."""

    def load(
        self, model_id: str, *, task: str, fast_decoder: bool = False
    ) -> AbstractContextManager[Any]:
        """A ready diffusers pipeline for `task` (an `OnnxModel` for onnx profiles), kept
        resident (never evicted) while the `with` block runs. `fast_decoder` swaps in the
        profile's tiny VAE (TAESD) when it is on disk. A bundled profile yields its MediaPipe
        solution, NudeNet detector or ncnn.Net, one per process, and the block holds that
        model's lock when it cannot serve two threads at once."""
