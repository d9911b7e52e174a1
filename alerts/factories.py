"""Factories for the alert shapes that repeat: a series above a threshold, a target down,
and the promtool cases of a quantile above a threshold, of any increase of a counter and
of a health gauge at 0."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from genonaut_monitoring import config
from genonaut_monitoring.alerts.cases import (
    Cases,
    Counter,
    Expect,
    Gauge,
    Histogram,
    Restarted,
    Scenario,
    Series,
    bucket_above,
    bucket_below,
    quantile_in,
)
from genonaut_monitoring.alerts.model import Alert, Panel, Severity, seconds
from genonaut_monitoring.alerts.recording import QUANTILE
from genonaut_monitoring.config import fmt_seconds
from genonaut_monitoring.exporters import catalogue
from genonaut_monitoring.exporters.catalogue import MetricSpec


def above(
    name: str,
    expr: str,
    threshold: float,
    *,
    for_: str,
    severity: Severity,
    summary: str,
    description: str,
    panel: Panel,
    cases: Cases,
    value_format: str = "humanize",
) -> Alert:
    """Fire when ``expr`` (one series per thing watched) stays above ``threshold``."""
    return Alert(
        name=name,
        expr=f"{expr}\n> {threshold!r}",
        for_=for_,
        severity=severity,
        summary=summary,
        description=description,
        panel=panel,
        value_format=value_format,
        cases=cases,
    )


def quantile_cases(
    spec: MetricSpec,
    threshold: float,
    labels: Mapping[str, str],
    keeps: Iterable[str],
    *,
    observed: str = "requests",
    also_quiet: Iterable[Series] = (),
    also_quiet_what: str = "",
) -> Cases:
    """Cases for a p95-above-``threshold`` alert on histogram ``spec``.

    Every observation falls in the first bucket above the threshold (it fires,
    labelled with ``keeps`` of ``labels``), or in the last bucket below it (silent,
    together with ``also_quiet``: series the alert must ignore, which
    ``also_quiet_what`` describes, as in "…, while shallow pages are slow").
    """
    hot, cold = bucket_above(spec, threshold), bucket_below(spec, threshold)

    def takes(bucket: tuple[float, float]) -> str:
        return f"all {observed} take {fmt_seconds(bucket[0])} to {fmt_seconds(bucket[1])}"

    kept = {key: labels[key] for key in keeps}
    return Cases(
        fires=Scenario(
            takes(hot), [Histogram(spec, labels, hot)], [Expect(kept, quantile_in(hot, QUANTILE))]
        ),
        quiet=[
            Scenario(takes(cold) + also_quiet_what, [Histogram(spec, labels, cold), *also_quiet])
        ],
    )


# Where the counters of increase_cases() stood before they stopped counting.
EARLIER = 42


@dataclass(frozen=True)
class Told:
    """What each scenario of :func:`increase_cases` is, completing "... when <what>"."""

    fires: str
    none: str
    flat: str
    restart: str


def increase_cases(
    cfg: config.Config,
    spec: MetricSpec,
    hot: Mapping[str, str],
    siblings: Sequence[Mapping[str, str]],
    keeps: Iterable[str],
    for_: str,
    told: Told,
) -> Cases:
    """Cases for an alert on any increase of counter ``spec`` within the rate window.

    It fires when the ``hot`` series counts one every evaluation interval while its
    ``siblings`` (the label sets the exporter creates at zero) stay at zero, with the
    labels ``keeps`` (its recording rule's). It stays silent when nothing is counted,
    when the counter stands still after counting earlier (a level is no increase),
    and when the process restarts after counting (a reset to 0 is no increase).
    """
    w, step = cfg.intervals.rate_window, seconds(cfg.intervals.evaluation_interval)

    def flat(level: float) -> list[Series]:
        return [Counter(spec.name, labels, 0, start=level) for labels in (hot, *siblings)]

    restart = Restarted(spec.name, hot, EARLIER, seconds(w) + seconds(for_))
    return Cases(
        fires=Scenario(
            told.fires,
            [Counter(spec.name, hot, 1 / step), *flat(0)[1:]],
            [Expect({key: hot[key] for key in keeps}, seconds(w) / step)],
        ),
        quiet=[
            Scenario(told.none, flat(0)),
            Scenario(told.flat, flat(EARLIER)),
            Scenario(told.restart, [restart, *flat(0)[1:]]),
        ],
    )


def up_cases(metric: str, labels: Mapping[str, str], *, down: str, up: str) -> Cases:
    """Cases for a 0-or-1 health gauge ``metric`` of one target: it fires at 0 (``down``
    says when) with the target's ``labels``, and stays silent at 1 (``up``)."""
    return Cases(
        fires=Scenario(down, [Gauge(metric, labels, 0)], [Expect(labels, 0)]),
        quiet=[Scenario(up, [Gauge(metric, labels, 1)])],
    )


def down_alert(
    name: str, component: str, selector: str, *, for_: str, panel: Panel | None, cases: Cases
) -> Alert:
    """Fire when Prometheus fails every scrape of a target of ``component``."""
    return Alert(
        name=name,
        expr=f"{catalogue.UP.name}{selector} == 0",
        for_=for_,
        severity="critical",
        summary=f"Prometheus cannot scrape one of the {component} targets.",
        description=(
            "{{ $labels.instance }} (job {{ $labels.job }}) has failed every scrape for "
            f"{for_}; up is {{{{ $value }}}}."
        ),
        panel=panel,
        cases=cases,
    )


def absent_alert(
    name: str, component: str, jobs: Sequence[str], *, for_: str, panel: Panel | None, cases: Cases
) -> Alert:
    """Fire when Prometheus has no target at all for one of ``jobs`` (no up series)."""
    # up == 0 cannot fire without a target: a lost scrape job would silence every alert.
    # One absent() per job: only an equality matcher becomes a label of absent()'s
    # result, so a job=~"a|b" selector would fire without saying which job is lost.
    expr = "\nor\n".join(f"absent({catalogue.UP.name}{{job={json.dumps(job)}}})" for job in jobs)
    return Alert(
        name=name,
        expr=expr,
        for_=for_,
        severity="critical",
        summary=f"Prometheus has no scrape target for the {component}.",
        description=(
            "No up series for job {{ $labels.job }} for "
            f"{for_} (absent() = {{{{ $value }}}}): the scrape config or discovery lost it."
        ),
        panel=panel,
        cases=cases,
    )
