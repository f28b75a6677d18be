"""What the benches share: the result table, progress lines, number format, ports.

The benches run as scripts (`python bench/<name>.py`), so this module is imported by its
plain name from the scripts' own directory.
"""

from __future__ import annotations

import math
import socket
import sys
import time
from dataclasses import dataclass, field

STARTED = time.monotonic()


@dataclass
class Row:
    section: str
    metric: str
    value: float
    unit: str
    ratio: float | None = None
    versus: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(
        self,
        section: str,
        metric: str,
        value: float,
        unit: str,
        ratio: float | None = None,
        versus: str = "",
    ) -> None:
        """Record a row and echo it at once."""
        self.rows.append(Row(section, metric, value, unit, ratio, versus))
        tail = "" if ratio is None else f"  (x{fmt(ratio)} vs {versus})"
        print(f"  .. {metric}: {fmt(value)} {unit}{tail}", flush=True)

    def print(self) -> None:
        """The rows as an aligned table, then the notes."""
        head = ("section", "metric", "value", "ratio", "ratio is against")
        table = [head] + [
            (
                r.section,
                r.metric,
                f"{fmt(r.value)} {r.unit}",
                "" if r.ratio is None else fmt(r.ratio),
                r.versus,
            )
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(head))]
        print()
        for i, row in enumerate(table):
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            if i == 0:
                print("  ".join("-" * w for w in widths))
        for note in self.notes:
            print(f"note: {note}")


def progress(what: str) -> None:
    """A timestamped progress line (seconds since the bench started)."""
    print(f"{time.monotonic() - STARTED:6.1f} s  {what}", flush=True)


def fmt(x: float) -> str:
    """A number with about three significant digits, thousands separated."""
    if math.isnan(x):
        return "nan"
    if x == 0 or abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pixelforge_cmd(*args: str) -> list[str]:
    """`python -m pixelforge ARGS` with this interpreter."""
    return [sys.executable, "-m", "pixelforge", *args]
