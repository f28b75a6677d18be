"""AliveAI's options: `dialect_options["aliveai"]` over PIXELFORGE_ALIVEAI_* variables."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pixelforge.dialects import load_options
from pixelforge.dialects.aliveai.schemas import LlmModel
from pixelforge.services import Services
from pixelforge.settings import Settings, parse_rate


class AliveaiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXELFORGE_ALIVEAI_", extra="forbid")

    # The vision endpoints (routes_vision): their model (absent: the server's default vision
    # model), the per-user rate limit the seed announces (None: none) and the reply length.
    vision_model: str | None = None
    vision_rate_limit: str | None = "10/minute"
    vision_max_tokens: int = Field(default=512, ge=16, le=4096)

    @field_validator("vision_rate_limit")
    @classmethod
    def _rate(cls, v: str | None) -> str | None:
        if v:
            parse_rate(v)
        return v or None

    max_blocking_s: float = 40.0  # the longest a blocking request waits for its job
    # Chats created here (the seed takes no model or sampling): their chat model (absent: the
    # server's default chat model) and the sampling every reply of theirs uses.
    chat_reply_model: str | None = Field(None, max_length=200)
    chat_max_tokens: int = Field(300, ge=1, le=8192)
    chat_temperature: float = Field(0.8, ge=0, le=2)

    def chat_sampling(self) -> dict[str, Any]:
        """The sampling defaults of a chat created through the dialect."""
        return {"max_tokens": self.chat_max_tokens, "temperature": self.chat_temperature}

    # The LLM Resource's LlmModel names -> chat model ids; a name not listed runs on llm_model.
    llm_models: dict[LlmModel, str] = Field(default_factory=dict)
    # The chat model of the LLM helpers not mapped above (and of those whose requests name no
    # LlmModel); absent: the server's default chat model (smollm2-135m-instruct).
    llm_model: str | None = None
    # At most this many tokens per helper answer (absent: the templates' own, 160-200); lower
    # it where the chat model runs slowly.
    llm_max_tokens: int | None = Field(None, ge=16, le=1000)

    def llm_model_for(self, name: LlmModel | None) -> str | None:
        """The chat model an LlmModel name (or none) runs on; None: the default one."""
        return self.llm_models.get(name, self.llm_model) if name else self.llm_model


def load(settings: Settings) -> AliveaiSettings:
    return load_options(settings, "aliveai", AliveaiSettings)


def options_of(services: Services) -> AliveaiSettings:
    """The options read at startup."""
    return services.extension("aliveai", AliveaiSettings)
