"""Chat engines the model manager loads without torch: llama.cpp (GGUF) and OpenAI-compatible
upstream servers, each a cache entry like any model."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from pixelforge.models.base import ModelProfile
from pixelforge.models.cache import ModelCache
from pixelforge.models.llm import gguf_path
from pixelforge.models.llm_cpp import LLAMA_CPP, check_cpp, load_cpp_model
from pixelforge.models.llm_upstream import OPENAI_UPSTREAM, UpstreamChat, check_upstream

ENGINE_KINDS = (LLAMA_CPP, OPENAI_UPSTREAM)


def check_engine_profile(profile: ModelProfile) -> None:
    """The kind's own checks of a hand-written profile (concise invalid_parameter errors)."""
    if profile.kind == LLAMA_CPP:
        check_cpp(profile)
    elif profile.kind == OPENAI_UPSTREAM:
        check_upstream(profile)


def resident_engine(
    cache: ModelCache,
    profile: ModelProfile,
    folder: Path,
    *,
    threads: int,
    api_keys: Mapping[str, str],
) -> AbstractContextManager[Any]:
    """The profile's engine, loaded once and pinned for the `with` block. llama.cpp maps
    the GGUF file, so the budget counts its size; an upstream engine holds no weights."""
    if profile.kind == LLAMA_CPP:
        gguf = gguf_path(profile, folder)
        estimate = gguf.stat().st_size if gguf is not None and profile.id not in cache else 0
        load: Any = functools.partial(load_cpp_model, profile, folder, threads=threads)
        return cache.use(profile.id, device="cpu", load=load, estimate_bytes=estimate, dtype="gguf")
    if profile.kind == OPENAI_UPSTREAM:
        # The key lives in the engine's HTTP client only; it is never logged.
        load = functools.partial(UpstreamChat, profile, api_key=api_keys.get(profile.id))
        return cache.use(profile.id, device="cpu", load=load, dtype="remote")
    raise ValueError(f"not an engine kind: {profile.kind}")
