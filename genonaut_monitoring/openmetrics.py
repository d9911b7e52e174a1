"""Recorded series as OpenMetrics text: what ``promtool tsdb create-blocks-from openmetrics`` reads.

A recording is a list of :class:`Recorded` series (a name, labels and samples)
written one series after another, samples in time order, ending in ``# EOF``;
timestamps are in seconds. Files ending in ``.gz`` or ``.xz`` are compressed.

    >>> write(Path("day.om.xz"), [Recorded("up", {"job": "api"}, [(1700000000.0, 1.0)])])

:func:`retime` turns a short, fast run into a long one: every timestamp moves
``speedup`` times further from the start, and counters grow ``speedup`` times
as much, so a per-second rate, a ratio or a latency reads as it did while
recorded. Gauges (``up``, pool sizes) keep their values.
"""

from __future__ import annotations

import gzip
import lzma
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO

Sample = tuple[float, float]

# Suffixes of the series that only ever grow: counters and the parts of a histogram.
COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+) (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Recorded:
    """One series: its name, labels and ``(timestamp seconds, value)`` samples in time order."""

    name: str
    labels: dict[str, str]
    samples: list[Sample] = field(default_factory=list)

    @property
    def counter_like(self) -> bool:
        """True when the series only ever grows, by its name (counters and histograms)."""
        return self.name.endswith(COUNTER_SUFFIXES)


def open_text(path: Path, mode: str = "rt") -> IO[str]:
    """``path`` as text, through gzip or xz when its name ends in ``.gz`` or ``.xz``."""
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8")  # type: ignore[return-value]
    if path.suffix == ".xz":
        # The strongest preset: recordings are written once and read many times.
        preset = 9 | lzma.PRESET_EXTREME if "w" in mode else None
        return lzma.open(path, mode, preset=preset, encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode[0], encoding="utf-8")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it, shortest first: 42 (not 42.0), 0.25, NaN, +Inf."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def lines(series: Iterable[Recorded]) -> Iterator[str]:
    """The OpenMetrics text of ``series``, one line at a time, ``# EOF`` last."""
    for one in sorted(series, key=lambda s: (s.name, sorted(s.labels.items()))):
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(one.labels.items()))
        head = f"{one.name}{{{labels}}}" if labels else one.name
        for at, value in one.samples:
            yield f"{head} {format_value(value)} {format_value(round(at, 3))}\n"
    yield "# EOF\n"


def write(path: Path, series: Iterable[Recorded]) -> None:
    """Write ``series`` to ``path`` (compressed by its suffix), whole or not at all."""
    partial = path.with_name(f".partial-{path.name}")  # same suffix: compressed the same
    with open_text(partial, "wt") as out:
        out.writelines(lines(series))
    partial.replace(path)


def read(path: Path) -> list[Recorded]:
    """The series of an OpenMetrics file this module wrote (or any one sample per line)."""
    found: dict[tuple[str, str], Recorded] = {}
    with open_text(path) as text:
        for number, line in enumerate(text, start=1):
            if line.startswith("#") or not line.strip():
                continue
            match = _LINE.match(line.rstrip("\n"))
            try:
                if match is None:
                    raise ValueError
                name, labels_text, value, at = match.groups()
                sample = (float(at), float(value))
            except ValueError:
                raise ValueError(
                    f"{path}:{number}: not a sample line: {line.strip()[:80]!r}"
                ) from None
            key = (name, labels_text or "")
            if key not in found:
                labels = {k: _unescape(v) for k, v in _LABEL.findall(labels_text or "")}
                found[key] = Recorded(name, labels)
            found[key].samples.append(sample)
    return list(found.values())


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], value)


def span(series: Iterable[Recorded]) -> tuple[float, float]:
    """The first and last timestamp of any sample."""
    times = [at for one in series for at, _ in one.samples[:1] + one.samples[-1:]]
    if not times:
        raise ValueError("the recording holds no samples")
    return min(times), max(times)


def retime(series: list[Recorded], speedup: float, start_at: float | None = None) -> list[Recorded]:
    """``series`` as if recorded ``speedup`` times slower, starting at ``start_at``.

    A sample ``t`` seconds after the first moves to ``start_at + t * speedup``
    (to the whole second when stretched: below ``speedup`` milliseconds the
    digits are noise); counter-like series (by name: ``_total``, ``_count``,
    ``_sum``, ``_bucket``) are multiplied by ``speedup``, so ``rate()`` over the
    stretched time reads the rate of the run, and ratios and latencies are
    unchanged.
    """
    if speedup <= 0:
        raise ValueError(f"speedup must be above 0, not {speedup!r}")
    first, _ = span(series)
    origin = first if start_at is None else start_at
    out = []
    for one in series:
        scale = speedup if one.counter_like else 1.0
        samples = [(origin + (at - first) * speedup, value * scale) for at, value in one.samples]
        if speedup > 1:
            samples = [(float(round(at)), value) for at, value in samples]
        out.append(replace(one, samples=samples))
    return out
