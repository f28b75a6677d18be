"""The `pixelforge` command: serve, worker, accounts, keys, credits, db."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import click

from pixelforge.cli.common import (
    RedactTokens,
    data_dir_option,
    fail,
    services_for,
    settings_for,
)
from pixelforge.cli.models import models
from pixelforge.errors import PixelForgeError


@click.group()
@click.version_option(package_name="pixelforge")
def main() -> None:
    """PixelForge: a self-hosted generative-media API server."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic narrates every plugin it loads at INFO; only its warnings matter here.
    logging.getLogger("alembic").setLevel(logging.WARNING)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", type=int, default=None, help="In-process worker threads (0 = none).")
@data_dir_option
def serve(host: str, port: int, workers: int | None, data_dir: Path | None) -> None:
    """Start the API server (with in-process workers)."""
    import uvicorn

    from pixelforge.app import create_app
    from pixelforge.services import build_services
    from pixelforge.web.serving import uvicorn_config

    settings = settings_for(data_dir, workers=workers)
    services = build_services(settings)
    if settings.bootstrap_admin and (key := services.accounts.ensure_admin()) is not None:
        click.echo("")
        click.echo("  First start: created the administrator account admin@localhost.")
        click.echo(f"  Admin API key (shown once, keep it safe): {key.plaintext}")
        click.echo("")
    click.echo(f"  Data directory: {settings.data_dir}")
    click.echo(f"  API docs: http://{host}:{port}/docs")
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addFilter(RedactTokens())
    app = create_app(settings, services=services)
    uvicorn.Server(uvicorn_config(app, settings, host=host, port=port, log_level="info")).run()


@main.command()
@click.option("--workers", type=int, default=1, show_default=True, help="Worker threads.")
@data_dir_option
def worker(workers: int, data_dir: Path | None) -> None:
    """Run workers only (next to `serve --workers 0`, on the same database)."""
    from pixelforge.services import build_services

    settings = settings_for(data_dir, workers=workers)
    services = build_services(settings)
    stop = {"now": False}

    def _stop(*_: Any) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    services.start()
    click.echo(f"worker running ({workers} threads) on {settings.resolved_database_url}")
    try:
        while not stop["now"]:
            services.runner.stopping.wait(0.5)
    finally:
        services.close()


@main.group()
def accounts() -> None:
    """Manage accounts."""


@accounts.command("create")
@click.option("--email", required=True)
@click.option("--password", default=None, help="Enables email + password login.")
@click.option("--credits", type=int, default=0, show_default=True)
@click.option("--admin", is_flag=True, help="Make the account an administrator.")
@data_dir_option
def accounts_create(
    email: str, password: str | None, credits: int, admin: bool, data_dir: Path | None
) -> None:
    """Create an account; prints its first API key (shown once)."""
    services = services_for(data_dir)
    try:
        acc, key = services.accounts.create_account(
            email=email, password=password, credits=credits, is_admin=admin
        )
    except PixelForgeError as e:
        fail(e)
    click.echo(f"account {acc.id} ({acc.email}) with {credits} credits")
    click.echo(f"API key (shown once): {key.plaintext}")


@accounts.command("list")
@data_dir_option
def accounts_list(data_dir: Path | None) -> None:
    """List accounts with their balances."""
    services = services_for(data_dir)
    for acc in services.accounts.list_accounts(limit=10_000):
        bal = services.accounts.balance(acc.id)
        role = " admin" if acc.is_admin else ""
        click.echo(f"{acc.id}  {acc.email}{role}  available={bal.available} held={bal.held}")


@main.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.option("--account", "account_ref", required=True, help="Account id or email.")
@click.option("--name", default="", help="A label for the key.")
@data_dir_option
def keys_create(account_ref: str, name: str, data_dir: Path | None) -> None:
    """Create an API key; prints it once."""
    services = services_for(data_dir)
    try:
        acc = services.accounts.find(account_ref)
        key = services.accounts.create_key(account_id=acc.id, name=name)
    except PixelForgeError as e:
        fail(e)
    click.echo(f"key {key.id} for {acc.email}")
    click.echo(f"API key (shown once): {key.plaintext}")


@keys.command("revoke")
@click.argument("key_id")
@data_dir_option
def keys_revoke(key_id: str, data_dir: Path | None) -> None:
    """Revoke an API key by id; takes effect on the next request."""
    services = services_for(data_dir)
    try:
        services.accounts.revoke_key(key_id=key_id)
    except PixelForgeError as e:
        fail(e)
    click.echo(f"revoked {key_id}")


@main.group()
def credits() -> None:
    """Manage credits."""


@credits.command("grant")
@click.option("--account", "account_ref", required=True, help="Account id or email.")
@click.option("--amount", type=int, required=True)
@click.option("--note", default="")
@data_dir_option
def credits_grant(account_ref: str, amount: int, note: str, data_dir: Path | None) -> None:
    """Add credits to an account (a ledger grant)."""
    services = services_for(data_dir)
    try:
        acc = services.accounts.find(account_ref)
        bal = services.accounts.grant_credits(account_id=acc.id, amount=amount, note=note)
    except PixelForgeError as e:
        fail(e)
    click.echo(f"{acc.email}: available={bal.available} held={bal.held}")


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@data_dir_option
def db_upgrade(data_dir: Path | None) -> None:
    """Apply migrations (the server also does this at start)."""
    settings = settings_for(data_dir)
    from pixelforge.store.db import Database

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    Database(settings.resolved_database_url).migrate()
    click.echo("database is at the newest revision")


main.add_command(models)
