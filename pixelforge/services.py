"""Wiring: builds every service from one Settings. The only place services are constructed."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pixelforge.accounts.ratelimit import RateLimiter, create_rate_limiter
from pixelforge.accounts.service import AccountService
from pixelforge.accounts.tokens import derive_key
from pixelforge.catalog.service import CatalogService
from pixelforge.jobs.events import EventBus, InProcessBus
from pixelforge.jobs.faults import FaultPoints
from pixelforge.jobs.pool import WorkerPool
from pixelforge.jobs.redis_bus import RedisBus
from pixelforge.jobs.runner import Runner
from pixelforge.jobs.service import JobService
from pixelforge.media.service import MediaLimits, MediaService
from pixelforge.models.manager import ModelManager
from pixelforge.pipelines.registry import PipelineRegistry, default_registry
from pixelforge.safety.fetch import FetchPolicy
from pixelforge.safety.nsfw import EXPLICIT_LABELS, NsfwDetector
from pixelforge.settings import Settings, parse_rate
from pixelforge.store.db import Database
from pixelforge.store.media import LocalMediaStore


def load_secret(settings: Settings) -> str:
    """The server secret: from settings, else generated once into the data directory."""
    if settings.secret_key:
        return settings.secret_key
    path: Path = settings.data_dir / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


_T = TypeVar("_T")


@dataclass
class Services:
    settings: Settings
    db: Database
    accounts: AccountService
    media: MediaService
    jobs: JobService
    bus: EventBus
    limiter: RateLimiter
    registry: PipelineRegistry
    catalog: CatalogService
    models: ModelManager
    runner: Runner
    pool: WorkerPool
    rate_per_key: tuple[int, float]
    rate_per_ip: tuple[int, float]
    # What a mounted dialect keeps for itself (its options, its own services), by dialect
    # name; set in its on_startup, read back typed with `extension`.
    extensions: dict[str, object] = field(default_factory=dict)

    def extension(self, name: str, kind: type[_T]) -> _T:
        """The state `name` set at startup, checked to be a `kind`."""
        value = self.extensions.get(name)
        if not isinstance(value, kind):
            raise RuntimeError(f"{name!r} has no {kind.__name__} here: is it enabled and started?")
        return value

    def start(self) -> None:
        self.bus.start()
        if self.settings.workers > 0:
            self.pool.start()

    def close(self) -> None:
        self.pool.stop()
        self.bus.close()
        self.limiter.close()
        self.db.dispose()


def build_services(settings: Settings, *, registry: PipelineRegistry | None = None) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = load_secret(settings)
    db = Database(settings.resolved_database_url)
    db.migrate()
    registry = registry or default_registry()
    catalog = CatalogService(db)
    catalog.seed()
    bus: EventBus = RedisBus(settings.redis_url) if settings.redis_url else InProcessBus()
    media = MediaService(
        db=db,
        store=LocalMediaStore(settings.media_dir),
        sign_key=derive_key(secret, "media-url"),
        limits=MediaLimits(
            max_bytes=settings.max_upload_bytes,
            max_pixels=settings.max_image_pixels,
            upload_retention_s=settings.upload_retention_s,
            result_retention_s=settings.result_retention_s,
            signed_url_ttl_s=settings.signed_url_ttl_s,
        ),
        fetch_policy=FetchPolicy(
            timeout_s=settings.url_fetch_timeout_s,
            max_bytes=settings.max_upload_bytes,
            max_redirects=settings.url_fetch_max_redirects,
            allow_networks=tuple(
                str(ipaddress.ip_network(n, strict=False))
                for n in settings.url_fetch_allow_networks
            ),
        ),
    )
    # Default: the cores shared among the worker threads, so they do not oversubscribe.
    threads = settings.worker_threads or max(1, (os.cpu_count() or 1) // max(settings.workers, 1))
    models = ModelManager(
        settings.models_dir,
        device=settings.model_device,
        cpu_budget_bytes=settings.model_cpu_budget_bytes,
        gpu_budget_bytes=settings.model_gpu_budget_bytes,
        threads=threads,
        cpu_dtype=settings.model_cpu_dtype,
        upstream_api_keys={k: v.get_secret_value() for k, v in settings.upstream_api_keys.items()},
    )
    faults = FaultPoints(settings.test_fault)  # test-only; unarmed unless a test sets it
    runner = Runner(
        db=db,
        registry=registry,
        media=media,
        bus=bus,
        models=models,
        catalog=catalog,
        nsfw=NsfwDetector(models, labels=settings.nsfw_block_labels or EXPLICIT_LABELS),
        threads=threads,
        max_batch=settings.max_batch,
        lease_s=settings.lease_s,
        faults=faults,
    )
    pool = WorkerPool(
        runner=runner,
        workers=max(settings.workers, 0),
        lease_s=settings.lease_s,
        poll_interval_s=settings.poll_interval_s,
        sweep_interval_s=settings.sweep_interval_s,
    )
    jobs = JobService(
        db=db,
        registry=registry,
        bus=bus,
        max_attempts=settings.max_attempts,
        wake=pool.wake,
        on_cancel=runner.request_cancel,
        notify_positions=runner.positions,
        faults=faults,
    )
    return Services(
        settings=settings,
        db=db,
        accounts=AccountService(
            db,
            token_key=derive_key(secret, "access-token"),
            token_ttl_s=settings.access_token_ttl_s,
        ),
        media=media,
        jobs=jobs,
        bus=bus,
        limiter=create_rate_limiter(settings.redis_url),
        registry=registry,
        catalog=catalog,
        models=models,
        runner=runner,
        pool=pool,
        rate_per_key=parse_rate(settings.rate_limit_per_key),
        rate_per_ip=parse_rate(settings.rate_limit_per_ip),
    )
