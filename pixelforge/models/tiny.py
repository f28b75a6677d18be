"""Tiny random-weight models of the real diffusers (and transformers) classes, for tests and
offline demos."""

from __future__ import annotations

import importlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelforge.models.base import (
    EDIT,
    IMAGE_TO_IMAGE,
    IMAGE_TO_VIDEO,
    INPAINT,
    POSE_TRANSFER,
    TEXT_TO_IMAGE,
    ModelProfile,
)
from pixelforge.models.catalog import TINY_DESCRIPTION, Catalog
from pixelforge.models.tiny_llm import TINY_LLAMA, write_tiny_llama
from pixelforge.models.tiny_vlm import TINY_VLM, write_tiny_vlm

SEED = 0
_SPECIALS = ["<|startoftext|>", "<|endoftext|>"]
# A fixed corpus so the trained vocabulary (and every token id) is the same on every machine.
_CORPUS = (
    "a photo of the cat dog person woman man portrait face smiling landscape sunset sunrise "
    "mountain lake river forest city street night neon painting oil watercolor sketch anime "
    "red orange yellow green blue purple black white golden astronaut riding horse on moon "
    "detailed sharp blurry lowres highres lighthouse at dusk make it winter snow rain"
)


def _profile(model_id: str, family: str, tasks: tuple[str, ...], **kw: Any) -> ModelProfile:
    fields: dict[str, Any] = {
        "source": f"./{model_id}",  # relative to the models dir, so the dir can move
        "description": TINY_DESCRIPTION,
        "default_steps": 2,
        "default_width": 64,
        "default_height": 64,
        "dtype_gpu": "float32",  # same pixels on every device class (and no fp16 overflow)
        "tiny": True,
        **kw,
    }
    return ModelProfile(id=model_id, family=family, tasks=tasks, **fields)


TINY_PROFILES: tuple[ModelProfile, ...] = (
    _profile("tiny-sd", "tiny-sd", (TEXT_TO_IMAGE, IMAGE_TO_IMAGE), default_guidance=0.0),
    _profile("tiny-sd-inpaint", "tiny-sd", (INPAINT,), default_guidance=0.0),
    _profile("tiny-pix2pix", "tiny-instruct-pix2pix", (EDIT,), extra={"image_guidance": 1.5}),
    _profile(
        "tiny-svd",
        "tiny-svd",
        (IMAGE_TO_VIDEO,),
        default_guidance=2.5,
        default_width=32,
        default_height=32,
        extra={"num_frames": 2, "fps": 7},
    ),
    _profile(
        "tiny-controlnet-openpose",
        "tiny-controlnet",
        (POSE_TRANSFER,),
        default_guidance=0.0,
        base_model="tiny-sd",
    ),
    TINY_LLAMA,
    TINY_VLM,
)


def create_tiny_models(models_dir: Path, *, register: bool = True) -> list[ModelProfile]:
    """Write every tiny model under `models_dir` (replacing old ones) and, by default, add
    their profiles to the user catalog there. Deterministic: same files on every run."""
    import torch

    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    builders: dict[str, Callable[[], Any]] = {
        "tiny-sd": lambda: _sd_pipeline("StableDiffusionPipeline", unet_in=4),
        "tiny-sd-inpaint": lambda: _sd_pipeline("StableDiffusionInpaintPipeline", unet_in=9),
        "tiny-pix2pix": lambda: _sd_pipeline("StableDiffusionInstructPix2PixPipeline", unet_in=8),
        "tiny-svd": _svd_pipeline,
        "tiny-controlnet-openpose": _controlnet,
    }
    # Leave the caller's random state as it was: seeding is ours alone.
    with torch.random.fork_rng(devices=[]):
        for profile in TINY_PROFILES:
            if profile.id in builders:
                _write(builders[profile.id](), models_dir / profile.id)
    _write_with(write_tiny_llama, models_dir / TINY_LLAMA.id)
    _write_with(write_tiny_vlm, models_dir / TINY_VLM.id)
    if register:
        catalog = Catalog(models_dir)
        for profile in TINY_PROFILES:
            catalog.add_profile(profile)
    return list(TINY_PROFILES)


