"""Vision-language models on transformers: an image (or none) and chat messages -> text.

A profile of kind `transformers-vlm` serves the task `vision`. `with models.load(id,
task="vision") as vlm:` yields a `VisionModel`: `generate(messages, images=[...], max_tokens=,
temperature=, top_p=, top_k=, repetition_penalty=, seed=, stop=)` returns one `Completion`,
`stream(...)` the same text as `Delta`s. Any checkpoint that `AutoModelForImageTextToText` and
`AutoProcessor` read works (SmolVLM / Idefics3, Qwen2.5-VL, LLaVA...): decoding runs through the
model's own `generate`, so each architecture prepares its image inputs and positions its own
way, while the token choice is ours: a seeded CPU generator (the same seed gives the same text
on every device) behind a logits processor, and stop sequences held back as `llm_text` does.
"""

from __future__ import annotations

import functools
import importlib
import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import VISION, ModelProfile
from pixelforge.models.cache import ModelCache
from pixelforge.models.llm import Completion, Delta, FinishReason, Sampling, _eos_ids, _stops

log = logging.getLogger(__name__)

TRANSFORMERS_VLM = "transformers-vlm"
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
# A message's content: plain text, or parts [{"type": "image"}, {"type": "text", "text": ...}].
VisionMessage = dict[str, Any]

# Built-in vision profiles (pulled: `pixelforge models pull <id>`).
VLM_PROFILES: tuple[ModelProfile, ...] = (
    ModelProfile(
        id="smolvlm-256m-instruct",
        family="smolvlm",
        kind=TRANSFORMERS_VLM,
        tasks=(VISION,),
        source="HuggingFaceTB/SmolVLM-256M-Instruct",
        description="SmolVLM-256M-Instruct: describes images in English, runs on a CPU; "
        "about 0.5 GB",
        dtype_gpu="bfloat16",
        extra={"context_length": 8192},
    ),
    ModelProfile(
        id="qwen2.5-vl-3b-instruct",
        family="qwen2.5-vl",
        kind=TRANSFORMERS_VLM,
        tasks=(VISION,),
        source="Qwen/Qwen2.5-VL-3B-Instruct",
        description="Qwen2.5-VL-3B-Instruct: detailed multilingual image descriptions and "
        "text reading; about 7.5 GB, a GPU recommended",
        dtype_gpu="bfloat16",
        extra={"context_length": 32768},
    ),
)


def resident_vlm(
    cache: ModelCache, profile: ModelProfile, folder: Path, *, dtype: str, device: str
) -> AbstractContextManager[Any]:
    """The profile's `VisionModel`, loaded once and pinned for the `with` block."""
    from pixelforge.models.download import disk_bytes

    estimate = 0
    if profile.id not in cache:
        estimate = disk_bytes(folder, None) * _DTYPE_BYTES[dtype] // 4
    load = functools.partial(load_vision_model, profile, folder, dtype=dtype, device=device)
    return cache.use(profile.id, device=device, load=load, estimate_bytes=estimate, dtype=dtype)


def load_vision_model(
    profile: ModelProfile, folder: Path, *, dtype: str, device: str
) -> VisionModel:
    """Model and processor (image processor, tokenizer, chat template) from an HF folder."""
    import torch

    tf = importlib.import_module("transformers")
    start = time.perf_counter()
    try:
        processor = tf.AutoProcessor.from_pretrained(folder)
        model = tf.AutoModelForImageTextToText.from_pretrained(folder, dtype=getattr(torch, dtype))
    except (OSError, ValueError, KeyError) as e:
        raise PixelForgeError(
            ErrorCode.model_unavailable,
            f"model {profile.id!r} could not be loaded from {folder}: {e}",
        ) from e
    model.to(device).eval()
    log.info(
        "loaded vision model %s (%s, %s) in %.1f s",
        profile.id,
        dtype,
        device,
        time.perf_counter() - start,
    )
    return VisionModel(profile.id, model, processor, context_length=_context_length(profile, model))


