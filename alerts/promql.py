"""Small PromQL builders, so metric names come from the catalogue and never from strings."""

from __future__ import annotations

import json
import re

from genonaut_monitoring import config
from genonaut_monitoring.exporters import catalogue
from genonaut_monitoring.exporters.catalogue import MetricSpec


def series(spec: MetricSpec, suffix: str = "") -> str:
    """The series name of ``spec``; ``suffix`` picks ``_bucket``, ``_sum`` or ``_count``."""
    name = spec.name + suffix
    if name not in spec.series:
        raise ValueError(f"{spec.name} has no series {name!r} (it has {sorted(spec.series)})")
    return name


def job_matcher(cfg: config.Config) -> str:
    """``job="a"``, or ``job=~"a|b"`` for several services: only the configured jobs."""
    jobs = list(cfg.jobs)
    if len(jobs) == 1:
        return f"job={json.dumps(jobs[0])}"
    return f'job=~"{regex_alternation(jobs)}"'


def job_selector(cfg: config.Config, **matchers: str) -> str:
    """A label selector scoped to the services' jobs, plus ``label="value"`` / ``label=~"re"``."""
    parts = [job_matcher(cfg)]
    for label, value in sorted(matchers.items()):
        op, text = ("=~", value[1:]) if value.startswith("~") else ("=", value)
        parts.append(f'{label}{op}"{text}"')
    return "{" + ", ".join(parts) + "}"


def window_suffix(cfg: config.Config) -> str:
    """``rate5m`` for a 5m rate window: recording-rule names say which window they hold."""
    return f"rate{cfg.intervals.rate_window}"


def regex_alternation(values: list[str]) -> str:
    """An RE2 alternation matching exactly ``values``, for a PromQL ``=~`` matcher."""
    if not values:
        raise ValueError("an alternation needs at least one value")
    escaped = [re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", v) for v in values]
    # Backslashes double up inside a PromQL double-quoted string.
    return "|".join(escaped).replace("\\", "\\\\")


def hidden_routes_matcher(cfg: config.Config) -> str:
    """``route!~"..."``: every service's metrics path and ``config.Grafana.hidden_routes``.

    The dashboards' ``$route`` picker lists routes through it, so probes, scrapes and
    debug endpoints stay out of every route panel without each query repeating it.
    """
    paths = sorted({s.metrics_path for s in cfg.services})
    literal = [re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", path) for path in paths]
    pattern = "|".join([*literal, *cfg.grafana.hidden_routes])
    return f"route!~{json.dumps(pattern)}"


def deep_offset_matcher(cfg: config.Config) -> str:
    """``offset_range=~"..."`` for the ranges that count as deep (PaginationDeepOffsetSlow).

    The alert and the pagination dashboard share it; ranges such as ``100001+`` hold
    regex metacharacters, so the values are escaped, never joined as they are.
    """
    ranges = catalogue.offset_ranges_from(cfg.thresholds.deep_offset_min)
    return f'offset_range=~"{regex_alternation(ranges)}"'
