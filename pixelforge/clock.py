"""Wall-clock time in one place, so stored times are always UTC epoch seconds."""

from __future__ import annotations

import time


def now() -> float:
    return time.time()
