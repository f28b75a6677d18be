"""The command line: first start, accounts, keys, credits (run as real subprocesses)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.live import free_port

KEY_RE = re.compile(r"pf_[0-9a-f]{8}_[A-Za-z0-9_-]{20,}")


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PIXELFORGE_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "pixelforge", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_accounts_keys_credits(tmp_path: Path) -> None:
    r = cli(tmp_path, "accounts", "create", "--email", "Ada@Example.com", "--credits", "7")
    assert r.returncode == 0, r.stderr
    [key] = KEY_RE.findall(r.stdout)

    r = cli(tmp_path, "keys", "create", "--account", "ada@example.com", "--name", "laptop")
    assert r.returncode == 0, r.stderr
    [second] = KEY_RE.findall(r.stdout)
    assert second != key

    r = cli(tmp_path, "credits", "grant", "--account", "ada@example.com", "--amount", "5")
    assert r.returncode == 0 and "available=12" in r.stdout

    r = cli(tmp_path, "accounts", "create", "--email", "ada@example.com")
    assert r.returncode == 1 and "already exists" in r.stderr

    r = cli(tmp_path, "credits", "grant", "--account", "nobody@example.com", "--amount", "5")
    assert r.returncode == 1 and "not found" in r.stderr

    listing = cli(tmp_path, "accounts", "list").stdout
    assert "ada@example.com" in listing and "available=12" in listing


def _serve_once(data_dir: Path) -> tuple[list[str], int]:
    """Start `pixelforge serve`, return (keys printed, /v1/me status with the first key)."""
    port = free_port()
    env = {**os.environ, "PIXELFORGE_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pixelforge", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    try:
        printed = ""
        for line in proc.stdout:  # the banner ends with the docs address
            printed += line
            if "API docs:" in line:
                break
        keys = KEY_RE.findall(printed)
        deadline = time.monotonic() + 30
        while True:
            try:
                headers = {"X-API-Key": keys[0]} if keys else {}
                status = httpx.get(f"http://127.0.0.1:{port}/v1/me", headers=headers).status_code
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, printed
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    return keys, status


def test_first_start_prints_an_admin_key_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    keys, status = _serve_once(data_dir)
    assert data_dir.is_dir() and (data_dir / "pixelforge.db").exists()
    assert len(keys) == 1 and status == 200  # the printed key works
    keys, status = _serve_once(data_dir)
    assert keys == [] and status == 401  # shown once only
    assert "admin@localhost admin" in cli(data_dir, "accounts", "list").stdout


def test_access_log_never_shows_a_token() -> None:
    import logging

    from pixelforge.cli import RedactTokens

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s"',
        ("1.2.3.4", "GET", "/v1/events?token=pf_abcd1234_secret&x=1"),
        None,
    )
    assert RedactTokens().filter(record)
    assert record.getMessage() == '1.2.3.4 - "GET /v1/events?token=[redacted]&x=1"'
