"""Database alerts: slow or failing statements, a pool running out of connections."""

from __future__ import annotations

import math

from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording
from genonaut_monitoring.alerts.cases import (
    Cases,
    Counter,
    Expect,
    Gauge,
    Histogram,
    Scenario,
    binary_above,
    binary_below,
    bucket_above,
    bucket_below,
    quantile_in,
    target,
)
from genonaut_monitoring.alerts.factories import EARLIER, Told, above, increase_cases
from genonaut_monitoring.alerts.model import Alert, Group, Panel
from genonaut_monitoring.config import fmt_number, fmt_ratio, fmt_seconds
from genonaut_monitoring.exporters import catalogue as c

# DatabaseSlowQueries' ``signal`` label says which of its two conditions holds.
SIGNAL_P95 = "p95 statement time in seconds"
SIGNAL_SLOW_RATE = "slow statements per second"
# Statements of the cases.
SELECT = {"operation": "select", "table": "content_items"}
INSERT = {"operation": "insert", "table": "tags"}


def slow_queries(cfg: config.Config) -> Alert:
    t, w = cfg.thresholds, cfg.intervals.rate_window
    spec, job = c.DB_QUERY_DURATION, {"job": cfg.jobs[0]}
    hot, cold = (
        bucket_above(spec, t.db_query_p95_seconds),
        bucket_below(spec, t.db_query_p95_seconds),
    )
    many, few = binary_above(t.slow_queries_per_second), binary_below(t.slow_queries_per_second)
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
        cases=Cases(
            fires=Scenario(
                "select statements are slow and insert statements are often slow",
                [
                    Histogram(spec, target(cfg, **SELECT), hot),
                    Counter(c.DB_SLOW_QUERIES.name, target(cfg, **INSERT), many),
                ],
                [
                    Expect(
                        {**job, **SELECT, "signal": SIGNAL_P95},
                        quantile_in(hot, recording.QUANTILE),
                    ),
                    Expect({**job, **INSERT, "signal": SIGNAL_SLOW_RATE}, many),
                ],
            ),
            quiet=[
                Scenario(
                    "statements are fast and rarely slow",
                    [
                        Histogram(spec, target(cfg, **SELECT), cold),
                        Counter(c.DB_SLOW_QUERIES.name, target(cfg, **INSERT), few),
                    ],
                )
            ],
        ),
    )


def query_errors(cfg: config.Config) -> Alert:
    t, w = cfg.thresholds, cfg.intervals.rate_window
    hot, cold = binary_above(t.db_errors_per_second), binary_below(t.db_errors_per_second)
    pool = "postgresql:genonaut"
    # The database is gone: connections fail, and no statement runs to fail.
    down = {"pool": pool, "kind": "connection"}
    statement = {"pool": pool, "kind": "statement"}
    return above(
        "DatabaseQueryErrors",
        # Every fault: a database that cannot be reached runs no statement to fail.
        recording.db_faults_rate(cfg),
        t.db_errors_per_second,
        for_=cfg.durations.database_query_errors,
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
        cases=Cases(
            fires=Scenario(
                f"{fmt_number(hot)} connections fail per second and no statement fails",
                [
                    Counter(c.DB_ERRORS.name, target(cfg, **down), hot),
                    Counter(c.DB_ERRORS.name, target(cfg, **statement), 0),
                ],
                [Expect({"job": cfg.jobs[0], **down}, hot)],
            ),
            quiet=[
                Scenario(
                    f"{fmt_number(cold)} database operations fail per second",
                    [
                        Counter(c.DB_ERRORS.name, target(cfg, **down), cold),
                        Counter(c.DB_ERRORS.name, target(cfg, **statement), cold),
                    ],
                )
            ],
        ),
    )


def _pool(
    cfg: config.Config, checked_out: float, pool: str = "default", size: float = 10
) -> list[Gauge]:
    labels = target(cfg, pool=pool)
    return [
        Gauge(c.DB_POOL_SIZE.name, labels, size),
        Gauge(c.DB_POOL_MAX_OVERFLOW.name, labels, size),
        Gauge(c.DB_POOL_CHECKED_OUT.name, labels, checked_out),
    ]


def pool_near_exhaustion(cfg: config.Config) -> Alert:
    t = cfg.thresholds
    cold = math.floor(20 * t.pool_saturation_ratio) - 1
    return above(
        "DatabasePoolNearExhaustion",
        recording.pool_saturation(cfg),
        t.pool_saturation_ratio,
        for_=cfg.durations.database_pool_near_exhaustion,
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
        cases=Cases(
            fires=Scenario(
                "all 20 connections are checked out",
                _pool(cfg, 20),
                [Expect(target(cfg, pool="default"), 1.0)],
            ),
            quiet=[
                Scenario(
                    f"{cold} of 20 connections are checked out and an unlimited pool is in use",
                    # A pool reporting size 0 and overflow 0 must not divide by zero into +Inf.
                    _pool(cfg, cold) + _pool(cfg, 3, pool="unlimited", size=0),
                )
            ],
        ),
    )


def pool_checkout_timeouts(cfg: config.Config) -> Alert:
    w, for_ = cfg.intervals.rate_window, cfg.durations.database_pool_checkout_timeouts
    return above(
        "DatabasePoolCheckoutTimeouts",
        # Any timeout means a request waited the whole pool timeout and then failed.
        recording.checkout_timeouts_increase(cfg),
        0,
        for_=for_,
        severity="critical",
        summary="Requests time out waiting for a free database connection.",
        description=(
            "{{ $value | humanize }} checkouts from pool {{ $labels.pool }} on "
            f"{{{{ $labels.instance }}}} timed out in the last {w}."
        ),
        panel=Panel("database", "Pool checkout timeouts"),
        cases=increase_cases(
            cfg,
            c.DB_POOL_CHECKOUT_TIMEOUTS,
            target(cfg, pool="default"),
            [],
            ("job", "instance", "pool"),
            for_,
            Told(
                fires="one checkout times out every evaluation interval",
                none="no checkout times out",
                flat=f"{EARLIER} checkouts timed out before the window and none since",
                restart=f"the app restarts after {EARLIER} checkouts timed out, and none since",
            ),
        ),
    )


def alerts(cfg: config.Config) -> list[Alert]:
    return [
        slow_queries(cfg),
        query_errors(cfg),
        pool_near_exhaustion(cfg),
        pool_checkout_timeouts(cfg),
    ]


def group(cfg: config.Config) -> Group:
    return Group("database", tuple(alerts(cfg)))
