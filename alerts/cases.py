"""An alert's promtool cases, as data kept in its definition.

Every :class:`~genonaut_monitoring.alerts.model.Alert` carries ``cases``: the
input series under which it must fire, with the alerts Prometheus then holds
(labels and ``$value``), and the series under which it must stay silent.
Series are described by their rate or level, never sample by sample, so one
case serves every config profile: :mod:`~genonaut_monitoring.alerts.unittests`
spaces the samples by the profile's evaluation interval and writes the
promtool test file; the notification previews build their alert data from the
same expectations.

    >>> job = target(cfg)                     # {"job": "genonaut-api", "instance": ...}
    >>> Cases(
    ...     fires=Scenario("every scrape fails", [Gauge("up", job, 0)], [Expect(job, 0)]),
    ...     quiet=[Scenario("every scrape succeeds", [Gauge("up", job, 1)])],
    ... )

Numbers come from the config (a threshold, a bucket edge) and are chosen to
be exact in binary floating point, so promtool can compare ``$value`` exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from genonaut_monitoring import config
from genonaut_monitoring.exporters import catalogue
from genonaut_monitoring.exporters.catalogue import MetricSpec

# promtool's input series: {"series": 'name{label="value"}', "values": "0+1x10"}.
InputSeries = dict[str, str]


class Series(Protocol):
    """Something that becomes promtool input series for a sample spacing."""

    def names(self) -> dict[str, Mapping[str, str]]:
        """Series name -> labels, for the catalogue check."""

    def input_series(self, step: float, points: int) -> list[InputSeries]:
        """``points`` samples ``step`` seconds apart, in promtool's expanding notation."""


def labels_text(labels: Mapping[str, str]) -> str:
    """``{a="1", b="2"}``: a label set as PromQL writes it, sorted."""
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


@dataclass(frozen=True)
class Counter:
    """A counter growing by ``per_second`` every second, from ``start``.

    ``Counter(name, labels, 0, start=42)`` is one that counted before and stays flat.
    """

    name: str
    labels: Mapping[str, str]
    per_second: float
    start: float = 0

    def names(self) -> dict[str, Mapping[str, str]]:
        return {self.name: self.labels}

    def input_series(self, step: float, points: int) -> list[InputSeries]:
        return [
            {
                "series": self.name + labels_text(self.labels),
                "values": f"{self.start!r}+{self.per_second * step!r}x{points}",
            }
        ]


@dataclass(frozen=True)
class Gauge:
    """A gauge holding ``value`` throughout."""

    name: str
    labels: Mapping[str, str]
    value: float

    def names(self) -> dict[str, Mapping[str, str]]:
        return {self.name: self.labels}

    def input_series(self, step: float, points: int) -> list[InputSeries]:
        return [
            {"series": self.name + labels_text(self.labels), "values": f"{self.value!r}x{points}"}
        ]


@dataclass(frozen=True)
class Restarted:
    """A flat counter at ``before`` that restarts from 0 ``at`` seconds in and stays there.

    The process restarted: the counter went down, and nothing was counted. A quiet
    scenario is evaluated at ``fires_at`` and again ``for`` plus one evaluation later:
    a restart at ``rate_window + for``, just before the first, lies in the window of
    both (while the window is longer than ``for`` plus three evaluations).
    """

    name: str
    labels: Mapping[str, str]
    before: float
    at: float

    def names(self) -> dict[str, Mapping[str, str]]:
        return {self.name: self.labels}

    def input_series(self, step: float, points: int) -> list[InputSeries]:
        first_zero = min(points, max(1, round(self.at / step)))
        return [
            {
                "series": self.name + labels_text(self.labels),
                "values": f"{self.before!r}x{first_zero - 1} 0x{points - first_zero}",
            }
        ]


def le_text(le: float) -> str:
    """The ``le`` label value of a bucket edge, as the client library writes it."""
    return "+Inf" if math.isinf(le) else repr(float(le))


@dataclass(frozen=True)
class Histogram:
    """``per_second`` observations a second of histogram ``spec``, all inside ``bucket``.

    ``bucket`` is ``(lower, upper]``, two adjacent edges of the spec's buckets.
    """

    spec: MetricSpec
    labels: Mapping[str, str]
    bucket: tuple[float, float]
    per_second: float = 1.0

    def _buckets(self) -> list[Counter]:
        edges = [*(self.spec.buckets or ()), math.inf]
        return [
            Counter(
                self.spec.name + "_bucket",
                {**self.labels, "le": le_text(le)},
                self.per_second if le >= self.bucket[1] else 0.0,
            )
            for le in edges
        ]

    def names(self) -> dict[str, Mapping[str, str]]:
        return {self.spec.name + "_bucket": {**self.labels, "le": "+Inf"}}

    def input_series(self, step: float, points: int) -> list[InputSeries]:
        return [s for counter in self._buckets() for s in counter.input_series(step, points)]


