"""PostgreSQL server dashboard: the database seen from its side, through postgres_exporter.

The database dashboard shows statements as the application timed them; this
one shows what the server knows: sessions against max_connections, locks and
lock waits, deadlocks, transactions, the buffer cache, stuck sessions, sizes
and, with pg_stat_statements loaded, the statements that cost the most time.

Titled ``<Grafana.title>: PostgreSQL server`` ("Genonaut: PostgreSQL server" by default).
"""

from __future__ import annotations

import json

import grafanalib.core as g

from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording as r
from genonaut_monitoring.config import fmt_ratio, fmt_seconds
from genonaut_monitoring.dashboards import common as c
from genonaut_monitoring.exporters import pgmetrics as pg
from genonaut_monitoring.exporters.catalogue import MetricSpec

TITLE = "PostgreSQL server"
# Rows of the top statements table: the most expensive of those the exporter exports.
SHOWN_STATEMENTS = 10
DATABASE = 'datname=~"$datname"'
# One PostgreSQL per exporter target; ``server`` is the exporter's name for it.
SERVER = ("instance", "server")


def _in_databases(spec: MetricSpec) -> str:
    return c.selector(spec, DATABASE)


def _per_database(spec: MetricSpec) -> str:
    """Gauge ``spec`` summed per selected database."""
    return c.sum_by(("datname",), _in_databases(spec))


def _by_database(spec: MetricSpec) -> str:
    """The rate of counter ``spec`` summed per selected database."""
    return c.sum_by(("datname",), c.rate(spec, DATABASE))


def up(cfg: config.Config) -> g.Panel:
    return c.stat(
        "PostgreSQL up",
        "1 while the exporter can connect to PostgreSQL (pg_up). 0 for "
        f"{cfg.durations.postgres_down} fires PostgresDown; an exporter Prometheus cannot "
        f"scrape shows No data and fires PostgresExporterDown. {c.SCRAPE_WINDOW}",
        c.Query(f"min({c.selector(pg.PG_UP)})", "up"),
        unit="short",
        steps=c.below(1),
    )


def connections_by_state(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Connections by state",
        "Client sessions per state (active, idle, idle in transaction, ...) of the selected "
        f"databases, against the server's max_connections. {c.SCRAPE_WINDOW}",
        [
            c.Query(c.sum_by(("state",), _in_databases(pg.PG_CONNECTIONS)), "{{state}}"),
            c.Query(f"max({c.selector(pg.PG_MAX_CONNECTIONS)})", "max_connections"),
        ],
        unit="short",
    )


def _connections_share() -> str:
    used = c.sum_by(SERVER, c.selector(pg.PG_CONNECTIONS))
    limit = f"max by ({', '.join(SERVER)}) ({c.selector(pg.PG_MAX_CONNECTIONS)})"
    return f"{used}\n  / on ({', '.join(SERVER)})\n{limit}"


def connections_used(cfg: config.Config) -> g.Panel:
    t = cfg.thresholds.postgres_connections_ratio
    return c.timeseries(
        "Connections used",
        "Client sessions of every database as a share of max_connections (3 of them are "
        f"reserved for superusers). Above the dashed line ({fmt_ratio(t)}) for "
        f"{cfg.durations.postgres_too_many_connections} fires PostgresTooManyConnections. "
        f"{c.SCRAPE_WINDOW}",
        [c.Query(_connections_share(), "{{server}}")],
        unit="percentunit",
        steps=c.above(t),
        max_value=1,
    )


def lock_waits(cfg: config.Config) -> g.Panel:
    t = cfg.thresholds.postgres_lock_wait_seconds
    return c.timeseries(
        "Lock waits",
        "Longest current wait for a lock per database, and the sessions waiting. Above the "
        f"dashed line ({fmt_seconds(t)}) for {cfg.durations.postgres_lock_waits} fires "
        "PostgresLockWaits; the runbook shows how to find the blocking session and its route. "
        f"{c.SCRAPE_WINDOW}",
        [
            c.Query(_per_database(pg.PG_LOCK_WAITS_MAX), "{{datname}} longest"),
            c.Query(_per_database(pg.PG_LOCK_WAITS), "{{datname}} sessions"),
        ],
        unit="s",
        steps=c.above(t),
    )


def locks_by_mode(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Locks by mode",
        "Locks held or awaited in the selected databases, per lock mode. A growing "
        "AccessExclusiveLock or ExclusiveLock count means DDL or explicit locking. "
        f"{c.SCRAPE_WINDOW}",
        [c.Query(c.sum_by(("mode",), _in_databases(pg.PG_LOCKS)), "{{mode}}")],
        unit="short",
        stack=True,
    )


def deadlocks(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Deadlocks",
        "Deadlocks per database, as PostgresDeadlocks counts them; each aborted one of its "
        f"transactions with an error. Any for {cfg.durations.postgres_deadlocks} fires "
        f"PostgresDeadlocks. {c.alert_window(cfg)}",
        [c.Query(c.recorded(r.pg_deadlocks_increase(cfg), c.SCOPE[1], DATABASE), "{{datname}}")],
        unit="short",
    )


