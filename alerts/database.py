"""Database alerts: slow or failing statements, a pool running out of connections."""

from __future__ import annotations

from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording
from genonaut_monitoring.alerts.factories import above
from genonaut_monitoring.alerts.model import Alert, Group, Panel
from genonaut_monitoring.config import fmt_number, fmt_ratio, fmt_seconds

# DatabaseSlowQueries' ``signal`` label says which of its two conditions holds.
SIGNAL_P95 = "p95 statement time in seconds"
SIGNAL_SLOW_RATE = "slow statements per second"


def slow_queries(cfg: config.Config) -> Alert:
    t, w = cfg.thresholds, cfg.intervals.rate_window
    return Alert(
        name="DatabaseSlowQueries",
        # Two symptoms of one problem; label_replace tags each so the description can say
        # which one holds (and both may fire, as two alerts).
        expr=(
            f"label_replace(\n  {recording.db_duration_p95(cfg)} > {t.db_query_p95_seconds!r},\n"
            f'  "signal", "{SIGNAL_P95}", "", ""\n)\nor\n'
            f"label_replace(\n  {recording.db_slow_queries_rate(cfg)}"
            f" > {t.slow_queries_per_second!r},\n"
            f'  "signal", "{SIGNAL_SLOW_RATE}", "", ""\n)'
        ),
        for_=cfg.durations.database_slow_queries,
        severity="warning",
        summary=(
            f"Database statements are slow: p95 above {fmt_seconds(t.db_query_p95_seconds)} or "
            f"more than {fmt_number(t.slow_queries_per_second)} slow statements per second."
        ),
        description=(
            "{{ $labels.operation }} statements on {{ $labels.table }} (job {{ $labels.job }}): "
            f"{{{{ $labels.signal }}}} is {{{{ $value | humanize }}}} over the last {w}."
        ),
        panel=Panel("database", "Query time p95 by operation and table"),
    )


def alerts(cfg: config.Config) -> list[Alert]:
    t, d, w = cfg.thresholds, cfg.durations, cfg.intervals.rate_window
    return [
        slow_queries(cfg),
        above(
            "DatabaseQueryErrors",
            # Every fault: a database that cannot be reached runs no statement to fail.
            recording.db_faults_rate(cfg),
            t.db_errors_per_second,
            for_=d.database_query_errors,
            # Warning: the requests they break already page as ApiHighErrorRate.
            severity="warning",
            summary=(
                "Database work fails (connections, pool checkouts or statements) at more than "
                f"{fmt_number(t.db_errors_per_second)} errors per second."
            ),
            description=(
                "Pool {{ $labels.pool }} (job {{ $labels.job }}) has {{ $labels.kind }} errors "
                f"at {{{{ $value | humanize }}}} per second over the last {w}."
            ),
            panel=Panel("database", "Database errors"),
        ),
        above(
            "DatabasePoolNearExhaustion",
            recording.pool_saturation(cfg),
            t.pool_saturation_ratio,
            for_=d.database_pool_near_exhaustion,
            severity="warning",
            summary=(
                f"A connection pool has more than {fmt_ratio(t.pool_saturation_ratio)} "
                "of its connections checked out."
            ),
            description=(
                "Pool {{ $labels.pool }} on {{ $labels.instance }} has "
                "{{ $value | humanizePercentage }} of its connections (size plus max overflow) "
                "checked out."
            ),
            panel=Panel("database", "Pool saturation"),
            value_format="humanizePercentage",
        ),
        Alert(
            name="DatabasePoolCheckoutTimeouts",
            # Any timeout means a request waited the whole pool timeout and then failed.
            expr=f"{recording.checkout_timeouts_increase(cfg)}\n> 0",
            for_=d.database_pool_checkout_timeouts,
            severity="critical",
            summary="Requests time out waiting for a free database connection.",
            description=(
                "{{ $value | humanize }} checkouts from pool {{ $labels.pool }} on "
                f"{{{{ $labels.instance }}}} timed out in the last {w}."
            ),
            panel=Panel("database", "Pool checkout timeouts"),
        ),
    ]


def group(cfg: config.Config) -> Group:
    return Group("database", tuple(alerts(cfg)))
