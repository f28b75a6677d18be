"""AliveAI's options: `dialect_options["aliveai"]` over PIXELFORGE_ALIVEAI_* variables."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pixelforge.dialects import load_options
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


def load(settings: Settings) -> AliveaiSettings:
    return load_options(settings, "aliveai", AliveaiSettings)


def options_of(services: Services) -> AliveaiSettings:
    """The options read at startup."""
    return services.extension("aliveai", AliveaiSettings)
