"""`pixelforge models`: list, pull, add and choose models; build the tiny test models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pixelforge.cli.common import data_dir_option, fail, settings_for
from pixelforge.errors import PixelForgeError


@click.group()
def models() -> None:
    """Diffusion models: list, pull, add your own, build tiny test models."""


def _models_dir(data_dir: Path | None) -> Path:
    return settings_for(data_dir).models_dir


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
        fail(e)
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
        fail(e)
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
        fail(PixelForgeError(ErrorCode.invalid_parameter, "give exactly one of --path, --repo"))
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
        fail(e)
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
        fail(e)
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
        fail(e)
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
