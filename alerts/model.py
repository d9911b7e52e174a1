"""The shapes every rule module builds: alert rules, recording rules, rule groups.

    >>> Alert("ApiHighErrorRate", "job:x:ratio > 0.05", "2m", "critical", "Too many errors.",
    ...       "{{ $value }} failed.", panel=Panel("main", "Error rate"),
    ...       cases=Cases(fires=Scenario(...), quiet=[Scenario(...)]))

Rule modules return :class:`Group` objects; :mod:`alerts.render` turns them
into Prometheus rule files and :mod:`alerts.links` stamps the URLs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from genonaut_monitoring.alerts.cases import Cases

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")

VALUE_FORMATS = ("humanize", "humanizeDuration", "humanizePercentage")

_CAMEL = re.compile(r"^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)*$")
# level:metric:operations, each part lower snake case.
_RECORD_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Panel:
    """Where an alert shows: a dashboard key (``cfg.grafana.dashboard_uids``) and panel title.

    ``title=None`` links the whole dashboard, for alerts no single panel shows.
    """

    dashboard: str
    title: str | None = None


@dataclass(frozen=True)
class Alert:
    """One alerting rule with the annotations every alert carries, and its promtool cases.

    Everything about an alert is here: the tests, the rule file, the runbook
    and dashboard links and the notification previews all read it, so adding
    an alert is this definition plus its RUNBOOK.md section.
    """

    name: str
    expr: str
    for_: str
    severity: Severity
    summary: str
    description: str
    panel: Panel | None = None
    # Prometheus template function that renders $value in the ``value`` annotation.
    value_format: str = "humanize"
    labels: dict[str, str] = field(default_factory=dict)
    # When it fires and when it stays silent (alerts/cases.py); the build requires them.
    cases: Cases | None = None

    @property
    def anchor(self) -> str:
        """The RUNBOOK.md heading anchor for this alert."""
        return self.name.lower()

    def problems(self) -> list[str]:
        """Ways this alert breaks the house rules, as sentences naming it."""
        found = []
        if not _CAMEL.match(self.name):
            found.append(f"alert {self.name}: name must be CamelCase, e.g. ApiHighErrorRate")
        if self.severity not in SEVERITIES:
            found.append(
                f"alert {self.name}: severity {self.severity!r} is not one of {SEVERITIES}"
            )
        if not (self.summary.endswith(".") and "{{" not in self.summary):
            found.append(f"alert {self.name}: summary must be static text ending in a period")
        if self.summary.count(". ") or "\n" in self.summary:
            found.append(f"alert {self.name}: summary must be one sentence")
        if self.value_format not in VALUE_FORMATS:
            found.append(f"alert {self.name}: value_format must be one of {VALUE_FORMATS}")
        if "$value" not in self.description:
            found.append(f"alert {self.name}: description must show {{{{ $value }}}}")
        if self.cases is None:
            found.append(
                f"alert {self.name}: no promtool cases; give it cases=Cases(fires=Scenario(...), "
                "quiet=[Scenario(...)]) with the series that make it fire and stay silent "
                "(alerts/cases.py)"
            )
        else:
            found.extend(self.cases.problems(self.name))
        return found


@dataclass(frozen=True)
class Record:
    """One recording rule; ``why`` becomes the comment above it in the rule file.

    ``labels`` are set on every series it writes, so several rules can write one name
    apart (the SLO rules: one per SLO, told apart by ``slo``).
    """

    name: str
    expr: str
    keeps: frozenset[str]
    why: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def identity(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """What two rules must not share: the series name and the labels the rule sets."""
        return self.name, tuple(sorted(self.labels.items()))

    def problems(self) -> list[str]:
        """Ways this recording rule breaks the naming convention."""
        if _RECORD_NAME.match(self.name):
            return []
        return [f"recording rule {self.name}: name must be level:metric:operations"]


@dataclass(frozen=True)
class Group:
    """A rule group, written to prometheus/rules/<area>.yml."""

    area: str
    rules: tuple[Alert | Record, ...]

    @property
    def name(self) -> str:
        return f"genonaut-{self.area}"

    @property
    def alerts(self) -> tuple[Alert, ...]:
        return tuple(r for r in self.rules if isinstance(r, Alert))

    @property
    def records(self) -> tuple[Record, ...]:
        return tuple(r for r in self.rules if isinstance(r, Record))


# --- Durations and thresholds as people read them -------------------------------

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}


def seconds(duration: str) -> float:
    """Seconds in a Prometheus duration such as ``"1m30s"``; ValueError names a bad one."""
    parts = _DURATION_PART.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"{duration!r} is not a Prometheus duration (e.g. 30s, 5m, 1h30m)")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def duration(total_seconds: float) -> str:
    """A Prometheus duration for a number of seconds (``105 -> "1m45s"``)."""
    millis = round(total_seconds * 1000)
    if millis == 0:
        return "0s"
    out = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)
