"""Typed settings: the one place PixelForge reads its environment (prefix PIXELFORGE_)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(second|minute|hour|day)s?\s*$")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(text: str) -> tuple[int, float]:
    """Parse '100/minute' or '100/5minutes' into (limit, window seconds)."""
    m = _RATE_RE.match(text.lower())
    if not m:
        raise ValueError(f"rate {text!r} is not of the form '100/minute' or '100/5minutes'")
    count, mult, unit = int(m.group(1)), int(m.group(2) or 1), m.group(3)
    if count <= 0 or mult <= 0:
        raise ValueError(f"rate {text!r} must be positive")
    return count, float(mult * _UNIT_SECONDS[unit])


# Test-only (tests/faults): the points of a job's life where PIXELFORGE_TEST_FAULT kills the
# process. See pixelforge/jobs/faults.py.
FaultPhase = Literal["accepted", "claimed", "running", "capture", "committed"]


def _default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("pixelforge", appauthor=False))


class Settings(BaseSettings):
    """Everything configurable, with the embedded defaults (SQLite, local files, in-process)."""

    model_config = SettingsConfigDict(env_prefix="PIXELFORGE_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None  # default: sqlite file in data_dir
    redis_url: str | None = None  # rate limits and events across processes when set
    secret_key: str | None = None  # default: generated once into data_dir/secret_key
    public_url: str | None = None  # base for absolute download links (e.g. behind a proxy)

    # Workers
    workers: int = 1  # in-process worker threads; 0 = API only (run `pixelforge worker`)
    worker_threads: int = 0  # threads per pipeline call (0 = all cores)
    poll_interval_s: float = 0.5
    lease_s: float = 30.0
    max_attempts: int = 3
    max_batch: int = 4  # same-shape queued jobs run as one call (1 = never batch)

    # Models
    models_path: Path | None = None  # where models live; default data_dir/models
    model_device: str | None = None  # cuda | mps | cpu; default: the best available
    model_cpu_budget_bytes: int | None = None  # default: half the RAM
    model_gpu_budget_bytes: int | None = None  # default: 80% of the GPU's memory
    model_cpu_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    # API keys of openai-upstream models, by profile id, as JSON:
    # PIXELFORGE_UPSTREAM_API_KEYS='{"my-vllm": "sk-..."}'. Secret: never logged or shown.
    upstream_api_keys: dict[str, SecretStr] = Field(default_factory=dict)

    # NSFW gate: NudeNet labels that block a result when the job asks for block_explicit
    nsfw_block_labels: list[str] | None = None  # default: the exposed-content labels

    # Auth
    access_token_ttl_s: int = 3600
    bootstrap_admin: bool = True

    # Limits
    max_upload_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    url_fetch_timeout_s: float = 10.0
    url_fetch_max_redirects: int = 3
    url_fetch_allow_networks: list[str] = Field(default_factory=list)
    rate_limit_per_key: str = "100/minute"
    rate_limit_per_ip: str = "100/5minutes"
    rate_limit_enabled: bool = True
    trust_forwarded_for: bool = False

    # Slow clients (see README "Slow clients"); applied by `pixelforge serve`
    header_timeout_s: float = Field(10.0, gt=0)  # request line + headers must arrive in this
    body_timeout_s: float = Field(60.0, gt=0)  # the whole body must arrive in this
    max_connections_per_client: int = Field(64, ge=0)  # open connections per address; 0 = any

    # Media
    signed_url_ttl_s: int = 2 * 3600
    upload_retention_s: int = 24 * 3600
    result_retention_s: int = 30 * 24 * 3600
    sweep_interval_s: float = 300.0

    # Blocking mode
    max_wait_s: float = 60.0

    # Test-only: kill the process at this phase of a job (the fault-matrix tests); never set it
    test_fault: FaultPhase | None = None

    # Dialects (foreign APIs mounted beside the native one; see docs/dialects/)
    dialects: list[str] = Field(
        default_factory=lambda: ["aiart", "eventstation", "perfect", "aliveai", "openai"]
    )
    # Each dialect's own options, validated by its settings class (pixelforge/dialects/<name>/
    # settings.py); its PIXELFORGE_<NAME>_* environment variables apply under these.
    dialect_options: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("rate_limit_per_key", "rate_limit_per_ip")
    @classmethod
    def _check_rate(cls, v: str) -> str:
        parse_rate(v)
        return v

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def models_dir(self) -> Path:
        return self.models_path or self.data_dir / "models"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'pixelforge.db'}"
