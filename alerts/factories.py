"""Factories for the alert shapes that repeat: a series above a threshold, a target down."""

from __future__ import annotations

from genonaut_monitoring.alerts.model import Alert, Panel, Severity
from genonaut_monitoring.exporters import catalogue


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
    )


def down_alert(
    name: str, component: str, selector: str, *, for_: str, panel: Panel | None
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
    )


def absent_alert(
    name: str, component: str, selector: str, *, for_: str, panel: Panel | None
) -> Alert:
    """Fire when Prometheus has no target at all for ``component`` (no up series)."""
    return Alert(
        name=name,
        # up == 0 cannot fire without a target: a lost scrape job would silence every alert.
        expr=f"absent({catalogue.UP.name}{selector})",
        for_=for_,
        severity="critical",
        summary=f"Prometheus has no scrape target for the {component}.",
        description=(
            "No up series for job {{ $labels.job }} for "
            f"{for_} (absent() = {{{{ $value }}}}): the scrape config or discovery lost it."
        ),
        panel=panel,
    )
