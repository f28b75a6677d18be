"""AiArt's options: `dialect_options["aiart"]` over PIXELFORGE_AIART_* variables."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from pixelforge.dialects import load_options
from pixelforge.services import Services
from pixelforge.settings import Settings


class AiartSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXELFORGE_AIART_", extra="forbid")

    require_key: bool = False  # False: anonymous use, charged to the account below
    anonymous_email: str = "anonymous@aiart.invalid"
    anonymous_credits: int = 1000  # granted once when that account is created


def load(settings: Settings) -> AiartSettings:
    return load_options(settings, "aiart", AiartSettings)


def options_of(services: Services) -> AiartSettings:
    """The options read at startup."""
    return services.extension("aiart", AiartSettings)
