"""Resident models: an LRU under a memory budget per device class, never evicting one in use."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


def device_class(device: str) -> str:
    """'cpu' or 'gpu': the budget a device draws on (cuda:N and mps share the GPU budget)."""
    return "cpu" if device.split(":")[0] == "cpu" else "gpu"


def module_bytes(obj: Any) -> int:
    """Parameter + buffer bytes of the torch modules in `obj` (a pipeline, a module or a list
    of them); tensors shared between components are counted once. A value that knows its own
    size (an ONNX session) gives it as `resident_bytes`."""
    own = getattr(obj, "resident_bytes", None)
    if isinstance(own, int):
        return own
    import torch

    if isinstance(obj, torch.nn.Module):
        modules = [obj]
    elif isinstance(obj, list | tuple):
        modules = [m for m in obj if isinstance(m, torch.nn.Module)]
    else:
        components = getattr(obj, "components", {})
        modules = [m for m in components.values() if isinstance(m, torch.nn.Module)]
    seen: set[int] = set()
    total = 0
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            if t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
    return total


@dataclass
class _Entry:
    key: str
    value: Any
    device: str
    dtype: str
    nbytes: int
    refs: int = 0
    last_used: float = 0.0


class ModelCache:
    """Thread-safe. `use(key, ...)` returns the resident value (loading it at most once, even
    when many threads ask at the same moment) and pins it for the `with` block."""

    def __init__(self, *, cpu_budget_bytes: int, gpu_budget_bytes: int) -> None:
        self._budgets = {"cpu": cpu_budget_bytes, "gpu": gpu_budget_bytes}
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._reserved = {"cpu": 0, "gpu": 0}  # bytes promised to loads in progress
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.loads = 0  # how many times a loader ran (for tests and metrics)

    def budget(self, device: str) -> int:
        return self._budgets[device_class(device)]

    def set_budget(self, device: str, nbytes: int) -> None:
        with self._lock:
            self._budgets[device_class(device)] = nbytes

    def used_bytes(self, device: str) -> int:
        cls = device_class(device)
        with self._lock:
            return sum(e.nbytes for e in self._entries.values() if device_class(e.device) == cls)

    @contextmanager
    def use(
        self,
        key: str,
        *,
        device: str,
        load: Callable[[], Any],
        estimate_bytes: int = 0,
        dtype: str = "",
    ) -> Iterator[Any]:
        """The value under `key`, calling `load()` if it is not resident; it cannot be evicted
        until the block exits. `estimate_bytes` makes room before loading."""
        entry = self._acquire(key, device=device, load=load, estimate=estimate_bytes, dtype=dtype)
        try:
            yield entry.value
        finally:
            with self._lock:
                entry.refs -= 1
                entry.last_used = time.monotonic()

    def _acquire(
        self, key: str, *, device: str, load: Callable[[], Any], estimate: int, dtype: str
    ) -> _Entry:
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        # Loads of one key are serial (the second thread then finds it resident); loads of
        # different keys run in parallel.
        with key_lock:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    entry.refs += 1
                    self._entries.move_to_end(key)
                    return entry
                cls = device_class(device)
                victims = self._make_room(cls, estimate)
                self._reserved[cls] += estimate
            self._free(victims)
            try:
                value = load()
            finally:
                with self._lock:
                    self._reserved[cls] -= estimate
            nbytes = module_bytes(value)
            with self._lock:
                self.loads += 1
                entry = _Entry(key, value, device, dtype, nbytes, refs=1)
                entry.last_used = time.monotonic()
                self._entries[key] = entry
                victims = self._make_room(cls, 0)
            self._free(victims)
            log.info("model %s resident on %s (%.1f MB)", key, device, nbytes / 2**20)
            return entry

    def _make_room(self, cls: str, incoming: int) -> list[_Entry]:
        """Unlink least-recently-used idle entries until `incoming` more bytes fit. Lock held."""
        used = self._reserved[cls] + sum(
            e.nbytes for e in self._entries.values() if device_class(e.device) == cls
        )
        victims: list[_Entry] = []
        for entry in list(self._entries.values()):
            if used + incoming <= self._budgets[cls]:
                break
            if entry.refs == 0 and device_class(entry.device) == cls:
                del self._entries[entry.key]
                victims.append(entry)
                used -= entry.nbytes
        if used + incoming > self._budgets[cls]:
            # Models in use cannot go; loading anyway beats failing the job, but say so.
            log.warning(
                "model memory over the %s budget (%.1f MB in use or loading, %.1f MB budget)",
                cls,
                (used + incoming) / 2**20,
                self._budgets[cls] / 2**20,
            )
        return victims

    def _free(self, victims: list[_Entry]) -> None:
        if not victims:
            return
        devices = {v.device for v in victims}
        for victim in victims:
            log.info("evicting model %s from %s", victim.key, victim.device)
            # Native graphs (MediaPipe) free their threads and buffers only when closed.
            release = getattr(victim.value, "release", None)
            if callable(release):
                release()
            victim.value = None
        del victims
        gc.collect()
        if any(device_class(d) == "gpu" for d in devices):
            _empty_device_cache(devices)

    def evict(self, key: str) -> bool:
        """Drop `key` if resident and idle; False if absent or in use."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.refs > 0:
                return False
            del self._entries[key]
        self._free([entry])
        return True

    def clear(self) -> None:
        """Drop every idle entry."""
        with self._lock:
            victims = [e for e in self._entries.values() if e.refs == 0]
            for v in victims:
                del self._entries[v.key]
        self._free(victims)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._entries

    def resident(self) -> list[dict[str, Any]]:
        """What is in memory, most recently used first (GET /v1/models)."""
        with self._lock:
            return [
                {
                    "id": e.key,
                    "device": e.device,
                    "dtype": e.dtype,
                    "bytes": e.nbytes,
                    "in_use": e.refs > 0,
                }
                for e in reversed(self._entries.values())
            ]


def _empty_device_cache(devices: set[str]) -> None:
    import torch

    if any(d.startswith("cuda") for d in devices) and torch.cuda.is_available():
        torch.cuda.empty_cache()
    if "mps" in devices and torch.backends.mps.is_available():
        torch.mps.empty_cache()
