"""Database performance dashboard: statement time, rate, errors, the pool and caches.

Titled ``<Grafana.title>: database performance`` ("Genonaut: database performance" by default).
"""

from __future__ import annotations

import grafanalib.core as g

from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording as r
from genonaut_monitoring.config import fmt_number, fmt_ratio, fmt_seconds
from genonaut_monitoring.dashboards import common as c
from genonaut_monitoring.exporters import catalogue as m

STATEMENT = ("operation", "table")
LEGEND = "{{operation}} {{table}}"


def _statements() -> str:
    """Rate of every statement that ran: the zero baseline for counters created on first use."""
    return c.rate(m.DB_QUERY_DURATION, suffix="_count")


def _by_kind(cfg: config.Config) -> str:
    return c.recorded(r.db_faults_rate(cfg))


def query_time(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Query time",
        "Statement execution time percentiles over all operations and tables. The dashed "
        "line is the DatabaseSlowQueries threshold "
        f"({fmt_seconds(cfg.thresholds.db_query_p95_seconds)}), which the alert compares per "
        f"operation and table. {c.RATE_WINDOW}",
        [
            c.Query(c.quantile(q, m.DB_QUERY_DURATION), f"p{round(q * 100)}")
            for q in (0.5, 0.95, 0.99)
        ],
        unit="s",
        steps=c.above(cfg.thresholds.db_query_p95_seconds),
    )


def query_time_by_statement(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Query time p95 by operation and table",
        "95th percentile statement time per SQL operation and main table, as "
        "DatabaseSlowQueries reads it: above the dashed line "
        f"({fmt_seconds(cfg.thresholds.db_query_p95_seconds)}) for "
        f"{cfg.durations.database_slow_queries} it fires (the other half of the alert, the "
        f"slow-statement rate, is the Slow queries panel). {c.alert_window(cfg)}",
        [c.Query(c.recorded(r.db_duration_p95(cfg)), LEGEND)],
        unit="s",
        steps=c.above(cfg.thresholds.db_query_p95_seconds),
    )


def query_time_heatmap(cfg: config.Config) -> g.Panel:
    return c.heatmap(
        "Query time distribution",
        "Statements per second in each duration bucket of the query-time histogram. A "
        f"second band appearing higher up means a class of statements got slow. {c.RATE_WINDOW}",
        c.Query(
            c.sum_by(("le",), c.rate(m.DB_QUERY_DURATION, suffix="_bucket")),
            "{{le}}",
            heatmap=True,
        ),
        unit="s",
    )


def query_rate(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Query rate by operation and table",
        f"Statements per second per SQL operation and main table. {c.RATE_WINDOW}",
        [c.Query(c.sum_by(STATEMENT, c.rate(m.DB_QUERY_DURATION, suffix="_count")), LEGEND)],
        unit="ops",
        stack=True,
    )


def slow_queries(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Slow queries",
        "Statements per second slower than the exporter's slow-query threshold "
        f"({fmt_seconds(cfg.thresholds.slow_query_seconds)} by default); each is also logged by "
        "genonaut_monitoring.db with its fingerprint. Above the dashed line "
        f"({fmt_number(cfg.thresholds.slow_queries_per_second)}/s) for "
        f"{cfg.durations.database_slow_queries} DatabaseSlowQueries fires. {c.alert_window(cfg)}",
        [
            c.Query(
                c.or_zero(
                    c.recorded(r.db_slow_queries_rate(cfg)), c.recorded(r.db_queries_rate(cfg))
                ),
                LEGEND,
            )
        ],
        unit="ops",
        steps=c.above(cfg.thresholds.slow_queries_per_second),
    )


def database_errors(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Database errors",
        "Database faults per second by pool and kind: connection (could not connect, or lost "
        "the connection mid-statement), pool_timeout (no connection came free in time) and "
        "statement (the statement raised). Anything above "
        f"{fmt_number(cfg.thresholds.db_errors_per_second)}/s for "
        f"{cfg.durations.database_query_errors} fires DatabaseQueryErrors. {c.alert_window(cfg)}",
        [c.Query(_by_kind(cfg), "{{pool}} {{kind}}")],
        unit="ops",
        steps=c.above(cfg.thresholds.db_errors_per_second),
    )


def query_errors(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Failed statements by operation and table",
        "Statements per second that raised an error, per operation and main table: which "
        "statement fails (connection failures run no statement: see Database errors). "
        f"{c.RATE_WINDOW}",
        [c.Query(c.sum_by(STATEMENT, c.or_zero(c.rate(m.DB_QUERY_ERRORS), _statements())), LEGEND)],
        unit="ops",
        steps=c.above(cfg.thresholds.db_errors_per_second),
    )


