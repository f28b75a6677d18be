"""CHARX archives (a zip holding `card.json` and its assets), read within firm limits.

Nothing is extracted to disk: entries come back as bytes keyed by their path in the zip.
The limits are checked against the sizes the zip declares before anything is inflated, and
each read is itself capped, so a zip whose headers lie cannot inflate past them either.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO

from pixelforge.errors import ErrorCode, PixelForgeError, human_size

CARD_JSON = "card.json"
MAX_ENTRIES = 1000
MAX_TOTAL_BYTES = 64 * 1024 * 1024  # everything inflated together
MAX_RATIO = 200  # inflated / compressed, per entry larger than 1 MiB


@dataclass(frozen=True)
class CharxContents:
    card_json: bytes
    files: dict[str, bytes]  # every other entry, by its path in the zip


def _bad(message: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.invalid_card, message)


def _safe_path(name: str) -> bool:
    parts = name.split("/")
    return not (name.startswith("/") or "\\" in name or ".." in parts or ":" in parts[0])


def _check_entries(infos: list[zipfile.ZipInfo], *, max_card_json_bytes: int) -> None:
    if len(infos) > MAX_ENTRIES:
        raise _bad(f"this CHARX holds {len(infos)} files; at most {MAX_ENTRIES} are accepted")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise _bad(f"this CHARX is encrypted ({info.filename}); encrypted cards are refused")
        if not _safe_path(info.filename):
            raise _bad(f"this CHARX has an unsafe path {info.filename!r}")
        big = info.file_size > 1024 * 1024
        if big and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise _bad(f"{info.filename} in this CHARX inflates suspiciously far (a zip bomb?)")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise _bad(f"this CHARX inflates past the {human_size(MAX_TOTAL_BYTES)} limit")
    card = [i for i in infos if i.filename == CARD_JSON]
    if not card:
        raise _bad("this CHARX has no card.json at its root")
    if card[0].file_size > max_card_json_bytes:
        raise PixelForgeError(
            ErrorCode.exceed_max_filesize,
            f"card.json is larger than the {human_size(max_card_json_bytes)} limit",
        )


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with archive.open(info) as stream:
        data = stream.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise _bad(f"{info.filename} in this CHARX is not the size its header declares")
    return data


def looks_like_zip(data: bytes) -> bool:
    """A zip, or a file with a zip at its end (RisuAI writes CHARX behind a JPEG preview)."""
    return data.startswith(b"PK\x03\x04") or zipfile.is_zipfile(BytesIO(data))


def read_charx(data: bytes, *, max_card_json_bytes: int) -> CharxContents:
    """card.json and every other file of a CHARX zip; raise on a bomb, a trap or a bad zip."""
    try:
        with zipfile.ZipFile(BytesIO(data)) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            _check_entries(infos, max_card_json_bytes=max_card_json_bytes)
            files = {info.filename: _read(archive, info) for info in infos}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise _bad(f"this CHARX is not a readable zip file ({exc})") from None
    except (OSError, ValueError, RuntimeError, zlib.error) as exc:  # bad stream or header
        raise _bad(f"this CHARX is corrupt ({exc})") from None
    card_json = files.pop(CARD_JSON)
    return CharxContents(card_json=card_json, files=files)


def write_charx(card_json: bytes, files: Mapping[str, bytes]) -> bytes:
    """A CHARX zip: card.json first, then the files at the paths given."""
    out = BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(CARD_JSON, card_json)
        for path, content in files.items():
            if path == CARD_JSON or not _safe_path(path) or not path:
                raise PixelForgeError(
                    ErrorCode.invalid_parameter, f"{path!r} cannot be a file path in a CHARX"
                )
            # Images are already compressed: storing them saves time and nothing else.
            stored = path.lower().endswith((".png", ".jpg", ".jpeg", ".webp", ".avif", ".gif"))
            method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            archive.writestr(path, content, compress_type=method)
    return out.getvalue()
