"""Language models on transformers: load (HF folder, Hub repo or GGUF) and generate text."""

from __future__ import annotations

import importlib
import logging
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import ModelProfile

log = logging.getLogger(__name__)

TRANSFORMERS_LLM = "transformers-llm"
FinishReason = Literal["stop", "length", "tool_calls"]
Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
# A profile's `extra` may name a GGUF file: inside an installed pip package (`gguf_package`,
# found without importing it) or inside the profile's own folder.
GGUF_FILE = "gguf_file"
GGUF_PACKAGE = "gguf_package"


@dataclass(frozen=True)
class Completion:
    """One candidate's finished text."""

    index: int
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Delta:
    """A piece of candidate `index`'s text; the last one for a candidate has `finish_reason`."""

    index: int
    text: str
    finish_reason: FinishReason | None = None
    tool_calls: list[dict[str, Any]] | None = None  # an upstream's tool-call chunks, as sent
    tokens: int = 0  # completion tokens this delta accounts for (their sum is the count)


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; temperature 0 means greedy (argmax) decoding."""

    max_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # Continue the final assistant message of a chat prompt instead of opening a new turn.
    continue_last: bool = False
    # {"type": "json_object"} or {"type": "json_schema", "json_schema": {"name", "schema"}}.
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None


# What an engine may support beyond plain sampling (ChatEngine.features).
FEATURE_JSON = "json_schema"  # response_format json_object / json_schema
FEATURE_TOOLS = "tools"  # tools and tool_choice
FEATURE_CONTINUE = "continue"  # continue_last


class ChatEngine(Protocol):
    """A loaded language model, whatever runs it (transformers, llama.cpp, an upstream
    OpenAI-compatible server): what `ModelProvider.load(id, task="chat")` yields."""

    model_id: str
    context_length: int  # prompt + completion tokens the model accepts
    features: frozenset[str]

    def count_tokens(self, prompt: str | Sequence[Message], *, continue_last: bool = False) -> int:
        """Tokens of `prompt` as it would be sent (chat template applied)."""
        ...

    def generate(
        self, prompt: str | Sequence[Message], *, n: int = 1, **sampling: Any
    ) -> list[Completion]:
        """`n` finished candidates; keyword arguments are `Sampling`'s fields."""
        ...

    def stream(
        self, prompt: str | Sequence[Message], *, n: int = 1, **sampling: Any
    ) -> Iterator[Delta]:
        """Text deltas per candidate while decoded; a candidate's last carries its finish."""
        ...


def unsupported(engine: ChatEngine, opts: Sampling) -> str | None:
    """The first option `opts` asks for that `engine` lacks, named for an error message."""
    wants_json = opts.response_format is not None and opts.response_format.get("type") != "text"
    if wants_json and FEATURE_JSON not in engine.features:
        return "response_format"
    if opts.tools and FEATURE_TOOLS not in engine.features:
        return "tools"
    if opts.continue_last and FEATURE_CONTINUE not in engine.features:
        return "continue_last"
    return None


def require_supported(engine: ChatEngine, opts: Sampling) -> None:
    """Refuse, with a clear invalid_parameter, an option the engine cannot honour."""
    missing = unsupported(engine, opts)
    if missing is not None:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {engine.model_id!r} does not support {missing}; use a model whose "
            "backend does (see GET /v1/models)",
        )


def gguf_path(profile: ModelProfile, folder: Path) -> Path | None:
    """The profile's GGUF file, if it names one and it is on disk."""
    name = profile.extra.get(GGUF_FILE)
    if not isinstance(name, str):
        return None
    package = profile.extra.get(GGUF_PACKAGE)
    root = _package_dir(package) if isinstance(package, str) else folder
    path = root / name if root is not None else None
    return path if path is not None and path.is_file() else None


