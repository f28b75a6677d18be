"""The media service: ingest (validate + store + row), ownership, signed URLs, sweeping."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pixelforge.clock import now
from pixelforge.errors import ErrorCode, PixelForgeError, not_found, too_large
from pixelforge.ids import new_id
from pixelforge.safety.fetch import FetchPolicy, fetch_url
from pixelforge.safety.images import ValidatedImage, validate_image
from pixelforge.store.db import Database
from pixelforge.store.media import MediaStore
from pixelforge.store.tables import Media

log = logging.getLogger("pixelforge.media")

_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "video/mp4": "mp4"}
REUSE_MIN_LEFT_S = 60  # an upload reused for a new job has at least this long to live


@dataclass(frozen=True)
class MediaLimits:
    max_bytes: int
    max_pixels: int
    upload_retention_s: int
    result_retention_s: int
    signed_url_ttl_s: int


def decode_base64(text: str, *, max_bytes: int) -> bytes:
    """Bare base64 or a data URI; size checked before decoding the whole string."""
    if text.startswith("data:"):
        head, _, text = text.partition(",")
        if ";base64" not in head:
            raise PixelForgeError(ErrorCode.invalid_parameter, "base64: data URI is not base64")
    text = "".join(text.split())
    if len(text) * 3 // 4 > max_bytes + 3:
        raise too_large("the file", max_bytes)
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise PixelForgeError(
            ErrorCode.invalid_parameter, "base64: not valid base64 data"
        ) from None


class MediaService:
    def __init__(
        self,
        *,
        db: Database,
        store: MediaStore,
        sign_key: bytes,
        limits: MediaLimits,
        fetch_policy: FetchPolicy,
    ) -> None:
        self.db = db
        self.store = store
        self.sign_key = sign_key
        self.limits = limits
        self.fetch_policy = fetch_policy

    # -- ingest ------------------------------------------------------------------------
    def validate(self, data: bytes) -> ValidatedImage:
        return validate_image(
            data, max_bytes=self.limits.max_bytes, max_pixels=self.limits.max_pixels
        )

    def ingest_upload(
        self,
        *,
        account_id: str,
        data: bytes,
        reuse_identical: bool = False,
        media_id: str | None = None,
    ) -> Media:
        """Validate and store an uploaded image.

        `reuse_identical`: return the account's live upload of the very same (validated) bytes
        instead, if there is one. `media_id`: store it under this id, handed out before the
        bytes arrived (an upload URL); the same bytes put there again return the stored row,
        anything else there is 409 conflict.
        """
        img = self.validate(data)
        if media_id is not None and (prior := self._by_id(media_id)) is not None:
            return self._same_put(prior, account_id, img.data)
        if reuse_identical and (same := self._identical_upload(account_id, img.data)) is not None:
            return same
        key = self.store.put(img.data, ext=_EXT.get(img.content_type, img.format))
        row = self.new_row(
            account_id=account_id,
            storage_key=key,
            content_type=img.content_type,
            data=img.data,
            width=img.width,
            height=img.height,
            kind="upload",
        )
        if media_id is not None:
            row.id = media_id
        try:
            with self.db.write() as s:
                s.add(row)
        except IntegrityError:
            self.store.delete(key)
            if media_id is None or (prior := self._by_id(media_id)) is None:
                raise
            return self._same_put(prior, account_id, img.data)  # a concurrent twin put
        except Exception:
            self.store.delete(key)
            raise
        return row

    def _by_id(self, media_id: str) -> Media | None:
        with self.db.read() as s:
            return s.get(Media, media_id)

    @staticmethod
    def _same_put(prior: Media, account_id: str, data: bytes) -> Media:
        if prior.account_id == account_id and prior.sha256 == hashlib.sha256(data).hexdigest():
            return prior
        raise PixelForgeError(
            ErrorCode.conflict, f"media {prior.id} was already uploaded; create a new file"
        )

    def _identical_upload(self, account_id: str, data: bytes) -> Media | None:
        digest = hashlib.sha256(data).hexdigest()
        q = select(Media).where(
            Media.account_id == account_id,
            Media.kind == "upload",
            Media.sha256 == digest,
            # Not one about to be swept from under the job that will read it.
            Media.expires_at > now() + REUSE_MIN_LEFT_S,
        )
        with self.db.read() as s:
            return s.scalars(q.order_by(Media.created_at.desc()).limit(1)).first()

    def ingest_url(self, *, account_id: str, url: str, reuse_identical: bool = False) -> Media:
        fetched = fetch_url(url, policy=self.fetch_policy)
        return self.ingest_upload(
            account_id=account_id, data=fetched.data, reuse_identical=reuse_identical
        )

    def new_row(
        self,
        *,
        account_id: str,
        storage_key: str,
        content_type: str,
        data: bytes,
        width: int | None,
        height: int | None,
        kind: str,
        job_id: str | None = None,
    ) -> Media:
        created = now()
        ttl = self.limits.upload_retention_s if kind == "upload" else self.limits.result_retention_s
        return Media(
            id=new_id("med"),
            account_id=account_id,
            job_id=job_id,
            kind=kind,
            storage_key=storage_key,
            content_type=content_type,
            bytes=len(data),
            width=width,
            height=height,
            sha256=hashlib.sha256(data).hexdigest(),
            created_at=created,
            expires_at=created + ttl,
        )

    # -- access ------------------------------------------------------------------------
    def get(self, *, account_id: str, media_id: str) -> Media:
        """The account's live media item; anyone else's, or an expired one, is 404."""
        with self.db.read() as s:
            row = s.get(Media, media_id)
        if row is None or row.account_id != account_id or row.expires_at <= now():
            raise not_found(f"media {media_id!r}")
        return row

    def read_bytes(self, row: Media) -> bytes:
        return self.store.path(row.storage_key).read_bytes()

    def delete(self, *, account_id: str, media_id: str) -> None:
        row = self.get(account_id=account_id, media_id=media_id)
        with self.db.write() as s:
            obj = s.get(Media, row.id)
            if obj is not None:
                s.delete(obj)
        self.store.delete(row.storage_key)

    # -- signed URLs -------------------------------------------------------------------
    def _signature(self, media_id: str, account_id: str, exp: int) -> str:
        msg = f"{media_id}:{account_id}:{exp}".encode()
        digest = hmac.new(self.sign_key, msg, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def signed_query(self, row: Media, *, ttl_s: int | None = None) -> tuple[str, int]:
        """The `exp=..&sig=..` query string for a download link, and its expiry."""
        exp = int(now()) + (ttl_s if ttl_s is not None else self.limits.signed_url_ttl_s)
        exp = min(exp, int(row.expires_at))
        return f"exp={exp}&sig={self._signature(row.id, row.account_id, exp)}", exp

    def open_signed(self, *, media_id: str, exp: int, sig: str) -> tuple[Media, Path]:
        """403 for a bad signature, 410 past expiry, 404 once deleted."""
        with self.db.read() as s:
            row = s.get(Media, media_id)
        if row is None:
            raise not_found(f"media {media_id!r}")
        expected = self._signature(row.id, row.account_id, exp)
        # Compare bytes: compare_digest refuses non-ASCII str, and a sig is user input.
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            raise PixelForgeError(ErrorCode.signature_invalid, "download link signature invalid")
        if exp <= now() or row.expires_at <= now():
            raise PixelForgeError(
                ErrorCode.expired, "download link expired; fetch the item again for a new link"
            )
        path = self.store.path(row.storage_key)
        if not path.exists():
            raise not_found(f"media {media_id!r}")
        return row, path

    # -- retention ---------------------------------------------------------------------
    def sweep_orphans(self, *, min_age_s: float = 24 * 3600, batch: int = 500) -> int:
        """Delete stored files no media row names, once older than `min_age_s`.

        A worker killed between writing a result file and committing the job's success leaves
        such a file (never served, never charged); so does a write that died half-way. The age
        keeps files of jobs still running (written, not yet committed) out of reach."""
        removed = 0
        keys = self.store.keys_older_than(min_age_s)
        while chunk := [k for _, k in zip(range(batch), keys, strict=False)]:
            with self.db.read() as s:
                known = set(
                    s.scalars(select(Media.storage_key).where(Media.storage_key.in_(chunk)))
                )
            for key in chunk:
                if key not in known:
                    self.store.delete(key)
                    removed += 1
        if removed:
            log.info("swept %d stored files without a media row", removed)
        return removed

    def sweep(self, *, batch: int = 500) -> int:
        """Delete expired items, file first then row, so nothing is left dangling."""
        removed = 0
        while True:
            with self.db.read() as s:
                rows = list(s.scalars(select(Media).where(Media.expires_at <= now()).limit(batch)))
            if not rows:
                return removed
            for row in rows:
                self.store.delete(row.storage_key)
            with self.db.write() as s:
                for row in rows:
                    obj = s.get(Media, row.id)
                    if obj is not None:
                        s.delete(obj)
            removed += len(rows)
            log.info("swept %d expired media items", len(rows))
