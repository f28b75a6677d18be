"""AliveAI's options: `dialect_options["aliveai"]` over PIXELFORGE_ALIVEAI_* variables."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from pixelforge.dialects import load_options
from pixelforge.services import Services
from pixelforge.settings import Settings


class AliveaiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXELFORGE_ALIVEAI_", extra="forbid")

    max_blocking_s: float = 40.0  # the longest a blocking request waits for its job
    # Chats created here (the seed takes no model or sampling): their chat model (absent: the
    # server's default chat model) and the sampling every reply of theirs uses.
    chat_reply_model: str | None = Field(None, max_length=200)
    chat_max_tokens: int = Field(300, ge=1, le=8192)
    chat_temperature: float = Field(0.8, ge=0, le=2)

    def chat_sampling(self) -> dict[str, Any]:
        """The sampling defaults of a chat created through the dialect."""
        return {"max_tokens": self.chat_max_tokens, "temperature": self.chat_temperature}


def load(settings: Settings) -> AliveaiSettings:
    return load_options(settings, "aliveai", AliveaiSettings)


def options_of(services: Services) -> AliveaiSettings:
    """The options read at startup."""
    return services.extension("aliveai", AliveaiSettings)
