"""Helpers shared by the report-printing scripts: row order, percentiles, tables, progress."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TextIO

from genonaut_monitoring.exporters import catalogue

# Report rows follow the catalogue's bucket order (0, 1-100, ..., then "none"), not the alphabet.
OFFSET_RANGE_ORDER = {
    **{label: i for i, (_, label) in enumerate(catalogue.OFFSET_RANGES)},
    catalogue.NO_OFFSET: len(catalogue.OFFSET_RANGES),
}
PAGE_SIZE_ORDER = {label: i for i, (_, label) in enumerate(catalogue.PAGE_SIZE_CLASSES)}


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when there are none).

    >>> percentile([10.0, 20.0, 30.0, 40.0], 0.5)
    20.0
    """
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def latency_summary(values: Iterable[float]) -> dict[str, float]:
    """p50, p95, p99, max and mean of durations, rounded to microseconds."""
    ordered = sorted(values)
    if not ordered:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "mean_ms": 0.0}
    return {
        "p50_ms": round(percentile(ordered, 0.50), 3),
        "p95_ms": round(percentile(ordered, 0.95), 3),
        "p99_ms": round(percentile(ordered, 0.99), 3),
        "max_ms": round(ordered[-1], 3),
        "mean_ms": round(sum(ordered) / len(ordered), 3),
    }


def format_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain-text table: title line, header, rule, rows; numbers right-aligned."""
    values = [list(row) for row in rows]
    cells = [[_cell(value) for value in row] for row in values]
    widths = [len(name) for name in columns]
    for row in cells:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    # Labels stay left-aligned even when they look like numbers (offset range "0").
    numeric = [
        bool(values) and all(_is_number(row[i]) for row in values) for i in range(len(columns))
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [title, line(list(columns)), "  ".join("-" * width for width in widths)]
    out.extend(line(row) for row in cells)
    if not cells:
        out.append("(none)")
    return "\n".join(out)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Progress:
    """A counter on stderr: rewritten in place on a terminal, a line every 5 s otherwise.

    >>> progress = Progress("requests", total=400)
    >>> progress.update(120, "3 errors")
    >>> progress.done()
    """

    def __init__(
        self, unit: str, total: int | None = None, stream: TextIO | None = None, quiet: bool = False
    ) -> None:
        self.unit = unit
        self.total = total
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        # A terminal gets a smooth counter; a log file gets a line now and then.
        self.every = 0.2 if self.tty else 5.0
        self._last = 0.0
        self._text = ""

    def update(self, count: int, extra: str = "", force: bool = False) -> None:
        """Show ``count`` (and ``extra``) if enough time passed since the last update."""
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        of = f"/{self.total}" if self.total is not None else ""
        text = f"{count}{of} {self.unit}" + (f", {extra}" if extra else "")
        self._text = f"{text} ({now - self.started:.1f}s)"
        if self.tty:
            self.stream.write("\r\x1b[K" + self._text)
        else:
            self.stream.write(self._text + "\n")
        self.stream.flush()

    def done(self) -> None:
        """End the progress line so the report starts on a fresh one."""
        if self.quiet:
            return
        if self.tty and self._text:
            self.stream.write("\n")
            self.stream.flush()


if __name__ == "__main__":
    sys.exit(
        f"{__file__}: not a command, a helper of scripts.analyze_logs and "
        "scripts.performance_test; "
        "run one of those (python -m scripts.NAME --help)"
    )
