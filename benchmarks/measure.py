"""What the overhead benchmark measures with: settings, clocks, interleaving, statistics.

Every timing is a pair: wall time (``perf_counter``) and process CPU time
(``process_time``: every thread of the process, so work handed to a thread
is still counted). Overhead is paired by round: a variant's time per request
minus the bare app's in the same round, so drift in CPU frequency or
background load hits both sides of each difference alike.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.apps import KINDS, VARIANTS

CLOCKS = ("cpu", "wall")


@dataclass(frozen=True)
class Settings:
    """How much to measure; ``--quick`` shrinks every count."""

    rounds: int = 9
    requests: int = 1_500
    loopback_rounds: int = 5
    loopback_requests: int = 400
    scrape_requests: int = 10_000
    scrapes: int = 30
    routes: int = 50


QUICK = Settings(
    rounds=3,
    requests=100,
    loopback_rounds=2,
    loopback_requests=30,
    scrape_requests=500,
    scrapes=3,
)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, min and max of a sample."""
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, median, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = median = q3 = ordered[0]
    return {
        "median": round(median, 3),
        "p25": round(q1, 3),
        "p75": round(q3, 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
    }


def rotated(items: Sequence[Any], shift: int) -> list[Any]:
    """``items`` starting at position ``shift``: each round begins with another variant."""
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


@dataclass
class Sample:
    """µs per request of one batch, on both clocks."""

    cpu: float
    wall: float


async def timed(run: Callable[[], Awaitable[None]], count: int) -> Sample:
    """Run one batch of ``count`` requests; µs per request on both clocks."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    await run()
    return Sample(
        (time.process_time() - cpu) / count * 1e6, (time.perf_counter() - wall) / count * 1e6
    )


# times[kind][variant] -> one Sample per round.
Times = dict[str, dict[str, list[Sample]]]


def empty_times(variants: Sequence[str] = VARIANTS) -> Times:
    """A Times table with no samples yet."""
    return {kind: {variant: [] for variant in variants} for kind in KINDS}


def overheads(times: Times) -> dict[str, dict[str, dict[str, Any]]]:
    """Per kind and variant: µs per request and paired overhead over bare, on both clocks."""
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, by_variant in times.items():
        bare = by_variant["bare"]
        result[kind] = {}
        for variant, samples in by_variant.items():
            entry: dict[str, Any] = {}
            for clock in CLOCKS:
                mine = [getattr(s, clock) for s in samples]
                entry[f"{clock}_us"] = summary(mine)
                if variant != "bare":
                    theirs = [getattr(s, clock) for s in bare]
                    entry[f"overhead_{clock}_us"] = summary(
                        [m - b for m, b in zip(mine, theirs, strict=True)]
                    )
            result[kind][variant] = entry
    return result
