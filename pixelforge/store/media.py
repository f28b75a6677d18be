"""The media store protocol and its local-directory implementation."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from pixelforge.errors import ErrorCode, PixelForgeError


class MediaStore(Protocol):
    """Bytes by storage key. Keys are generated here, never taken from users."""

    def put(self, data: bytes, *, ext: str) -> str: ...
    def put_file(self, src: Path, *, ext: str) -> str: ...
    def path(self, key: str) -> Path: ...
    def delete(self, key: str) -> None: ...
    def keys_older_than(self, age_s: float) -> Iterator[str]: ...


class LocalMediaStore:
    """Files under one directory, fanned out by the key's first two characters."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _new_key(self, ext: str) -> str:
        name = secrets.token_hex(16)
        return f"{name[:2]}/{name}.{ext.lstrip('.').lower()}"

    def put(self, data: bytes, *, ext: str) -> str:
        key = self._new_key(ext)
        dest = self.path(key)
        tmp = dest.with_suffix(dest.suffix + ".part")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            # Readers never see a half-written file.
            os.replace(tmp, dest)
        except OSError as e:
            # A full or failing disk: leave no partial file behind (it would keep the space),
            # and say so (503, retry later) rather than fail as a bug would.
            tmp.unlink(missing_ok=True)
            raise PixelForgeError(
                ErrorCode.unavailable,
                f"the server could not store the file ({e.strerror or e}); nothing was kept",
            ) from e
        return key

    def put_file(self, src: Path, *, ext: str) -> str:
        return self.put(src.read_bytes(), ext=ext)

    def path(self, key: str) -> Path:
        p = (self.root / key).resolve()
        if self.root.resolve() not in p.parents:
            raise ValueError(f"storage key {key!r} escapes the media directory")
        return p

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys_older_than(self, age_s: float) -> Iterator[str]:
        """Keys of stored files last written more than `age_s` ago (`.part` files included:
        a write that died half-way)."""
        cutoff = time.time() - age_s
        for shard in sorted(self.root.iterdir()):
            if not shard.is_dir() or len(shard.name) != 2:
                continue
            for f in sorted(shard.iterdir()):
                try:
                    old = f.is_file() and f.stat().st_mtime < cutoff
                except OSError:  # removed meanwhile
                    continue
                if old:
                    yield f"{shard.name}/{f.name}"