def _package_dir(name: str) -> Path | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def is_converted(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def load_chat_model(profile: ModelProfile, folder: Path, *, dtype: str, device: str) -> ChatModel:
    """Load `profile` from `folder` (an HF model folder), or from its GGUF file, which is
    converted once into `folder` as safetensors (a GGUF load dequantizes every tensor, ~8x
    slower than reading the converted copy)."""
    import torch

    tf = importlib.import_module("transformers")
    start = time.perf_counter()
    try:
        gguf = None if is_converted(folder) else gguf_path(profile, folder)
        if gguf is not None:
            _convert(gguf, folder)
        tokenizer = tf.AutoTokenizer.from_pretrained(folder)
        model = tf.AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype))
    except (OSError, ValueError, KeyError) as e:
        raise PixelForgeError(
            ErrorCode.model_unavailable,
            f"model {profile.id!r} could not be loaded from {folder}: {e}",
        ) from e
    model.to(device).eval()
    log.info(
        "loaded chat model %s (%s, %s) in %.1f s",
        profile.id,
        dtype,
        device,
        time.perf_counter() - start,
    )
    context = profile.extra.get("context_length")
    return ChatModel(profile.id, model, tokenizer, context_length=_context_length(context, model))


def _context_length(declared: object, model: Any) -> int:
    """The profile's context_length, else the model config's position limit."""
    if isinstance(declared, int) and declared > 0:
        return declared
    limit = getattr(model.config, "max_position_embeddings", None)
    return limit if isinstance(limit, int) and limit > 0 else 2048


def _convert(gguf: Path, folder: Path) -> None:
    """GGUF -> an HF folder (config, tokenizer with its chat template, safetensors)."""
    tf = importlib.import_module("transformers")
    log.info("converting %s to safetensors in %s (once)", gguf.name, folder)
    tokenizer = tf.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = tf.AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The tensors are already dequantized to float32; only the marker of their origin stops
    # save_pretrained, so it goes.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # Written beside the target, then renamed: a reader never sees half a model.
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(folder)


