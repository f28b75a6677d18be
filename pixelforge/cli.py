"""The `pixelforge` command: serve, worker, accounts, keys, credits, db."""

from __future__ import annotations

import logging
import re
import signal
import sys
from pathlib import Path
from typing import Any

import click

from pixelforge.errors import PixelForgeError
from pixelforge.settings import Settings


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def _services(data_dir: Path | None):  # type: ignore[no-untyped-def]
    from pixelforge.services import build_services

    return build_services(_settings(data_dir))


def _fail(e: PixelForgeError) -> None:
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

    settings = _settings(data_dir, workers=workers)
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

    settings = _settings(data_dir, workers=workers)
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
    services = _services(data_dir)
    try:
        acc, key = services.accounts.create_account(
            email=email, password=password, credits=credits, is_admin=admin
        )
    except PixelForgeError as e:
        _fail(e)
    click.echo(f"account {acc.id} ({acc.email}) with {credits} credits")
    click.echo(f"API key (shown once): {key.plaintext}")


@accounts.command("list")
@data_dir_option
def accounts_list(data_dir: Path | None) -> None:
    """List accounts with their balances."""
    services = _services(data_dir)
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
    services = _services(data_dir)
    try:
        acc = services.accounts.find(account_ref)
        key = services.accounts.create_key(account_id=acc.id, name=name)
    except PixelForgeError as e:
        _fail(e)
    click.echo(f"key {key.id} for {acc.email}")
    click.echo(f"API key (shown once): {key.plaintext}")


@keys.command("revoke")
@click.argument("key_id")
@data_dir_option
def keys_revoke(key_id: str, data_dir: Path | None) -> None:
    """Revoke an API key by id; takes effect on the next request."""
    services = _services(data_dir)
    try:
        services.accounts.revoke_key(key_id=key_id)
    except PixelForgeError as e:
        _fail(e)
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
    services = _services(data_dir)
    try:
        acc = services.accounts.find(account_ref)
        bal = services.accounts.grant_credits(account_id=acc.id, amount=amount, note=note)
    except PixelForgeError as e:
        _fail(e)
    click.echo(f"{acc.email}: available={bal.available} held={bal.held}")


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("upgrade")
@data_dir_option
def db_upgrade(data_dir: Path | None) -> None:
    """Apply migrations (the server also does this at start)."""
    settings = _settings(data_dir)
    from pixelforge.store.db import Database

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    Database(settings.resolved_database_url).migrate()
    click.echo("database is at the newest revision")


@main.group()
def models() -> None:
    """Diffusion models: list, pull, add your own, build tiny test models."""


def _models_dir(data_dir: Path | None) -> Path:
    return _settings(data_dir).models_dir


@models.command("list")
@data_dir_option
def models_list(data_dir: Path | None) -> None:
    """Every known model: id, family, tasks, whether it is on disk, kind, description."""
    from pixelforge.models.catalog import Catalog
    from pixelforge.models.download import is_available

    models_dir = _models_dir(data_dir)
    catalog = Catalog(models_dir)
    try:
        profiles = catalog.list_profiles()
        defaults = catalog.defaults()
    except PixelForgeError as e:
        _fail(e)
    rows = [("ID", "FAMILY", "TASKS", "ON DISK", "KIND", "DESCRIPTION")]
    for p in profiles:
        star = ["*" if defaults.get(t) == p.id else "" for t in p.tasks]
        tasks = ",".join(t + s for t, s in zip(p.tasks, star, strict=True)) or "-"
        on_disk = "yes" if is_available(p, models_dir) else "no"
        rows.append((p.id, p.family, tasks, on_disk, p.kind, p.description))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5])
    click.echo(f"\n* = default for that task. Models directory: {models_dir}")


@models.command("pull")
@click.argument("model_id")
@data_dir_option
def models_pull(model_id: str, data_dir: Path | None) -> None:
    """Download a model (and the base model of an add-on) from the Hugging Face Hub."""
    from pixelforge.errors import ErrorCode
    from pixelforge.models.bundled import BUNDLED_KINDS
    from pixelforge.models.catalog import Catalog
    from pixelforge.models.download import is_available, pull

    models_dir = _models_dir(data_dir)
    catalog = Catalog(models_dir)
    try:
        profile = catalog.get(model_id)
        if profile is None:
            known = ", ".join(p.id for p in catalog.list_profiles())
            raise PixelForgeError(
                ErrorCode.invalid_parameter, f"unknown model {model_id!r}; known: {known}"
            )
        todo = [profile]
        base = catalog.get(profile.base_model) if profile.base_model else None
        if base is not None and not is_available(base, models_dir):
            todo.insert(0, base)
        for p in todo:
            if p.kind in BUNDLED_KINDS:  # nothing to download: checks its package is there
                click.echo(f"{p.id} ships in the installed {p.source} package")
            else:
                click.echo(f"pulling {p.id} ({p.source}) into {models_dir / p.id}")
            pull(p, models_dir, progress=True)
    except PixelForgeError as e:
        _fail(e)
    click.echo(f"{model_id} is ready")


