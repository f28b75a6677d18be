"""The RunContext a running job's pipeline sees: its inputs, its outputs, progress, cancel."""

from __future__ import annotations

import base64
import io
import threading
import time
from pathlib import Path
from typing import Protocol

from PIL import Image
from sqlalchemy import select

from pixelforge.catalog.types import CatalogView
from pixelforge.errors import ErrorCode, PixelForgeError
from pixelforge.jobs import lifecycle
from pixelforge.jobs.events import Event, EventBus
from pixelforge.jobs.faults import FaultPoints
from pixelforge.jobs.lifecycle import Claim
from pixelforge.jobs.status import EventType
from pixelforge.media.service import MediaService
from pixelforge.models.base import ModelProvider
from pixelforge.pipelines.contract import JobCanceled
from pixelforge.safety.images import encode_image, open_image
from pixelforge.store.db import Database
from pixelforge.store.tables import Job, Media


class ExplicitCheck(Protocol):
    """The NSFW gate (safety.nsfw.NsfwDetector): is this image explicit, and why."""

    def is_explicit(self, img: Image.Image) -> tuple[bool, list[str]]: ...


class Interrupted(Exception):
    """The worker is shutting down: the job goes back to the queue, not to the client."""


class RunEnv(Protocol):
    """What the runner lends every context it builds."""

    db: Database
    bus: EventBus
    media: MediaService
    models: ModelProvider
    catalog: CatalogView
    nsfw: ExplicitCheck
    stopping: threading.Event
    cancel_requests: set[str]
    faults: FaultPoints


class JobRunContext:
    """The RunContext a pipeline gets: its inputs, its outputs, progress; nothing else."""

    DB_WRITE_INTERVAL_S = 0.5

    def __init__(self, *, env: RunEnv, job: Job, claim: Claim, threads: int) -> None:
        self._env = env
        self._claim = claim
        self._job_id = job.id
        self._account_id = job.account_id
        self.seed = job.seed
        self._block_explicit = job.block_explicit
        self.device = env.models.device
        self.threads = threads
        self.models = env.models
        self.catalog = env.catalog
        self.outputs: list[Media] = []
        # The row already says "running"; the first progress write can wait its interval.
        self._last_db = time.monotonic()
        self._canceled = False
        self._tokens = 0  # text pieces emitted (emit_text)

    # -- progress and cancel -------------------------------------------------------------
    def progress(self, step: int, total: int, preview: Image.Image | None = None) -> None:
        self._env.faults.reached("running")
        total = max(total, 1)
        step = min(max(step, 0), total)
        self._env.bus.publish(self._event(EventType.PROGRESS, step, total))
        if preview is not None:
            buf = io.BytesIO()
            preview.convert("RGB").save(buf, format="JPEG", quality=70)
            uri = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()
            self._env.bus.publish(self._event(EventType.PREVIEW, step, total, uri))
        t = time.monotonic()
        if step == total or t - self._last_db >= self.DB_WRITE_INTERVAL_S:
            self._last_db = t
            with self._env.db.write() as s:
                if not lifecycle.record_progress(s, self._claim, step=step, total=total):
                    self._canceled = True
        self._raise_if_stopped()

    def _event(self, kind: EventType, step: int, total: int, preview: str | None = None) -> Event:
        return Event(
            job_id=self._job_id,
            account_id=self._account_id,
            type=kind,
            progress=step / total,
            step=step,
            total=total,
            preview=preview,
        )

    def emit_text(self, index: int, text: str, finish_reason: str | None = None) -> None:
        self._tokens += 1
        event = Event(
            job_id=self._job_id,
            account_id=self._account_id,
            type=EventType.TOKEN,
            step=self._tokens,
            index=index,
            delta=text,
            finish_reason=finish_reason,
        )
        self._env.bus.publish(event)
        # A cancel through this process is seen at once; one through another process (or a
        # lost lease) by reading the row, at most once per interval.
        t = time.monotonic()
        if t - self._last_db >= self.DB_WRITE_INTERVAL_S:
            self._last_db = t
            self.cancelled()
        self._raise_if_stopped()

    def cancelled(self) -> bool:
        if not self._canceled and self._job_id in self._env.cancel_requests:
            self._canceled = True
        if not self._canceled:
            with self._env.db.read() as s:
                row = s.execute(
                    select(Job.cancel_requested, Job.attempt_token).where(Job.id == self._job_id)
                ).first()
            self._canceled = row is None or bool(row[0]) or row[1] != self._claim.token
        return self._canceled

    def _raise_if_stopped(self) -> None:
        # A cancel from this process is seen at once; one from another process within the
        # DB write interval above.
        if self._canceled or self._job_id in self._env.cancel_requests:
            raise JobCanceled()
        if self._env.stopping.is_set():
            raise Interrupted()

    # -- media -----------------------------------------------------------------------------
    def load_image(self, ref: str) -> Image.Image:
        media = self._env.media
        row = media.get(account_id=self._account_id, media_id=ref)
        img = open_image(media.read_bytes(row))
        self._check_explicit(img, "an input image")
        return img

    def save_image(self, img: Image.Image, *, format: str = "png", quality: int = 95) -> str:
        self._check_explicit(img, "the result")
        data, content_type = encode_image(img, fmt=format, quality=quality)
        return self._save(data, content_type, img.width, img.height)

    def _check_explicit(self, img: Image.Image, what: str) -> None:
        """The NSFW gate, on inputs and outputs, when the job asked for block_explicit."""
        if not self._block_explicit:
            return
        explicit, labels = self._env.nsfw.is_explicit(img)
        if explicit:
            raise PixelForgeError(
                ErrorCode.error_nsfw_content_detected,
                f"{what} was blocked: explicit content detected ({', '.join(labels)}); "
                "nothing was charged",
            )

    def save_video(self, path: Path, *, content_type: str = "video/mp4") -> str:
        return self._save(path.read_bytes(), content_type, None, None)

    def _save(self, data: bytes, content_type: str, w: int | None, h: int | None) -> str:
        media = self._env.media
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(
            content_type, content_type.rsplit("/", 1)[-1]
        )
        key = media.store.put(data, ext=ext)
        row = media.new_row(
            account_id=self._account_id,
            storage_key=key,
            content_type=content_type,
            data=data,
            width=w,
            height=h,
            kind="result",
            job_id=self._job_id,
        )
        # The row is written with the job's success, in the same transaction as the charge.
        self.outputs.append(row)
        return row.id

    def discard_outputs(self) -> None:
        """Delete the stored files of results that will not be kept."""
        for row in self.outputs:
            self._env.media.store.delete(row.storage_key)
        self.outputs.clear()