def _context_length(profile: ModelProfile, model: Any) -> int:
    declared = profile.extra.get("context_length")
    if isinstance(declared, int) and declared > 0:
        return declared
    config = model.config
    text = getattr(config, "text_config", None) or config
    limit = getattr(text, "max_position_embeddings", None)
    return limit if isinstance(limit, int) and limit > 0 else 2048


class VisionModel:
    """A loaded vision-language model and its processor. One generation at a time per model
    (some architectures keep per-call state on the module, e.g. Qwen2.5-VL's rope deltas)."""

    features: frozenset[str] = frozenset()

    def __init__(self, model_id: str, model: Any, processor: Any, *, context_length: int) -> None:
        self.model_id = model_id
        self.model = model
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.context_length = context_length
        self._eos = _eos_ids(model, self.tokenizer)
        self._lock = threading.Lock()

    @property
    def resident_bytes(self) -> int:
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return sum(int(t.numel() * t.element_size()) for t in tensors)

    def inputs(self, messages: Sequence[VisionMessage], images: Sequence[Any] = ()) -> Any:
        """The processor's tensors for `messages` (chat template applied, assistant turn
        opened) and `images` (PIL), one `{"type": "image"}` part per image; when no message
        has one, the images go before the text of the last user message."""
        parts = [_parts(m) for m in messages]
        placed = sum(1 for m in parts for p in m["content"] if p.get("type") == "image")
        if images and placed == 0:
            last = max((i for i, m in enumerate(parts) if m["role"] == "user"), default=None)
            if last is None:
                raise PixelForgeError(ErrorCode.invalid_parameter, "an image needs a user message")
            parts[last]["content"] = [{"type": "image"} for _ in images] + parts[last]["content"]
            placed = len(images)
        if placed != len(images):
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"the messages have {placed} image parts for {len(images)} images",
            )
        text = self.processor.apply_chat_template(parts, add_generation_prompt=True)
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if images:
            kwargs["images"] = [[img.convert("RGB") for img in images]]
        return self.processor(**kwargs).to(self.model.device)

    def count_tokens(self, messages: Sequence[VisionMessage], images: Sequence[Any] = ()) -> int:
        """Prompt tokens, image tokens included."""
        return int(self.inputs(messages, images)["input_ids"].shape[1])

    def generate(
        self, messages: Sequence[VisionMessage], *, images: Sequence[Any] = (), **sampling: Any
    ) -> Completion:
        """The reply to `messages` about `images`; keywords are `Sampling`'s fields."""
        texts: list[str] = []
        finish: FinishReason = "length"
        tokens = 0
        inputs = self.inputs(messages, images)
        for delta in self._decode(inputs, self._options(sampling)):
            texts.append(delta.text)
            tokens += delta.tokens
            if delta.finish_reason is not None:
                finish = delta.finish_reason
        prompt_tokens = int(inputs["input_ids"].shape[1])
        return Completion(0, "".join(texts), finish, prompt_tokens, tokens)

    def stream(
        self, messages: Sequence[VisionMessage], *, images: Sequence[Any] = (), **sampling: Any
    ) -> Iterator[Delta]:
        """Like `generate`, as text deltas while decoded; the last carries the finish_reason
        (and every delta the completion tokens it accounts for)."""
        opts = self._options(sampling)
        yield from self._decode(self.inputs(messages, images), opts)

    def _options(self, sampling: dict[str, Any]) -> Sampling:
        opts = Sampling(**_stops(sampling))
        wants_json = opts.response_format is not None and opts.response_format.get("type") != "text"
        for name, asked in (
            ("response_format", wants_json),
            ("tools", bool(opts.tools)),
            ("continue_last", opts.continue_last),
        ):
            if asked:
                raise PixelForgeError(
                    ErrorCode.invalid_parameter,
                    f"vision model {self.model_id!r} does not support {name}",
                )
        if opts.max_tokens < 1:
            raise PixelForgeError(ErrorCode.invalid_parameter, "max_tokens must be >= 1")
        return opts

    def _decode(self, inputs: Any, opts: Sampling) -> Iterator[Delta]:
        from pixelforge.models.llm_text import CandidateText

        feed = _Feed()
        halt = threading.Event()
        prompt_len = int(inputs["input_ids"].shape[1])
        text = CandidateText(self.tokenizer, opts.stop)
        with self._lock:
            worker = threading.Thread(
                target=self._run_generate,
                args=(inputs, opts, prompt_len, feed, halt),
                name=f"vlm-{self.model_id}",
                daemon=True,
            )
            worker.start()
            try:
                yield from _deltas(feed, text, self._eos, opts.max_tokens, halt)
            finally:
                # The reader left (done, a stop sequence, or the job was canceled): end the
                # decoding at its next token and wait for it, so the lock is free again.
                halt.set()
                worker.join()

    def _run_generate(
        self, inputs: Any, opts: Sampling, prompt_len: int, feed: _Feed, halt: threading.Event
    ) -> None:
        tf = importlib.import_module("transformers")
        try:
            config = tf.GenerationConfig(
                max_new_tokens=opts.max_tokens,
                do_sample=False,  # our processor makes the (seeded) choice; argmax takes it
                eos_token_id=sorted(self._eos) or None,
                pad_token_id=self.tokenizer.pad_token_id,
            )
            self.model.generate(
                **inputs,
                generation_config=config,
                logits_processor=tf.LogitsProcessorList([_SeededChoice(opts, prompt_len)]),
                stopping_criteria=tf.StoppingCriteriaList([_Halted(halt)]),
                streamer=feed,
            )
        except BaseException as e:  # handed to the reader, which raises it
            feed.queue.put(e)
        finally:
            feed.queue.put(_END)


