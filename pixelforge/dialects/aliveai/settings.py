"""AliveAI's options: `dialect_options["aliveai"]` over PIXELFORGE_ALIVEAI_* variables."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from pixelforge.dialects import load_options
from pixelforge.services import Services
from pixelforge.settings import Settings


class AliveaiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXELFORGE_ALIVEAI_", extra="forbid")

    max_blocking_s: float = 40.0  # the longest a blocking request waits for its job


def load(settings: Settings) -> AliveaiSettings:
    return load_options(settings, "aliveai", AliveaiSettings)


def options_of(services: Services) -> AliveaiSettings:
    """The options read at startup."""
    return services.extension("aliveai", AliveaiSettings)
