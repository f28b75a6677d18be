"""The model catalog: built-in profiles plus the user's `models.json` (additions, overrides)."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.models.base import ModelProfile
from pixelforge.models.bundled import BUNDLED_KINDS, BUNDLED_TASKS, check_bundled
from pixelforge.models.llm_engines import ENGINE_KINDS, check_engine_profile
from pixelforge.models.onnx_model import ONNX, onnx_spec
from pixelforge.models.profiles import ALL_KINDS, BUILTIN, DEFAULTS, TASKS, TINY_DESCRIPTION

__all__ = ["BUILTIN", "DEFAULTS", "TASKS", "TINY_DESCRIPTION", "Catalog"]

CATALOG_FILE = "models.json"

_FIELDS = {f.name for f in dataclasses.fields(ModelProfile)}


def profile_to_json(profile: ModelProfile) -> dict[str, Any]:
    data = dataclasses.asdict(profile)
    data["tasks"] = list(profile.tasks)
    return data


def profile_from_json(data: dict[str, Any], *, where: str = CATALOG_FILE) -> ModelProfile:
    unknown = set(data) - _FIELDS
    if unknown:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"{where}: unknown profile field(s) {sorted(unknown)}; known: {sorted(_FIELDS)}",
        )
    try:
        fields = {**data, "tasks": tuple(data.get("tasks", ()))}
        profile = ModelProfile(**fields)
    except TypeError as e:
        raise PixelForgeError(ErrorCode.invalid_parameter, f"{where}: {e}") from None
    check_profile(profile)
    return profile


def check_profile(profile: ModelProfile) -> None:
    """Concise errors for a profile a user wrote by hand."""
    if not profile.id or any(c in profile.id for c in "/\\ ") or profile.id.startswith("."):
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model id {profile.id!r} must be non-empty, without spaces or slashes",
        )
    bad = [t for t in profile.tasks if t not in TASKS]
    if bad:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r}: unknown task(s) {bad}; tasks are {', '.join(TASKS)}",
        )
    if not profile.source:
        raise PixelForgeError(ErrorCode.invalid_parameter, f"model {profile.id!r} has no source")
    if profile.kind not in ALL_KINDS:
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r}: kind must be one of {', '.join(ALL_KINDS)}, "
            f"not {profile.kind!r}",
        )
    if profile.kind in BUNDLED_KINDS:
        check_bundled(profile)
    elif set(profile.tasks) & set(BUNDLED_TASKS):
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r}: {', '.join(BUNDLED_TASKS)} are served by the bundled "
            f"kinds ({', '.join(BUNDLED_KINDS)}), not {profile.kind}",
        )
    elif profile.kind == ONNX:
        onnx_spec(profile)
    elif profile.kind in ENGINE_KINDS:
        check_engine_profile(profile)
    elif profile.source.startswith(("http://", "https://")):
        raise PixelForgeError(
            ErrorCode.invalid_parameter,
            f"model {profile.id!r}: a URL source is for single-file (onnx) models; give a "
            "Hugging Face repo id or a local folder",
        )


class Catalog:
    """Built-in profiles overlaid with `<models_dir>/models.json`; re-read when it changes."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)
        self.path = self.models_dir / CATALOG_FILE
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int, int], dict[str, Any]] | None = None

    # -- reading -----------------------------------------------------------------------------

    def _user(self) -> dict[str, Any]:
        """The parsed user file: {"models": {id: fields}, "defaults": {task: id}}."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {"models": {}, "defaults": {}}
        # The inode changes on every rename-into-place, so a same-tick rewrite is still seen.
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        with self._lock:
            if self._cached is not None and self._cached[0] == stamp:
                return self._cached[1]
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as e:
                raise PixelForgeError(
                    ErrorCode.invalid_parameter, f"{self.path} is not valid JSON: {e}"
                ) from None
            if not isinstance(data, dict):
                raise PixelForgeError(ErrorCode.invalid_parameter, f"{self.path}: not an object")
            data.setdefault("models", {})
            data.setdefault("defaults", {})
            self._cached = (stamp, data)
            return data

    def _profiles(self) -> dict[str, ModelProfile]:
        profiles = {p.id: p for p in BUILTIN}
        for model_id, fields in self._user()["models"].items():
            profiles[model_id] = profile_from_json(
                {**fields, "id": model_id}, where=f"{self.path} [{model_id}]"
            )
        return profiles

    def list_profiles(self) -> list[ModelProfile]:
        """Every profile: built-ins first (in their order), then the user's, by id."""
        profiles = self._profiles()
        builtin_ids = [p.id for p in BUILTIN]
        user_ids = sorted(set(profiles) - set(builtin_ids))
        return [profiles[i] for i in builtin_ids + user_ids]

    def get(self, model_id: str) -> ModelProfile | None:
        return self._profiles().get(model_id)

    def is_builtin(self, model_id: str) -> bool:
        return any(p.id == model_id for p in BUILTIN)

    def defaults(self) -> dict[str, str]:
        """Task -> default model id (the user file's choices over the built-in ones)."""
        return {**DEFAULTS, **self._user()["defaults"]}

    def default_for(self, task: str) -> str:
        try:
            return self.defaults()[task]
        except KeyError:
            if task in TASKS:
                able = [p.id for p in self.list_profiles() if task in p.tasks]
                msg = f"no default model for {task}; name one of: {', '.join(able) or 'none'}"
            else:
                msg = f"unknown task {task!r}; tasks are {', '.join(TASKS)}"
            raise PixelForgeError(ErrorCode.invalid_parameter, msg) from None

    # -- editing (the user file only) --------------------------------------------------------

    def add_profile(self, profile: ModelProfile) -> None:
        """Add or replace a profile in the user file (a built-in id is overridden, not lost)."""
        check_profile(profile)
        data = self._user_copy()
        fields = profile_to_json(profile)
        del fields["id"]
        data["models"][profile.id] = fields
        self._write(data)

    def remove_profile(self, model_id: str) -> None:
        """Remove a user profile; removing an override of a built-in restores the built-in."""
        data = self._user_copy()
        if model_id not in data["models"]:
            what = "a built-in model" if self.is_builtin(model_id) else "not in the catalog"
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"model {model_id!r} is {what}; only models added to {self.path} can be removed",
            )
        del data["models"][model_id]
        data["defaults"] = {t: m for t, m in data["defaults"].items() if m != model_id}
        self._write(data)

    def set_default(self, task: str, model_id: str) -> None:
        """Make `model_id` the default for `task` (it must be able to serve it)."""
        profile = self.get(model_id)
        if profile is None or task not in profile.tasks:
            raise PixelForgeError(
                ErrorCode.invalid_parameter,
                f"model {model_id!r} cannot be the default for {task!r}"
                + (f"; it serves: {', '.join(profile.tasks) or 'no task'}" if profile else ""),
            )
        data = self._user_copy()
        data["defaults"][task] = model_id
        self._write(data)

    def _user_copy(self) -> dict[str, Any]:
        data = self._user()
        return {**data, "models": dict(data["models"]), "defaults": dict(data["defaults"])}

    def _write(self, data: dict[str, Any]) -> None:
        # Write-then-rename, so a server reading the file never sees half of it.
        self.models_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.models_dir, prefix=".models-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, self.path)
        with self._lock:
            self._cached = None
