"""tiny-llama: a toy LlamaForCausalLM with a locally trained tokenizer and a ChatML template."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from pixelforge.models.base import CHAT, ModelProfile
from pixelforge.models.llm import TRANSFORMERS_LLM
from pixelforge.models.profiles import TINY_DESCRIPTION

SEED = 0
_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# ChatML, as SmolLM2 and Qwen write it: system/user/assistant turns between im markers.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# A fixed corpus so the trained vocabulary (and every token id) is the same everywhere.
_CORPUS = (
    "hello there how are you today i am fine thank you the capital of france is paris "
    "tell me a story about a brave knight and a small dragon who lived near the sea "
    "what is your name my name is pixel and i like to paint pictures of cats and dogs "
    "the quick brown fox jumps over the lazy dog one two three four five six seven"
)

TINY_LLAMA = ModelProfile(
    id="tiny-llama",
    family="tiny-llama",
    kind=TRANSFORMERS_LLM,
    tasks=(CHAT,),
    source="./tiny-llama",  # relative to the models dir, so the dir can move
    description=TINY_DESCRIPTION,
    dtype_gpu="float32",  # same tokens on every device class
    tiny=True,
    extra={"context_length": 512},
)


def write_tiny_llama(target: Path) -> None:
    """Save tiny-llama (model, tokenizer, chat template) as an HF folder at `target`;
    deterministic: the same files on every run."""
    import torch

    tf = importlib.import_module("transformers")
    tokenizer = _tokenizer(tf)
    config = tf.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = tf.LlamaForCausalLM(config).eval()
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)


def train_byte_bpe(corpus: str, specials: list[str], *, vocab_size: int = 400) -> Any:
    """A byte-level BPE `tokenizers.Tokenizer` trained here on `corpus` (no download);
    deterministic: the same corpus gives the same vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from tokenizers.trainers import BpeTrainer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    words = corpus.split()
    tok.train_from_iterator([" ".join(words[i:] + words[:i]) for i in range(len(words))], trainer)
    return tok


def _tokenizer(tf: Any) -> Any:
    """The tiny model's tokenizer, with its ChatML template."""
    tok = train_byte_bpe(_CORPUS, _SPECIALS)
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=CHATML,
        model_max_length=512,
    )
