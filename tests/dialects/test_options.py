"""Dialect options: `Settings.dialect_options[name]` over PIXELFORGE_<NAME>_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from pixelforge.dialects.aiart import settings as aiart_settings
from pixelforge.dialects.perfect import settings as perfect_settings
from pixelforge.settings import Settings


def test_environment_variables_keep_their_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PIXELFORGE_PERFECT_TOKEN_TTL_S", "60")
    monkeypatch.setenv("PIXELFORGE_AIART_REQUIRE_KEY", "true")
    settings = Settings(data_dir=tmp_path)
    options = perfect_settings.load(settings)
    assert options.token_ttl_s == 60
    assert options.private_key_path == tmp_path / "perfect_rsa.pem"
    assert aiart_settings.load(settings).require_key is True
    # The mapping in Settings wins over the environment.
    settings = Settings(data_dir=tmp_path, dialect_options={"perfect": {"token_ttl_s": 5}})
    assert perfect_settings.load(settings).token_ttl_s == 5


def test_unknown_options_are_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, dialect_options={"aiart": {"require_kee": True}})
    with pytest.raises(ValidationError, match="require_kee"):
        aiart_settings.load(settings)
