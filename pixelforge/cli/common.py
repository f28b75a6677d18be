"""What the command's subcommands share: settings, services, errors, the --data-dir option."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any

import click

from pixelforge.errors import PixelForgeError
from pixelforge.settings import Settings


def settings_for(data_dir: Path | None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def services_for(data_dir: Path | None):  # type: ignore[no-untyped-def]
    from pixelforge.services import build_services

    return build_services(settings_for(data_dir))


def fail(e: PixelForgeError) -> None:
    click.echo(f"error: {e.message} ({e.code.value})", err=True)
    sys.exit(1)


_TOKEN_IN_URL = re.compile(r"([?&]token=)[^&\s\"]+")


class RedactTokens(logging.Filter):
    """Keeps `?token=<API key>` (websocket auth for browsers) out of the server's logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_URL.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory (default: $PIXELFORGE_DATA_DIR or a per-user directory).",
)