class ChatModel:
    """A loaded causal LM and its tokenizer. Safe to share between threads: generation keeps
    all of its state (KV cache, random generator) local to the call."""

    features = frozenset({FEATURE_CONTINUE, FEATURE_JSON})

    def __init__(self, model_id: str, model: Any, tokenizer: Any, *, context_length: int) -> None:
        self.model_id = model_id
        self.model = model
        self.tokenizer = tokenizer
        self.context_length = context_length
        self._eos = _eos_ids(model, tokenizer)

    @property
    def resident_bytes(self) -> int:
        """Parameter and buffer bytes (what the model cache budgets)."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return sum(int(t.numel() * t.element_size()) for t in tensors)

    def count_tokens(self, prompt: str | Sequence[Message], *, continue_last: bool = False) -> int:
        return len(self.prompt_ids(prompt, continue_last=continue_last))

    def prompt_ids(
        self, prompt: str | Sequence[Message], *, continue_last: bool = False
    ) -> list[int]:
        """Token ids of a raw prompt, or of chat messages through the tokenizer's template
        (with the assistant turn opened, or the last assistant message left open to be
        continued)."""
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt)["input_ids"])
        if not self.tokenizer.chat_template:
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"model {self.model_id!r} has no chat template; send a plain prompt",
            )
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
        if continue_last and (not messages or messages[-1]["role"] != "assistant"):
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                "continue_last needs the messages to end with an assistant message",
            )
        text = self.tokenizer.apply_chat_template(
            messages,
            tokenize=False,
            add_generation_prompt=not continue_last,
            continue_final_message=continue_last,
        )
        # The template already wrote any BOS token it wants.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(
        self, prompt: str | Sequence[Message], *, n: int = 1, **sampling: Any
    ) -> list[Completion]:
        """`n` candidates for `prompt` (a string, or chat messages), decoded together.
        Keyword arguments are `Sampling`'s fields (max_tokens, temperature, top_p, top_k,
        repetition_penalty, seed, stop)."""
        opts = self._options(sampling)
        ids = self.prompt_ids(prompt, continue_last=opts.continue_last)
        texts = [""] * n
        finish: list[FinishReason] = ["length"] * n
        counts = [0] * n
        for delta in self._decode(ids, n, opts, counts):
            texts[delta.index] += delta.text
            if delta.finish_reason is not None:
                finish[delta.index] = delta.finish_reason
        return [Completion(i, texts[i], finish[i], len(ids), counts[i]) for i in range(n)]

    def stream(
        self, prompt: str | Sequence[Message], *, n: int = 1, **sampling: Any
    ) -> Iterator[Delta]:
        """Like `generate`, as text deltas per candidate while they are decoded; each
        candidate's last delta carries its finish_reason."""
        opts = self._options(sampling)
        ids = self.prompt_ids(prompt, continue_last=opts.continue_last)
        yield from self._decode(ids, n, opts, [0] * n)

    def _options(self, sampling: dict[str, Any]) -> Sampling:
        opts = Sampling(**_stops(sampling))
        require_supported(self, opts)
        return opts

    def _decode(self, ids: list[int], n: int, opts: Sampling, counts: list[int]) -> Iterator[Delta]:
        import torch

        from pixelforge.models.llm_sampling import pick, processors, random_seed
        from pixelforge.models.llm_text import CandidateText

        if n < 1 or opts.max_tokens < 1:
            raise PixelForgeError(ErrorCode.invalid_parameter, "n and max_tokens must be >= 1")
        device = self.model.device
        generator = torch.Generator(device="cpu")
        generator.manual_seed(opts.seed if opts.seed is not None else random_seed())
        procs = processors(opts, len(ids))
        if opts.response_format is not None:
            from pixelforge.models.llm_constrain import json_constraint

            constraint = json_constraint(
                self, opts.response_format, eos_ids=self._eos, n=n, prompt_len=len(ids)
            )
            if constraint is not None:  # masks first, so top_p/top_k see only legal tokens
                procs.insert(0, constraint)
        texts = [CandidateText(self.tokenizer, opts.stop) for _ in range(n)]
        done = [False] * n
        pending = [0] * n  # tokens decoded since candidate i's last delta
        seqs = torch.tensor([ids] * n, dtype=torch.long, device=device)
        step_input, past = seqs, None
        with torch.inference_mode():
            for step in range(opts.max_tokens):
                out = self.model(input_ids=step_input, past_key_values=past, use_cache=True)
                past = out.past_key_values
                logits = procs(seqs, out.logits[:, -1, :].float())
                nxt = pick(logits, opts.temperature, generator).to(device)
                seqs = torch.cat([seqs, nxt[:, None]], dim=1)
                step_input = nxt[:, None]
                last = step == opts.max_tokens - 1
                for i, token in enumerate(nxt.tolist()):
                    if done[i]:
                        continue
                    if token in self._eos:
                        done[i] = True
                        yield Delta(i, texts[i].flush(), "stop", tokens=pending[i])
                        continue
                    counts[i] += 1
                    pending[i] += 1
                    piece, stopped = texts[i].add(token)
                    if stopped or last:
                        done[i] = True
                        tail = "" if stopped else texts[i].flush()
                        reason: FinishReason = "stop" if stopped else "length"
                        yield Delta(i, piece + tail, reason, tokens=pending[i])
                    elif piece:
                        yield Delta(i, piece, tokens=pending[i])
                        pending[i] = 0
                if all(done):
                    return


def _stops(sampling: dict[str, Any]) -> dict[str, Any]:
    stop = sampling.get("stop")
    if isinstance(stop, str):
        return {**sampling, "stop": (stop,)}
    return {**sampling, "stop": tuple(s for s in stop or () if s)}


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """Every id that ends a turn: the generation config's (often a list) and the tokenizer's."""
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    for value in (getattr(config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return frozenset(ids)