def transactions(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Commits and rollbacks",
        "Transactions per second per database, committed and rolled back. Rollbacks "
        f"include those of failed statements and of deadlock victims. {c.RATE_WINDOW}",
        [
            c.Query(_by_database(pg.PG_COMMITS), "{{datname}} commits"),
            c.Query(_by_database(pg.PG_ROLLBACKS), "{{datname}} rollbacks"),
        ],
        unit="ops",
    )


def buffer_hit_ratio(cfg: config.Config) -> g.Panel:
    hits = _by_database(pg.PG_BLOCKS_HIT)
    reads = _by_database(pg.PG_BLOCKS_READ)
    low = cfg.thresholds.postgres_buffer_hit_ratio_min
    return c.timeseries(
        "Buffer cache hit ratio",
        "Share of block reads served from shared buffers rather than from disk (or the "
        f"OS cache), per database. Below the dashed line ({fmt_ratio(low)}) the working set "
        f"no longer fits in shared_buffers. {c.RATE_WINDOW}",
        [c.Query(f"{hits}\n  / ({hits} + {reads})", "{{datname}}")],
        unit="percentunit",
        steps=c.below(low),
        max_value=1,
    )


def longest_transaction(cfg: config.Config) -> g.Panel:
    t = cfg.thresholds.postgres_transaction_age_seconds
    return c.timeseries(
        "Longest transaction",
        "Age of the oldest open transaction of a client session per database (autovacuum "
        f"left out). Above the dashed line ({fmt_seconds(t)}) for "
        f"{cfg.durations.postgres_long_transaction} fires PostgresLongTransaction. "
        f"{c.SCRAPE_WINDOW}",
        [c.Query(_per_database(pg.PG_OLDEST_TRANSACTION), "{{datname}}")],
        unit="s",
        steps=c.above(t),
    )


def longest_idle_in_transaction(cfg: config.Config) -> g.Panel:
    t = cfg.thresholds.postgres_idle_in_transaction_seconds
    return c.timeseries(
        "Longest idle in transaction",
        "Longest time a session has sat idle inside an open transaction, per database: "
        "an application that forgot to commit. Above the dashed line "
        f"({fmt_seconds(t)}) for {cfg.durations.postgres_idle_in_transaction} fires "
        f"PostgresIdleInTransaction. {c.SCRAPE_WINDOW}",
        [c.Query(_per_database(pg.PG_IDLE_IN_TRANSACTION_MAX), "{{datname}}")],
        unit="s",
        steps=c.above(t),
    )


def database_size(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Database size",
        f"Disk space used by each selected database. {c.SCRAPE_WINDOW}",
        [c.Query(_per_database(pg.PG_DATABASE_SIZE), "{{datname}}")],
        unit="bytes",
    )


def top_statements(cfg: config.Config) -> g.Panel:
    seconds = c.increase(pg.PG_STATEMENT_SECONDS, DATABASE)
    shown = min(SHOWN_STATEMENTS, cfg.postgres.top_statements)
    return c.table(
        "Top statements by total time",
        f"The {shown} normalised statements that spent the most time executing "
        "over the dashboard's time range, of the "
        f"{cfg.postgres.top_statements} the exporter exports (the top by total time). Needs "
        "pg_stat_statements loaded (shared_preload_libraries) and created; empty otherwise. "
        f"{c.RANGE_WINDOW}",
        c.Query(
            f"topk({shown}, {c.sum_by(('datname', 'queryid', 'query'), seconds)})",
            "{{query}}",
            instant=True,
            table=True,
        ),
        unit="s",
        value_name="time executing",
    )


def variables(cfg: config.Config) -> list[c.Variable]:
    """Datasource, the exporter's job and instances, and the databases to show."""
    return [
        c.datasource_variable(cfg.grafana.prometheus_uid, cfg.grafana.prometheus_name),
        c.label_variable(
            "job",
            pg.PG_UP,
            "Prometheus job of postgres_exporter.",
            f"job={json.dumps(cfg.postgres.job)}",
            current=cfg.postgres.job,
        ),
        c.label_variable(
            "instance",
            pg.PG_UP,
            "Exporters (host:port) to include.",
            'job="$job"',
            include_all=True,
        ),
        c.label_variable(
            "datname",
            pg.PG_DATABASE_SIZE,
            "Databases to include.",
            'job="$job"',
            'instance=~"$instance"',
            include_all=True,
        ),
    ]


def dashboard(cfg: config.Config) -> g.Dashboard:
    """The PostgreSQL server dashboard."""
    return g.Dashboard(
        title=TITLE,
        description="PostgreSQL from the server's side: connections, locks, deadlocks, "
        "transactions, cache, stuck sessions, sizes and top statements (postgres_exporter).",
        templating=g.Templating(variables(cfg)),
        links=[c.dashboard_link(cfg, "database", "Database: the application's side")],
        panels=c.layout(
            c.row(8, (up(cfg), 4), (connections_by_state(cfg), 10), (connections_used(cfg), 10)),
            c.row(8, lock_waits(cfg), locks_by_mode(cfg)),
            c.row(8, deadlocks(cfg), transactions(cfg), buffer_hit_ratio(cfg)),
            c.row(
                8, longest_transaction(cfg), longest_idle_in_transaction(cfg), database_size(cfg)
            ),
            c.row(10, top_statements(cfg)),
        ),
    )
