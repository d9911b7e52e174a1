"""Pagination alerts: page queries are slow, deep offsets are slow."""

from __future__ import annotations

from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording
from genonaut_monitoring.alerts.cases import Histogram, bucket_above, target
from genonaut_monitoring.alerts.factories import above, quantile_cases
from genonaut_monitoring.alerts.model import Alert, Group, Panel
from genonaut_monitoring.alerts.promql import deep_offset_matcher
from genonaut_monitoring.config import fmt_seconds
from genonaut_monitoring.exporters import catalogue as c

# The labels of one page of the content list, for the cases (page queries also carry the
# page-size class; request durations do not).
PAGE = {"route": "/api/v1/content", "mode": "offset"}
QUERY = {**PAGE, "page_size_class": "26-50"}


def slow_queries(cfg: config.Config) -> Alert:
    t, w = cfg.thresholds, cfg.intervals.rate_window
    return above(
        "PaginationSlowQueries",
        recording.pagination_query_p95(cfg),
        t.pagination_query_p95_seconds,
        for_=cfg.durations.pagination_slow_queries,
        severity="warning",
        summary=(
            "Pagination page queries take longer than "
            f"{fmt_seconds(t.pagination_query_p95_seconds)} at p95."
        ),
        description=(
            "p95 page-query time of {{ $labels.route }} ({{ $labels.mode }} pagination, "
            "job {{ $labels.job }}) is {{ $value | humanizeDuration }} "
            f"over the last {w}."
        ),
        panel=Panel("pagination", "Pagination query time"),
        value_format="humanizeDuration",
        cases=quantile_cases(
            c.PAGINATION_QUERY_DURATION,
            t.pagination_query_p95_seconds,
            target(cfg, **QUERY, offset_range="1-100"),
            ("job", "route", "mode"),
            observed="page queries",
        ),
    )


def deep_offset_slow(cfg: config.Config) -> Alert:
    t, w = cfg.thresholds, cfg.intervals.rate_window
    spec, threshold = c.PAGINATION_REQUEST_DURATION, t.deep_offset_p95_seconds
    deep = c.offset_ranges_from(t.deep_offset_min)[0]
    shallow = target(cfg, **PAGE, offset_range=c.offset_range(1))
    return above(
        "PaginationDeepOffsetSlow",
        # Only offset ranges that start at deep_offset_min or beyond: shallow pages are
        # covered by ApiHighLatency, and deep ones are what cursors fix.
        f"{recording.pagination_offset_p95(cfg)}{{{deep_offset_matcher(cfg)}}}",
        threshold,
        for_=cfg.durations.pagination_deep_offset_slow,
        severity="warning",
        summary=(
            f"Pages at offsets of {t.deep_offset_min:,} or more take longer than "
            f"{fmt_seconds(threshold)} at p95."
        ),
        description=(
            "p95 response time of {{ $labels.route }} at offsets {{ $labels.offset_range }} "
            f"(job {{{{ $labels.job }}}}) is {{{{ $value | humanizeDuration }}}} over the "
            f"last {w}."
        ),
        panel=Panel("pagination", "Response time by offset range"),
        value_format="humanizeDuration",
        cases=quantile_cases(
            spec,
            threshold,
            target(cfg, **PAGE, offset_range=deep),
            ("job", "route", "offset_range"),
            observed="deep pages",
            # Slow shallow pages are ApiHighLatency's business, not this alert's.
            also_quiet=[Histogram(spec, shallow, bucket_above(spec, threshold))],
            also_quiet_what=", while shallow pages are slow",
        ),
    )


def alerts(cfg: config.Config) -> list[Alert]:
    return [slow_queries(cfg), deep_offset_slow(cfg)]


def group(cfg: config.Config) -> Group:
    return Group("pagination", tuple(alerts(cfg)))
