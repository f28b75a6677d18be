"""Language models on llama.cpp (llama-cpp-python): GGUF files, the `llama-cpp` profile kind."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import ModelProfile
from pixelforge.models.llm import (
    FEATURE_CONTINUE,
    FEATURE_JSON,
    GGUF_FILE,
    Completion,
    Delta,
    FinishReason,
    Message,
    Sampling,
    gguf_path,
    require_supported,
)
from pixelforge.models.llm_options import sampling_from
from pixelforge.models.llm_sampling import random_seed
from pixelforge.models.llm_text import CandidateText

log = logging.getLogger(__name__)

LLAMA_CPP = "llama-cpp"
INSTALL_HINT = "install the llama extra: pip install 'pixelforge[llama]'"
# The KV cache grows with the context; a model trained on 128k tokens would reserve gigabytes
# for it. Profiles that want more say so with extra.n_ctx.
N_CTX_CAP = 8192


def check_cpp(profile: ModelProfile) -> None:
    """Concise errors for a llama-cpp profile written by hand."""
    if not isinstance(profile.extra.get(GGUF_FILE), str):
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r}: a {LLAMA_CPP} profile names its GGUF file in "
            f'extra.{GGUF_FILE} (e.g. "model.Q4_K_M.gguf" inside its folder)',
        )
    for key in ("context_length", "n_ctx"):
        value = profile.extra.get(key)
        if value is not None and (not isinstance(value, int) or value < 16):
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"model {profile.id!r}: extra.{key} must be an integer >= 16",
            )


def load_cpp_model(profile: ModelProfile, folder: Path, *, threads: int) -> CppChat:
    """The profile's GGUF file in llama.cpp, with a context of `n_ctx` tokens: extra.n_ctx,
    else the smaller of extra.context_length (or what the model was trained on) and 8192."""
    try:
        import llama_cpp
    except ImportError as e:
        raise PixelForgeError(
            ErrorCode.model_unavailable,
            f"model {profile.id!r} runs on llama.cpp, which is not installed; {INSTALL_HINT}",
        ) from e
    gguf = gguf_path(profile, folder)
    if gguf is None:
        raise PixelForgeError(
            ErrorCode.model_unavailable,
            f"model {profile.id!r}: its GGUF file {profile.extra.get(GGUF_FILE)!r} is missing",
        )
    threads = threads if threads > 0 else (os.cpu_count() or 1)
    start = time.perf_counter()
    try:
        n_ctx = profile.extra.get("n_ctx") or min(_trained_context(profile, gguf), N_CTX_CAP)
        llm = llama_cpp.Llama(
            model_path=str(gguf),
            n_ctx=n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
    except (ValueError, RuntimeError) as e:
        raise PixelForgeError(
            ErrorCode.model_unavailable,
            f"model {profile.id!r} could not be loaded from {gguf}: {e}",
        ) from e
    log.info(
        "loaded llama.cpp model %s (n_ctx %d, %d threads) in %.1f s",
        profile.id,
        llm.n_ctx(),
        threads,
        time.perf_counter() - start,
    )
    return CppChat(profile.id, llm, gguf.stat().st_size)


def _trained_context(profile: ModelProfile, gguf: Path) -> int:
    given = profile.extra.get("context_length")
    if isinstance(given, int):
        return given
    import llama_cpp

    # The vocabulary alone loads in milliseconds and carries the metadata.
    probe = llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    try:
        return int(probe._model.n_ctx_train())
    finally:
        probe.close()


class CppChat:
    """A ChatEngine over one llama.cpp context. A context decodes one sequence at a time, so
    calls take turns (a lock); candidates are decoded one after the other."""

    features = frozenset({FEATURE_JSON, FEATURE_CONTINUE})

    def __init__(self, model_id: str, llm: Any, nbytes: int) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.model_id = model_id
        self.llm = llm
        self.context_length: int = llm.n_ctx()
        self.resident_bytes = nbytes  # the cache budgets the mapped GGUF file
        self._lock = threading.Lock()
        template = llm.metadata.get("tokenizer.chat_template")
        self._formatters: dict[bool, Any] = {}
        if template:
            eos, bos = llm.token_eos(), llm.token_bos()
            for opened in (True, False):
                self._formatters[opened] = Jinja2ChatFormatter(
                    template=template,
                    eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                    bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
                    add_generation_prompt=opened,
                )

    def release(self) -> None:
        """Free the model and its context now (the cache calls this on eviction)."""
        self.llm.close()

    # -- ChatEngine ----------------------------------------------------------------------------

    def prompt_ids(
        self, prompt: str | Sequence[Message], *, continue_last: bool = False
    ) -> list[int]:
        """Token ids of a raw prompt (with BOS when the model wants one), or of chat messages
        through the GGUF's chat template: the assistant turn opened, or with `continue_last`
        the final assistant message left open to be continued."""
        if isinstance(prompt, str):
            return list(self.llm.tokenize(prompt.encode(), add_bos=True, special=False))
        text = self._render(list(prompt), continue_last)
        # The template already wrote any BOS token it wants.
        return list(self.llm.tokenize(text.encode(), add_bos=False, special=True))

    def count_tokens(self, prompt: str | Sequence[Message], *, continue_last: bool = False) -> int:
        return len(self.prompt_ids(prompt, continue_last=continue_last))

    def generate(
        self, prompt: str | Sequence[Message], *, n: int = 1, **sampling: Any
    ) -> list[Completion]:
        """`n` candidates for `prompt`; keyword arguments are `Sampling`'s fields. With a seed,
        candidate i samples with seed + i."""
        texts = [""] * n
        finish: list[FinishReason] = ["length"] * n
        counts = [0] * n
        ids: list[int] = []
        for delta in self._run(prompt, n, sampling_from(sampling), counts, ids):
            texts[delta.index] += delta.text
            if delta.finish_reason is not None:
                finish[delta.index] = delta.finish_reason
        return [Completion(i, texts[i], finish[i], len(ids), counts[i]) for i in range(n)]

    def stream(
        self, prompt: str | Sequence[Message], *, n: int = 1, **sampling: Any
    ) -> Iterator[Delta]:
        """Like `generate`, as deltas while they are decoded (candidate 0 first, then 1...)."""
        yield from self._run(prompt, n, sampling_from(sampling), [0] * n, [])

    # -- decoding ------------------------------------------------------------------------------

    def _run(
        self,
        prompt: str | Sequence[Message],
        n: int,
        opts: Sampling,
        counts: list[int],
        ids_out: list[int],
    ) -> Iterator[Delta]:
        require_supported(self, opts)
        if n < 1 or opts.max_tokens < 1:
            raise PixelForgeError(ErrorCode.invalid_parameter, "n and max_tokens must be >= 1")
        ids = self.prompt_ids(prompt, continue_last=opts.continue_last)
        ids_out[:] = ids
        if len(ids) >= self.context_length:
            raise PixelForgeError(
                ErrorCode.context_length_exceeded,
                f"the prompt is {len(ids)} tokens; model {self.model_id!r} takes "
                f"{self.context_length} tokens in all (prompt and reply)",
            )
        grammar = _grammar(opts.response_format)
        seed = opts.seed if opts.seed is not None else random_seed()
        with self._lock:
            for i in range(n):
                yield from self._candidate(ids, i, opts, grammar, (seed + i) % 2**32, counts)

    def _candidate(
        self,
        ids: list[int],
        index: int,
        opts: Sampling,
        grammar: Any,
        seed: int,
        counts: list[int],
    ) -> Iterator[Delta]:
        import llama_cpp

        llm = self.llm
        budget = min(opts.max_tokens, self.context_length - len(ids))
        text = CandidateText(_Detokenizer(llm), opts.stop)
        llm.set_seed(seed)
        tokens = llm.generate(
            ids,
            top_k=opts.top_k,  # 0: off, as in Sampling
            top_p=opts.top_p,
            min_p=0.0,
            typical_p=1.0,
            temp=max(opts.temperature, 0.0),  # 0: greedy
            repeat_penalty=opts.repetition_penalty,
            frequency_penalty=opts.frequency_penalty,
            presence_penalty=opts.presence_penalty,
            grammar=grammar,
        )
        pending = 0  # tokens decoded since this candidate's last delta
        try:
            for token in tokens:
                if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                    yield Delta(index, text.flush(), "stop", tokens=pending)
                    return
                counts[index] += 1
                pending += 1
                piece, stopped = text.add(token)
                if stopped or counts[index] >= budget:
                    tail = "" if stopped else text.flush()
                    reason: FinishReason = "stop" if stopped else "length"
                    yield Delta(index, piece + tail, reason, tokens=pending)
                    return
                if piece:
                    yield Delta(index, piece, tokens=pending)
                    pending = 0
        finally:
            tokens.close()

    def _render(self, messages: list[Message], continue_last: bool) -> str:
        if not self._formatters:
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"model {self.model_id!r} has no chat template; send a plain prompt",
            )
        if not continue_last:
            return str(self._formatters[True](messages=messages).prompt)
        last = messages[-1] if messages else None
        if last is None or last.get("role") != "assistant":
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                "continue_last needs an assistant message last, to continue it",
            )
        content = last["content"].strip()
        if not content:  # nothing to continue: a fresh reply
            return str(self._formatters[True](messages=messages[:-1]).prompt)
        # The whole conversation, closed; then cut right after the last message's text (the
        # template's end-of-turn marker and anything after it go).
        text = str(self._formatters[False](messages=messages).prompt)
        at = text.rfind(content)
        if at < 0:
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"model {self.model_id!r}: its chat template rewrites message text, so the "
                "last message cannot be continued",
            )
        return text[: at + len(content)]


class _Detokenizer:
    """The `decode` that CandidateText expects, over llama.cpp's vocabulary."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        data = self._llm.detokenize(ids, special=not skip_special_tokens)
        return bytes(data).decode("utf-8", errors="replace")


def _grammar(response_format: dict[str, Any] | None) -> Any:
    """A llama.cpp grammar that only lets valid JSON (of the schema, if given) be sampled."""
    if not response_format or response_format.get("type") == "text":
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    kind = response_format.get("type")
    if kind == "json_object":
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                'response_format json_schema needs {"json_schema": {"name": ..., "schema": {...}}}',
            )
        try:
            return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except (ValueError, KeyError, TypeError, RuntimeError) as e:
            raise PixelForgeError(
                ErrorCode.invalid_parameter, f"response_format schema is not usable: {e}"
            ) from e
    raise PixelForgeError(
        ErrorCode.invalid_parameter,
        f"response_format type must be text, json_object or json_schema, not {kind!r}",
    )
