"""Catalog entries as pipelines see them (read-only values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class StylePreset:
    name: str  # e.g. "neon-punk"
    prompt: str  # template with "{prompt}"
    negative_prompt: str = ""
    model: str | None = None  # preferred model profile id
    params: dict[str, Any] = field(default_factory=dict)  # e.g. {"guidance": 6.0}

    def apply(self, prompt: str, negative: str | None) -> tuple[str, str]:
        """The styled prompt and the merged negative prompt."""
        styled = (
            self.prompt.replace("{prompt}", prompt)
            if "{prompt}" in self.prompt
            else (f"{prompt}, {self.prompt}" if self.prompt else prompt)
        )
        merged = ", ".join(p for p in (negative or "", self.negative_prompt) if p)
        return styled, merged


@dataclass(frozen=True)
class LoraTemplate:
    id: str
    name: str
    type: str  # IMAGE | IMAGE_EDIT | VIDEO
    source: str  # a .safetensors file, a directory, or a Hugging Face repo id
    weight_name: str | None = None
    base_family: str | None = None  # the model family it was trained for
    trigger: str = ""  # words added to the prompt when used
    default_strength: float = 1.0


class CatalogView(Protocol):
    """What pipelines may look up (RunContext.catalog)."""

    def style(self, name: str, *, task: str = "text_to_image") -> StylePreset | None: ...

    def lora(self, template_id: str) -> LoraTemplate | None: ...
