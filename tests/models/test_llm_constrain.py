"""Constrained decoding (response_format) on the transformers backend: tiny-llama's random
weights still write JSON that matches the schema; SmolLM2 fills it in sensibly."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import CHAT
from pixelforge.models.catalog import Catalog
from pixelforge.models.llm import FEATURE_JSON, ChatModel
from pixelforge.models.manager import ModelManager
from pixelforge.models.tiny_llm import TINY_LLAMA, write_tiny_llama
from tests.conftest import TinyModels

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 16},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "pets": {"type": "array", "items": {"enum": ["cat", "dog"]}, "maxItems": 3},
    },
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}
ASK = [{"role": "user", "content": "Describe Ann, aged 31, who has a cat, as JSON."}]


def schema_format(schema: object) -> dict[str, object]:
    return {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatModel]:
    import torch

    threads = torch.get_num_threads()
    models_dir = tmp_path_factory.mktemp("llm-constrain")
    write_tiny_llama(models_dir / TINY_LLAMA.id)
    Catalog(models_dir).add_profile(TINY_LLAMA)
    with ModelManager(models_dir, device="cpu", threads=1).load(TINY_LLAMA.id, task=CHAT) as m:
        yield m
    torch.set_num_threads(threads)


def check_person(text: str) -> None:
    data = json.loads(text)
    assert set(data) == {"name", "age", "pets"}, data
    assert isinstance(data["name"], str) and len(data["name"]) <= 16
    assert isinstance(data["age"], int) and 0 <= data["age"] <= 150
    assert all(p in ("cat", "dog") for p in data["pets"]) and len(data["pets"]) <= 3


def test_random_weights_still_write_json_that_matches_the_schema(llm: ChatModel) -> None:
    assert FEATURE_JSON in llm.features
    for seed in (1, 2):
        done = llm.generate(
            ASK, n=3, max_tokens=120, seed=seed, response_format=schema_format(PERSON)
        )
        for c in done:
            assert c.finish_reason == "stop", c.text
            check_person(c.text)
    streamed = "".join(
        d.text
        for d in llm.stream(ASK, max_tokens=120, seed=1, response_format=schema_format(PERSON))
    )
    check_person(streamed)


def test_json_object_is_any_json_object(llm: ChatModel) -> None:
    [c] = llm.generate(ASK, max_tokens=60, seed=2, response_format={"type": "json_object"})
    assert isinstance(json.loads(c.text), dict)
    [plain] = llm.generate(ASK, max_tokens=6, seed=2, temperature=0)
    [text] = llm.generate(
        ASK, max_tokens=6, seed=2, temperature=0, response_format={"type": "text"}
    )
    assert text.text == plain.text  # "text" constrains nothing


@pytest.mark.parametrize(
    ("fmt", "words"),
    [
        (schema_format({"type": "strang"}), "strang"),
        (schema_format({"$ref": "#/$defs/missing"}), "missing"),
        (schema_format([1, 2]), "JSON object"),
        ({"type": "yaml"}, "yaml"),
    ],
)
def test_a_schema_that_cannot_be_compiled_is_a_clear_400(
    llm: ChatModel, fmt: dict[str, object], words: str
) -> None:
    with pytest.raises(PixelForgeError) as e:
        llm.generate(ASK, max_tokens=4, response_format=fmt)
    assert e.value.code == ErrorCode.invalid_parameter and e.value.status == 400
    assert "response_format" in e.value.message and words in e.value.message


@pytest.mark.slow
def test_smollm2_fills_the_schema_in(tiny: TinyModels) -> None:
    # The session's models dir: SmolLM2's GGUF is converted there once for every test.
    manager = ModelManager(tiny.dir, device="cpu")
    with manager.load(None, task=CHAT) as model:
        [c] = model.generate(
            ASK, max_tokens=40, temperature=0, response_format=schema_format(PERSON)
        )
    check_person(c.text)
    data = json.loads(c.text)
    assert data["age"] == 31 and "Ann" in data["name"], data