def _write(obj: Any, target: Path) -> None:
    _write_with(lambda tmp: obj.save_pretrained(tmp, safe_serialization=True), target)


def _write_with(save: Callable[[Path], None], target: Path) -> None:
    # Build beside the target, then swap, so a reader never sees a half-written model.
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _lib(name: str) -> Any:
    """diffusers / transformers as `Any`: their constructors are untyped (mypy --strict)."""
    return importlib.import_module(name)


def _tokenizer() -> Any:
    """A byte-level BPE like CLIP's, trained here on a few dozen words."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import BpeTrainer

    tok = Tokenizer(models.BPE(unk_token=_SPECIALS[1]))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=1000,
        special_tokens=_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    words = _CORPUS.split()
    tok.train_from_iterator([" ".join(words[i:] + words[:i]) for i in range(len(words))], trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{_SPECIALS[0]} $A {_SPECIALS[1]}",
        special_tokens=[(s, tok.token_to_id(s)) for s in _SPECIALS],
    )
    return _lib("transformers").PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=_SPECIALS[0],
        eos_token=_SPECIALS[1],
        pad_token=_SPECIALS[1],
        unk_token=_SPECIALS[1],
        model_max_length=77,
    )


def _text_encoder() -> Any:
    import torch

    tf = _lib("transformers")
    torch.manual_seed(SEED)
    # bos/eos/pad ids match the tokenizer's special tokens (0 and 1): CLIP pools at the eos.
    config = tf.CLIPTextConfig(
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-5,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=1000,
    )
    return tf.CLIPTextModel(config).eval()


def _unet(in_channels: int) -> Any:
    import torch

    torch.manual_seed(SEED)
    return _lib("diffusers").UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=32,
        in_channels=in_channels,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )


def _vae() -> Any:
    import torch

    torch.manual_seed(SEED)
    return _lib("diffusers").AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
    )


def _scheduler() -> Any:
    # sd-turbo's schedule shape (trailing spacing), so 1-2 steps start from pure noise.
    return _lib("diffusers").EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        steps_offset=1,
    )


def _sd_pipeline(class_name: str, *, unet_in: int) -> Any:
    cls = getattr(_lib("diffusers"), class_name)
    return cls(
        vae=_vae(),
        text_encoder=_text_encoder(),
        tokenizer=_tokenizer(),
        unet=_unet(unet_in),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _controlnet() -> Any:
    import torch

    torch.manual_seed(SEED)
    # Matches tiny-sd's UNet; two conditioning stages downsample the pose image 2x, like
    # tiny-sd's VAE, so control features line up with the latents.
    net = _lib("diffusers").ControlNetModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=32,
        conditioning_embedding_out_channels=(16, 32),
    )
    # A fresh ControlNet's output convs are zero (it starts as a no-op, to be trained); random
    # ones make the tiny model actually follow its conditioning image, so tests can see it.
    with torch.no_grad():
        for conv in (
            net.controlnet_cond_embedding.conv_out,
            *net.controlnet_down_blocks,
            net.controlnet_mid_block,
        ):
            torch.nn.init.normal_(conv.weight)
            torch.nn.init.zeros_(conv.bias)
    return net


def _svd_pipeline() -> Any:
    import torch

    df, tf = _lib("diffusers"), _lib("transformers")

    # The components of diffusers' own StableVideoDiffusionPipeline fast tests.
    torch.manual_seed(SEED)
    unet = df.UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=16,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32,
        num_attention_heads=8,
        projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
        num_frames=2,
    )
    scheduler = df.EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    torch.manual_seed(SEED)
    vae = df.AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        latent_channels=4,
    )
    torch.manual_seed(SEED)
    image_encoder = tf.CLIPVisionModelWithProjection(
        tf.CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            num_hidden_layers=5,
            num_attention_heads=4,
            image_size=224,  # the pipeline resizes every input to 224 before encoding it
            intermediate_size=37,
            patch_size=32,
        )
    ).eval()
    return df.StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=tf.CLIPImageProcessor(crop_size=224, size=224),
    )