_END = object()


def _deltas(
    feed: _Feed, text: Any, eos: frozenset[int], max_tokens: int, halt: threading.Event
) -> Iterator[Delta]:
    """Token ids from the decoding thread -> text deltas, as `ChatModel` cuts them."""
    count = pending = 0
    while True:
        item = feed.queue.get()
        if item is _END:
            break
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, int)
        token = item
        if token in eos:
            yield Delta(0, text.flush(), "stop", tokens=pending)
            return
        count += 1
        pending += 1
        piece, stopped = text.add(token)
        if stopped:
            halt.set()
            yield Delta(0, piece, "stop", tokens=pending)
            return
        if count >= max_tokens:
            yield Delta(0, piece + text.flush(), "length", tokens=pending)
            return
        if piece:
            yield Delta(0, piece, tokens=pending)
            pending = 0
    yield Delta(0, text.flush(), "length", tokens=pending)


class _Feed:
    """A `generate` streamer: the prompt first (skipped), then each new token id."""

    def __init__(self) -> None:
        self.queue: queue.Queue[object] = queue.Queue()
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:
            self._prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.queue.put(token)

    def end(self) -> None:
        pass  # _END is queued when generate returns (or raises)


class _SeededChoice:
    """Applies the sampling warpers, then draws the next token from a seeded CPU generator and
    leaves only it possible, so greedy `generate` takes exactly our draw."""

    def __init__(self, opts: Sampling, prompt_len: int) -> None:
        import torch

        from pixelforge.models.llm_sampling import processors, random_seed

        self.opts = opts
        self.processors = processors(opts, prompt_len)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(opts.seed if opts.seed is not None else random_seed())

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        from pixelforge.models.llm_sampling import pick

        warped = self.processors(input_ids, scores.float())
        choice = pick(warped, self.opts.temperature, self.generator).to(scores.device)
        only = torch.full_like(scores, float("-inf"))
        return only.scatter(1, choice[:, None], 0.0)


class _Halted:
    """Stops `generate` once the reader has left."""

    def __init__(self, halt: threading.Event) -> None:
        self.halt = halt

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.halt.is_set(), dtype=torch.bool)


def _parts(message: VisionMessage) -> dict[str, Any]:
    """A message with its content as a list of parts (the form VLM chat templates read)."""
    role = message.get("role")
    if role not in ("system", "user", "assistant"):
        raise PixelForgeError(ErrorCode.invalid_parameter, f"unknown message role {role!r}")
    content = message.get("content", "")
    if isinstance(content, str):
        return {"role": role, "content": [{"type": "text", "text": content}]}
    return {"role": role, "content": [dict(p) for p in content]}
