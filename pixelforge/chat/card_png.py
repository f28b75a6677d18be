"""The PNG chunks that carry a character card: read with every CRC checked, written back.

A card travels in a PNG as a text chunk (`chara` for V2, `ccv3` for V3) whose text is the
card's JSON in base64. Pillow's text handling is not used: it skips CRC checks on ancillary
chunks and inflates compressed text without a bound we control. Here each chunk is read by
hand, counted and capped, and compressed text is inflated with a ceiling.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from pixelforge.errors import ErrorCode, PixelForgeError, human_size

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD_KEYWORDS = ("ccv3", "chara")
# V3 lets a PNG carry assets as text chunks named `chara-ext-asset_:<path>` (base64 bytes).
ASSET_KEYWORD_PREFIX = "chara-ext-asset_:"
MAX_CHUNKS = 4096
_TEXT_TYPES = (b"tEXt", b"zTXt", b"iTXt")


@dataclass(frozen=True)
class Chunk:
    type: bytes
    data: bytes

    def encode(self) -> bytes:
        crc = zlib.crc32(self.type + self.data) & 0xFFFFFFFF
        return struct.pack(">I", len(self.data)) + self.type + self.data + struct.pack(">I", crc)


@dataclass(frozen=True)
class PngCardText:
    """What a PNG carries for a card: its card texts, embedded assets, and the bare image."""

    texts: dict[str, str]  # `ccv3` / `chara` -> text, the first chunk of each
    assets: dict[str, str]  # asset path -> its base64 text
    image: bytes  # the same PNG without any card or asset chunk


def _bad(message: str) -> PixelForgeError:
    return PixelForgeError(ErrorCode.invalid_card, message)


def is_png(data: bytes) -> bool:
    return data.startswith(PNG_SIGNATURE)


def read_chunks(data: bytes) -> list[Chunk]:
    """Every chunk up to IEND, each CRC verified; raise on anything truncated or forged."""
    if not is_png(data):
        raise _bad("this file is not a PNG image (the PNG signature is missing)")
    chunks: list[Chunk] = []
    pos = len(PNG_SIGNATURE)
    while True:
        if len(chunks) >= MAX_CHUNKS:
            raise _bad(f"this PNG has more than {MAX_CHUNKS} chunks")
        if pos + 8 > len(data):
            raise _bad("this PNG is truncated (it ends before its IEND chunk)")
        length, ctype = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            raise _bad(f"this PNG is truncated inside a {ctype!r} chunk of {length} bytes")
        if not ctype.isalpha():
            raise _bad(f"this PNG has a malformed chunk type {ctype!r} at byte {pos}")
        body = data[pos + 8 : end]
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            name = ctype.decode("ascii")
            raise _bad(f"this PNG is corrupt: the CRC of its {name} chunk at byte {pos} is wrong")
        chunks.append(Chunk(ctype, body))
        pos = end + 4
        if ctype == b"IEND":
            break
    if chunks[0].type != b"IHDR":
        raise _bad("this PNG is malformed: its first chunk is not IHDR")
    return chunks


def _inflate(data: bytes, *, limit: int, what: str) -> bytes:
    """zlib-inflate at most `limit` bytes; a stream that would give more is refused, not cut."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit)
        if inflater.unconsumed_tail or len(inflater.decompress(b"", 1)) > 0:
            raise _bad(f"the {what} text inflates past the {human_size(limit)} limit")
    except zlib.error as exc:
        raise _bad(f"the compressed {what} text is corrupt ({exc})") from None
    if not inflater.eof:
        raise _bad(f"the compressed {what} text is truncated")
    return out


def _keyword(chunk: Chunk) -> tuple[str, bytes] | None:
    """A text chunk's keyword and what follows its NUL; None for a chunk with no keyword."""
    if chunk.type not in _TEXT_TYPES or b"\x00" not in chunk.data[:80]:
        return None
    raw, rest = chunk.data.split(b"\x00", 1)
    return raw.decode("latin-1"), rest


def _is_card_keyword(keyword: str) -> bool:
    return keyword.lower() in CARD_KEYWORDS or keyword.startswith(ASSET_KEYWORD_PREFIX)


def _text_of(chunk: Chunk, rest: bytes, *, keyword: str, limit: int) -> str:
    """The decoded text of a tEXt, zTXt or iTXt chunk whose keyword was already split off."""
    if chunk.type == b"tEXt":
        return rest.decode("latin-1")
    if chunk.type == b"zTXt":
        if rest[:1] != b"\x00":
            raise _bad(f"the {keyword} zTXt chunk uses an unknown compression method")
        return _inflate(rest[1:], limit=limit, what=keyword).decode("latin-1")
    # iTXt: flag, method, language tag NUL, translated keyword NUL, UTF-8 text.
    if len(rest) < 2 or rest.count(b"\x00", 2) < 2:
        raise _bad(f"the {keyword} iTXt chunk is malformed")
    compressed, method = rest[0], rest[1]
    text = rest[2:].split(b"\x00", 2)[2]
    if compressed:
        if method != 0:
            raise _bad(f"the {keyword} iTXt chunk uses an unknown compression method")
        text = _inflate(text, limit=limit, what=keyword)
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(f"the {keyword} iTXt chunk is not valid UTF-8") from None


def read_card_text(data: bytes, *, max_text_bytes: int, max_asset_bytes: int) -> PngCardText:
    """Split a PNG into its card text chunks, its V3 asset chunks and the image without them."""
    texts: dict[str, str] = {}
    assets: dict[str, str] = {}
    kept: list[Chunk] = []
    for chunk in read_chunks(data):
        found = _keyword(chunk)
        if found is None or not _is_card_keyword(found[0]):
            kept.append(chunk)
            continue
        keyword, rest = found
        limit = max_asset_bytes if keyword.startswith(ASSET_KEYWORD_PREFIX) else max_text_bytes
        if len(rest) > limit:
            raise PixelForgeError(
                ErrorCode.exceed_max_filesize,
                f"the {keyword} chunk is larger than the {human_size(limit)} limit",
            )
        text = _text_of(chunk, rest, keyword=keyword, limit=limit)
        if keyword.startswith(ASSET_KEYWORD_PREFIX):
            assets.setdefault(keyword.removeprefix(ASSET_KEYWORD_PREFIX), text)
        else:
            texts.setdefault(keyword.lower(), text)
    image = PNG_SIGNATURE + b"".join(c.encode() for c in kept)
    return PngCardText(texts=texts, assets=assets, image=image)


def write_card_text(png: bytes, texts: Iterable[tuple[str, str]]) -> bytes:
    """`png` with its old card chunks dropped and one tEXt chunk per (keyword, ASCII text)."""
    kept = [c for c in read_chunks(png) if not _is_card_chunk(c)]
    added = [Chunk(b"tEXt", k.encode("latin-1") + b"\x00" + t.encode("ascii")) for k, t in texts]
    # The text goes just before IEND, where the tools that write cards put it.
    ordered = [*kept[:-1], *added, kept[-1]]
    return PNG_SIGNATURE + b"".join(c.encode() for c in ordered)


def _is_card_chunk(chunk: Chunk) -> bool:
    found = _keyword(chunk)
    return found is not None and _is_card_keyword(found[0])