@models.command("add")
@click.argument("model_id")
@click.option(
    "--path",
    "path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A local diffusers folder (model_index.json or config.json inside).",
)
@click.option("--repo", default=None, help="A Hugging Face repo id instead of --path.")
@click.option("--family", required=True, help="e.g. sd15, sdxl, sd-turbo, svd, controlnet.")
@click.option(
    "--task",
    "tasks",
    multiple=True,
    required=True,
    help="A task it serves (repeatable): text_to_image, image_to_image, inpaint, "
    "edit, image_to_video, pose_transfer, colorize (ONNX matting/erase models are added "
    "by editing models.json; see the README).",
)
@click.option("--description", default="")
@click.option("--base-model", default=None, help="For add-ons (ControlNet): the base model id.")
@click.option("--steps", type=int, default=None, help="Default steps.")
@click.option("--guidance", type=float, default=None, help="Default guidance scale.")
@click.option("--size", type=int, default=None, help="Default width and height.")
@data_dir_option
def models_add(
    model_id: str,
    path: Path | None,
    repo: str | None,
    family: str,
    tasks: tuple[str, ...],
    description: str,
    base_model: str | None,
    steps: int | None,
    guidance: float | None,
    size: int | None,
    data_dir: Path | None,
) -> None:
    """Add (or override) a model in the user catalog, from a folder or a Hub repo."""
    from pixelforge.errors import ErrorCode
    from pixelforge.models.base import ModelProfile
    from pixelforge.models.catalog import Catalog

    if (path is None) == (repo is None):
        _fail(PixelForgeError(ErrorCode.invalid_parameter, "give exactly one of --path, --repo"))
    source = str(path.expanduser().resolve()) if path is not None else str(repo)
    optional: dict[str, Any] = {
        "default_steps": steps,
        "default_guidance": guidance,
        "default_width": size,
        "default_height": size,
    }
    profile = ModelProfile(
        id=model_id,
        family=family,
        tasks=tasks,
        source=source,
        description=description,
        base_model=base_model,
        **{k: v for k, v in optional.items() if v is not None},
    )
    try:
        Catalog(_models_dir(data_dir)).add_profile(profile)
    except PixelForgeError as e:
        _fail(e)
    click.echo(f"added {model_id} ({source})")


@models.command("remove")
@click.argument("model_id")
@data_dir_option
def models_remove(model_id: str, data_dir: Path | None) -> None:
    """Remove a model from the user catalog (its files stay on disk)."""
    from pixelforge.models.catalog import Catalog

    try:
        Catalog(_models_dir(data_dir)).remove_profile(model_id)
    except PixelForgeError as e:
        _fail(e)
    click.echo(f"removed {model_id}")


@models.command("default")
@click.argument("task")
@click.argument("model_id")
@data_dir_option
def models_default(task: str, model_id: str, data_dir: Path | None) -> None:
    """Use MODEL_ID when a job names no model for TASK (e.g. tiny-sd for offline demos)."""
    from pixelforge.models.catalog import Catalog

    try:
        Catalog(_models_dir(data_dir)).set_default(task, model_id)
    except PixelForgeError as e:
        _fail(e)
    click.echo(f"{task}: {model_id}")


@models.command("create-tiny")
@data_dir_option
def models_create_tiny(data_dir: Path | None) -> None:
    """Build tiny random-weight models (tiny-*) for tests and offline demos: outputs are noise."""
    from pixelforge.models.tiny import create_tiny_models
    from pixelforge.models.tiny_onnx import create_tiny_onnx_models

    models_dir = _models_dir(data_dir)
    for p in [*create_tiny_models(models_dir), *create_tiny_onnx_models(models_dir)]:
        click.echo(f"{p.id}  {','.join(p.tasks)}  {models_dir / p.id}")