@dataclass(frozen=True)
class Expect:
    """One alert Prometheus must hold: its labels (but alertname, severity and the
    definition's own labels, which are added) and its ``$value``."""

    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class Scenario:
    """Input series and the alerts they cause; ``what`` completes "… when <what>"."""

    what: str
    series: Sequence[Series]
    alerts: Sequence[Expect] = ()


@dataclass(frozen=True)
class Cases:
    """When an alert fires and when it stays silent.

    ``fires`` must hold at ``fires_at`` (default: a full rate window, then
    ``for``, then two evaluations) and not one evaluation before ``for`` has
    passed. Each ``quiet`` scenario must hold no alert at ``fires_at`` nor a
    ``for`` later. Only an alert that fires on no input at all (the Watchdog)
    may have no quiet scenario.
    """

    fires: Scenario
    quiet: Sequence[Scenario] = ()
    fires_at: config.Duration | None = None

    def problems(self, alert: str) -> list[str]:
        """Cases that cannot test anything, and series outside the metric catalogue."""
        found = []
        if not self.fires.alerts:
            found.append(f"alert {alert}: cases.fires expects no alert; list what it fires")
        if not self.quiet and self.fires.series:
            found.append(
                f"alert {alert}: cases.quiet is empty; add a scenario below the threshold "
                "where it stays silent"
            )
        found.extend(
            f"alert {alert}: quiet scenario {quiet.what!r} lists alerts; a quiet one holds none"
            for quiet in self.quiet
            if quiet.alerts
        )
        for scenario in (self.fires, *self.quiet):
            for series in scenario.series:
                for name, labels in series.names().items():
                    found.extend(
                        f"alert {alert}: case series {name}{labels_text(labels)}: {problem}"
                        for problem in _series_problems(name, labels)
                    )
        return found


def _series_problems(name: str, labels: Mapping[str, str]) -> list[str]:
    known = catalogue.lookup(name)
    if known is None:
        return [f"{name!r} is not a series of the catalogue (exporters/catalogue.py)"]
    extra = sorted(set(labels) - known[1])
    if extra:
        return [f"labels {extra} are not labels of {name} (it has {sorted(known[1])})"]
    return []


# --- Helpers for writing cases from the config -------------------------------------------


def target(cfg: config.Config, **labels: str) -> dict[str, str]:
    """The target labels of the first service's first target, plus ``labels``."""
    return target_of(cfg.services[0], **labels)


def target_of(service: config.Service, **labels: str) -> dict[str, str]:
    """The target labels of ``service``'s first target, plus ``labels``."""
    return {"job": service.name, "instance": service.targets[0], **labels}


def binary_above(value: float) -> float:
    """A power of two at least twice ``value`` (0.5 for 0): rates that add up exactly."""
    return 2.0 ** math.ceil(math.log2(2 * value)) if value > 0 else 0.5


def binary_below(value: float) -> float:
    """A power of two at most half ``value``, or 0."""
    return 2.0 ** math.floor(math.log2(value / 2)) if value > 0 else 0.0


def bucket_above(spec: MetricSpec, threshold: float) -> tuple[float, float]:
    """The first bucket of ``spec`` entirely above ``threshold``: its p95 exceeds it."""
    edges = list(spec.buckets or ())
    lower = next((e for e in edges if e >= threshold), None)
    if lower is None or lower == edges[-1]:
        raise ValueError(f"{spec.name} has no bucket above {threshold!r} (buckets {edges})")
    return lower, edges[edges.index(lower) + 1]


def bucket_below(spec: MetricSpec, threshold: float) -> tuple[float, float]:
    """The last bucket of ``spec`` ending at or below ``threshold``: its p95 stays under it."""
    edges = [0.0, *(spec.buckets or ())]
    upper = max(e for e in edges if e <= threshold)
    if upper == 0.0:
        raise ValueError(f"{spec.name} has no bucket below {threshold!r} (buckets {edges[1:]})")
    return edges[edges.index(upper) - 1], upper


def quantile_in(bucket: tuple[float, float], q: float) -> float:
    """``histogram_quantile(q, ...)`` when every observation falls in ``bucket``."""
    lower, upper = bucket
    return lower + (upper - lower) * q
