"""Perfect's options: `dialect_options["perfect"]` over PIXELFORGE_PERFECT_* variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from pixelforge.dialects import load_options
from pixelforge.services import Services
from pixelforge.settings import Settings


class PerfectSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PIXELFORGE_PERFECT_", extra="forbid")

    private_key_path: Path | None = None  # default: <data_dir>/perfect_rsa.pem
    token_ttl_s: int = 2 * 3600
    timestamp_skew_s: float = 300.0  # id_token timestamps older/newer are refused
    poll_timeout_s: float = 10.0  # a task not polled for this long is abandoned


def load(settings: Settings) -> PerfectSettings:
    """The options with the key path resolved under the server's data directory."""
    options = load_options(settings, "perfect", PerfectSettings)
    if options.private_key_path is None:
        options = options.model_copy(
            update={"private_key_path": settings.data_dir / "perfect_rsa.pem"}
        )
    return options


def options_of(services: Services) -> PerfectSettings:
    """The options read at startup."""
    return services.extension("perfect", PerfectSettings)


def key_path(options: PerfectSettings) -> Path:
    if options.private_key_path is None:  # `load` always sets it
        raise RuntimeError("Perfect options were not loaded with `load`")
    return options.private_key_path
