"""Tests for pixelforge/pipelines/registry.py: every shipped pipeline keeps the contract."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import BaseModel

import pixelforge.pipelines
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.pipelines.contract import BatchingPipeline, Pipeline
from pixelforge.pipelines.limits import InputLimit
from pixelforge.pipelines.registry import PipelineRegistry, default_registry

PIPELINES_DIR = Path(pixelforge.pipelines.__file__).parent


def test_every_pipeline_has_the_contract() -> None:
    pipelines = list(default_registry())
    assert pipelines
    for p in pipelines:
        assert isinstance(p.name, str) and p.name, p
        assert isinstance(p.description, str) and p.description, p.name
        assert isinstance(p.Params, type) and issubclass(p.Params, BaseModel), p.name
        assert callable(p.cost) and callable(p.run), p.name
        # Declared on the class itself (None: no limits beyond uploads), never left to a default.
        assert "input_limit" in {n for c in type(p).__mro__ for n in vars(c)}, p.name
        assert p.input_limit is None or isinstance(p.input_limit, InputLimit), p.name


def test_names_are_unique() -> None:
    names = [p.name for p in default_registry()]
    assert len(names) == len(set(names))
    registry = PipelineRegistry()
    first: Pipeline = next(iter(default_registry()))
    registry.register(first)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(first)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(PixelForgeError) as err:
        default_registry().get("nope")
    assert err.value.code == ErrorCode.unknown_pipeline
    assert "text_to_image" in err.value.message


def test_batching_pipelines_satisfy_the_protocol() -> None:
    registry = default_registry()
    batching = {p.name for p in registry if isinstance(p, BatchingPipeline)}
    assert batching == {"text_to_image"}
    for p in registry:
        # A pipeline with half of the batching methods would be silently run one job at a time.
        has = {m for m in ("batch_key", "run_batch") if callable(getattr(p, m, None))}
        assert has in (set(), {"batch_key", "run_batch"}), p.name


def test_no_pipeline_imports_a_sibling_or_the_registry() -> None:
    """Pipelines share code through helper modules (contract, limits, diffusion, portrait,
    realesrgan), never through another pipeline; only the registry imports pipelines."""
    names = {p.name for p in default_registry()}
    modules = {type(p).__module__.rsplit(".", 1)[-1] for p in default_registry()}
    assert "text_to_image" in names and "hair" in modules
    for module in sorted(modules):
        tree = ast.parse((PIPELINES_DIR / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "pixelforge.pipelines":
                imported = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported = [node.module]
            elif isinstance(node, ast.Import):
                imported = [a.name for a in node.names]
            else:
                continue
            for name in imported:
                assert name.removeprefix("pixelforge.pipelines.") not in modules | {"registry"}, (
                    module,
                    name,
                )
