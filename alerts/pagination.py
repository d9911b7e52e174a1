"""Pagination alerts: page queries are slow, deep offsets are slow."""

from __future__ import annotations

from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording
from genonaut_monitoring.alerts.factories import above
from genonaut_monitoring.alerts.model import Alert, Group, Panel
from genonaut_monitoring.alerts.promql import deep_offset_matcher
from genonaut_monitoring.config import fmt_seconds


def alerts(cfg: config.Config) -> list[Alert]:
    t, d, w = cfg.thresholds, cfg.durations, cfg.intervals.rate_window
    return [
        above(
            "PaginationSlowQueries",
            recording.pagination_query_p95(cfg),
            t.pagination_query_p95_seconds,
            for_=d.pagination_slow_queries,
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
        ),
        above(
            "PaginationDeepOffsetSlow",
            # Only offset ranges that start at deep_offset_min or beyond: shallow pages are
            # covered by ApiHighLatency, and deep ones are what cursors fix.
            f"{recording.pagination_offset_p95(cfg)}{{{deep_offset_matcher(cfg)}}}",
            t.deep_offset_p95_seconds,
            for_=d.pagination_deep_offset_slow,
            severity="warning",
            summary=(
                f"Pages at offsets of {t.deep_offset_min:,} or more take longer than "
                f"{fmt_seconds(t.deep_offset_p95_seconds)} at p95."
            ),
            description=(
                "p95 response time of {{ $labels.route }} at offsets {{ $labels.offset_range }} "
                f"(job {{{{ $labels.job }}}}) is {{{{ $value | humanizeDuration }}}} over the "
                f"last {w}."
            ),
            panel=Panel("pagination", "Response time by offset range"),
            value_format="humanizeDuration",
        ),
    ]


def group(cfg: config.Config) -> Group:
    return Group("pagination", tuple(alerts(cfg)))
