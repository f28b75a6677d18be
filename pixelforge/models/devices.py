"""Where models run: the device, its memory budget and the dtypes it computes fast."""

from __future__ import annotations

import functools
import os
from pathlib import Path


def detect_device() -> str:
    """cuda > mps > cpu."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@functools.cache
def cpu_has_native_bf16() -> bool:
    """x86 AVX512-BF16 or AMX, or Arm BF16: bfloat16 math runs at full speed there."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def gpu_bf16(device: str) -> bool:
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_bf16_supported())
    return True


def gpu_budget(device: str) -> int:
    import torch

    if device.startswith("cuda"):
        # Room left for activations, the VAE decode and the CUDA context.
        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory * 0.8)
    return ram_bytes() // 2  # mps: unified memory


def ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30