def pool_usage(cfg: config.Config) -> g.Panel:
    def gauge(spec: m.MetricSpec) -> str:
        return c.sum_by(("pool",), c.selector(spec))

    return c.timeseries(
        "Connection pool usage",
        "Connections checked out and open beyond the pool size, against the pool's size "
        "and its overflow allowance. Checked out reaching size + max overflow means "
        f"requests queue for a connection. {c.SCRAPE_WINDOW}",
        [
            c.Query(gauge(m.DB_POOL_CHECKED_OUT), "{{pool}} checked out"),
            c.Query(gauge(m.DB_POOL_OVERFLOW), "{{pool}} overflow"),
            c.Query(gauge(m.DB_POOL_SIZE), "{{pool}} size"),
            c.Query(gauge(m.DB_POOL_MAX_OVERFLOW), "{{pool}} max overflow"),
        ],
        unit="short",
    )


def _saturation(cfg: config.Config) -> str:
    """DatabasePoolNearExhaustion's recording rule, for the selected instances."""
    return c.recorded(r.pool_saturation(cfg), c.SCOPE[1])


def pool_saturation(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Pool saturation",
        "Checked-out connections as a share of everything the pool may open (size + max "
        "overflow), per instance, as DatabasePoolNearExhaustion reads it. Above the dashed "
        f"line ({fmt_ratio(cfg.thresholds.pool_saturation_ratio)}) for "
        f"{cfg.durations.database_pool_near_exhaustion} it fires. {c.SCRAPE_WINDOW}",
        [c.Query(_saturation(cfg), "{{pool}} {{instance}}")],
        unit="percentunit",
        steps=c.above(cfg.thresholds.pool_saturation_ratio),
        max_value=1,
    )


def pool_saturation_now(cfg: config.Config) -> g.Panel:
    return c.gauge(
        "Pool saturation now",
        "Current share of the pool's capacity in use; red from "
        f"{fmt_ratio(cfg.thresholds.pool_saturation_ratio)} (DatabasePoolNearExhaustion). "
        f"{c.SCRAPE_WINDOW}",
        c.Query(_saturation(cfg), "{{pool}} {{instance}}"),
        unit="percentunit",
        steps=c.above(cfg.thresholds.pool_saturation_ratio),
    )


def checkout_timeouts(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Pool checkout timeouts",
        "Connection checkouts that gave up waiting for a free connection, per pool and "
        "instance; each one failed a request. Any for "
        f"{cfg.durations.database_pool_checkout_timeouts} fires DatabasePoolCheckoutTimeouts. "
        f"{c.alert_window(cfg)}",
        [
            c.Query(
                c.recorded(r.checkout_timeouts_increase(cfg), c.SCOPE[1]),
                "{{pool}} {{instance}}",
            )
        ],
        unit="short",
    )


def cache_hit_rate(cfg: config.Config) -> g.Panel:
    return c.share_per_cache(
        "Server cache hit rate",
        "Share of server-side cache lookups that hit, per cache. Below the dashed line "
        f"({fmt_ratio(cfg.thresholds.cache_hit_ratio_min)}) most reads go to the database. "
        f"{c.RATE_WINDOW}",
        m.CACHE_REQUESTS,
        'result="hit"',
        cfg.thresholds.cache_hit_ratio_min,
    )


def dashboard(cfg: config.Config) -> g.Dashboard:
    """The database performance dashboard."""
    return g.Dashboard(
        title="database performance",
        description="Statement time, rate, slow queries, errors, the pool and caches.",
        templating=g.Templating(c.api_variables(cfg, m.DB_QUERY_DURATION, suffix="_count")),
        links=[c.dashboard_link(cfg, "postgres", "PostgreSQL: the server's side")],
        panels=c.layout(
            c.row(8, (query_time(cfg), 12), (query_time_by_statement(cfg), 12)),
            c.row(8, (query_time_heatmap(cfg), 12), (query_rate(cfg), 12)),
            c.row(8, slow_queries(cfg), database_errors(cfg), query_errors(cfg)),
            c.row(
                8, (pool_usage(cfg), 10), (pool_saturation(cfg), 9), (pool_saturation_now(cfg), 5)
            ),
            c.row(8, checkout_timeouts(cfg), cache_hit_rate(cfg)),
        ),
    )
