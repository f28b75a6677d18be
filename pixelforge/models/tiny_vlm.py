"""tiny-vlm: a toy Idefics3 (SmolVLM's classes) with a locally trained tokenizer, for tests."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pixelforge.models.base import VISION, ModelProfile
from pixelforge.models.profiles import TINY_DESCRIPTION
from pixelforge.models.tiny_llm import train_byte_bpe
from pixelforge.models.vlm import TRANSFORMERS_VLM

SEED = 0
_CONTEXT = 2048  # room for a card and an instruction about it (Update Vision)
_IMAGE_SIZE = 32  # one 32x32 tile, 8x8 patches, pixel shuffle 2 -> 4 image tokens
_PATCH = 8
_SCALE = 2
_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
    # Idefics3's processor names the tile tokens of split images (unused: no splitting here).
    *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)),
]
# SmolVLM-Instruct's turn layout: "User:<image>text<end_of_utterance>\nAssistant:".
TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}{{ '<image>' }}{% endif %}"
    "{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
# A fixed corpus so the trained vocabulary (and every token id) is the same everywhere.
_CORPUS = (
    "a photo of a woman man person with red blue green hair wearing a dress shirt jacket "
    "in a park on a street at the beach name description personality scenario first message "
    "tags she is kind shy brave the character says hello nice to meet you json"
)

TINY_VLM = ModelProfile(
    id="tiny-vlm",
    family="tiny-vlm",
    kind=TRANSFORMERS_VLM,
    tasks=(VISION,),
    source="./tiny-vlm",  # relative to the models dir, so the dir can move
    description=TINY_DESCRIPTION,
    dtype_gpu="float32",  # same tokens on every device class
    tiny=True,
    extra={"context_length": _CONTEXT},
)


def write_tiny_vlm(target: Path) -> None:
    """Save tiny-vlm (model, processor with its tokenizer and chat template) as an HF folder
    at `target`; deterministic: the same files on every run."""
    import torch

    tf = importlib.import_module("transformers")
    tokenizer = _tokenizer(tf)
    ids = tokenizer.convert_tokens_to_ids
    text = tf.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=_CONTEXT,
        bos_token_id=ids("<|im_start|>"),
        eos_token_id=ids("<end_of_utterance>"),
        pad_token_id=ids("<|endoftext|>"),
    )
    vision = tf.Idefics3VisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=_IMAGE_SIZE,
        patch_size=_PATCH,
    )
    config = tf.Idefics3Config(
        vision_config=vision,
        text_config=text,
        scale_factor=_SCALE,
        image_token_id=ids("<image>"),
        pad_token_id=text.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = tf.Idefics3ForConditionalGeneration(config).eval()
    # The PIL image processor: the same resizing and normalisation as SmolVLM's, no
    # torchvision needed.
    images = tf.Idefics3ImageProcessorPil(
        size={"longest_edge": _IMAGE_SIZE},
        max_image_size={"longest_edge": _IMAGE_SIZE},
        do_image_splitting=False,
    )
    processor = tf.Idefics3Processor(
        image_processor=images,
        tokenizer=tokenizer,
        image_seq_len=(_IMAGE_SIZE // _PATCH) ** 2 // _SCALE**2,
        chat_template=TEMPLATE,
    )
    model.save_pretrained(target, safe_serialization=True)
    processor.save_pretrained(target)


def _tokenizer(tf: Any) -> Any:
    """The tiny model's tokenizer: a byte-level BPE trained here (no download)."""
    tok = train_byte_bpe(_CORPUS, _SPECIALS)
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|endoftext|>",
        model_max_length=_CONTEXT,
    )
