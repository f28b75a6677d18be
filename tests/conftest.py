"""Shared fixtures: a real server on a loopback port, accounts, the local PostgreSQL."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixelforge.models.base import ModelProfile
from pixelforge.settings import Settings
from tests.live import LiveServer

PG_ADMIN_URL = os.environ.get(
    "PIXELFORGE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PIXELFORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def services_required() -> bool:
    return os.environ.get("PIXELFORGE_REQUIRE_SERVICES") == "1"


def _unavailable(what: str, err: Exception) -> None:
    msg = f"{what} not reachable ({err})"
    if services_required():
        pytest.fail(f"{msg}; PIXELFORGE_REQUIRE_SERVICES=1 makes it required")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    import psycopg

    dsn = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"pf_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as e:
        _unavailable("PostgreSQL", e)
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TinyModels:
    def __init__(self, models_dir: Path, profiles: list[ModelProfile], seconds: float) -> None:
        self.dir = models_dir
        self.profiles = profiles
        self.seconds = seconds


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyModels]:
    import torch

    from pixelforge.models.tiny import create_tiny_models

    threads = torch.get_num_threads()
    models_dir = tmp_path_factory.mktemp("models")
    start = time.perf_counter()
    profiles = create_tiny_models(models_dir)
    yield TinyModels(models_dir, profiles, time.perf_counter() - start)
    torch.set_num_threads(threads)  # the managers below set 1; leave the session as found


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    base: dict[str, object] = {
        "data_dir": data_dir,
        "poll_interval_s": 0.05,
        "lease_s": 5.0,
        "rate_limit_enabled": False,
        "bootstrap_admin": False,
        "worker_threads": 2,
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real PixelForge server (uvicorn) on a free loopback port, one worker thread."""
    with LiveServer(make_settings(tmp_path / "data")) as srv:
        yield srv
