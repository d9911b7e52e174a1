"""PostgreSQL alerts, from the server's side (postgres_exporter): down, full, stuck, deadlocked.

Series come from :mod:`exporters.pgmetrics` (recorded from the exporter), the
job from ``cfg.postgres``; without exporter targets there is no group at all.
Every alert keeps ``server`` (the exporter's name for the PostgreSQL it reads)
and, where the series has one, ``datname``, so a notification names the database.
"""

from __future__ import annotations

import json

from genonaut_monitoring import config
from genonaut_monitoring.alerts.factories import above, absent_alert, down_alert
from genonaut_monitoring.alerts.model import Alert, Group, Panel
from genonaut_monitoring.alerts.promql import series
from genonaut_monitoring.config import fmt_ratio, fmt_seconds
from genonaut_monitoring.exporters import pgmetrics as pg
from genonaut_monitoring.exporters.catalogue import MetricSpec

SERVER = ("job", "instance", "server")
DATABASE = (*SERVER, "datname")


def selector(cfg: config.Config) -> str:
    """``{job="postgres"}``: the exporter's job."""
    return f"{{job={json.dumps(cfg.postgres.job)}}}"


def _max(spec: MetricSpec, cfg: config.Config, by: tuple[str, ...] = DATABASE) -> str:
    return f"max by ({', '.join(by)}) ({series(spec)}{selector(cfg)})"


def connections_share(cfg: config.Config) -> str:
    """Client sessions as a share of max_connections, per server (alert and dashboard)."""
    used = f"sum by ({', '.join(SERVER)}) ({series(pg.PG_CONNECTIONS)}{selector(cfg)})"
    limit = _max(pg.PG_MAX_CONNECTIONS, cfg, SERVER)
    return f"{used}\n  / on ({', '.join(SERVER)})\n{limit}"


def postgres_down(cfg: config.Config) -> Alert:
    return Alert(
        name="PostgresDown",
        # pg_up is the exporter's own verdict: it answered the scrape but could not connect.
        expr=f"{series(pg.PG_UP)}{selector(cfg)} == 0",
        for_=cfg.durations.postgres_down,
        severity="critical",
        summary="The PostgreSQL exporter cannot connect to PostgreSQL.",
        description=(
            "postgres_exporter {{ $labels.instance }} has failed to connect for "
            f"{cfg.durations.postgres_down} (pg_up is {{{{ $value }}}}): the server is down, "
            "refuses the monitoring role, or is unreachable from the exporter."
        ),
        panel=Panel("postgres", "PostgreSQL up"),
    )


def alerts(cfg: config.Config) -> list[Alert]:
    t, d, w = cfg.thresholds, cfg.durations, cfg.intervals.rate_window
    deadlocks = series(pg.PG_DEADLOCKS)
    return [
        postgres_down(cfg),
        down_alert(
            "PostgresExporterDown",
            "PostgreSQL exporter",
            selector(cfg),
            for_=d.postgres_exporter_down,
            panel=Panel("postgres", "PostgreSQL up"),
        ),
        absent_alert(
            "PostgresExporterMissing",
            "PostgreSQL exporter",
            selector(cfg),
            for_=d.postgres_exporter_down,
            panel=Panel("postgres", "PostgreSQL up"),
        ),
        above(
            "PostgresTooManyConnections",
            connections_share(cfg),
            t.postgres_connections_ratio,
            for_=d.postgres_too_many_connections,
            severity="warning",
            summary=(
                f"PostgreSQL sessions hold more than "
                f"{fmt_ratio(t.postgres_connections_ratio)} of max_connections."
            ),
            description=(
                "{{ $labels.server }} has {{ $value | humanizePercentage }} of its "
                "max_connections in use; new connections fail once they are all taken."
            ),
            panel=Panel("postgres", "Connections used"),
            value_format="humanizePercentage",
        ),
        Alert(
            name="PostgresDeadlocks",
            # Any deadlock means PostgreSQL aborted a transaction that the app saw fail.
            expr=(
                f"sum by ({', '.join(DATABASE)}) (increase({deadlocks}{selector(cfg)}[{w}]))\n> 0"
            ),
            for_=d.postgres_deadlocks,
            severity="warning",
            summary="PostgreSQL aborted transactions caught in a deadlock.",
            description=(
                "{{ $value | humanize }} deadlocks in database {{ $labels.datname }} on "
                f"{{{{ $labels.server }}}} in the last {w}."
            ),
            panel=Panel("postgres", "Deadlocks"),
        ),
        above(
            "PostgresLongTransaction",
            _max(pg.PG_OLDEST_TRANSACTION, cfg),
            t.postgres_transaction_age_seconds,
            for_=d.postgres_long_transaction,
            severity="warning",
            summary=(
                "A PostgreSQL transaction has been open longer than "
                f"{fmt_seconds(t.postgres_transaction_age_seconds)}."
            ),
            description=(
                "The oldest client transaction in database {{ $labels.datname }} on "
                "{{ $labels.server }} has been open for {{ $value | humanizeDuration }}; "
                "it holds back vacuum and may hold locks."
            ),
            panel=Panel("postgres", "Longest transaction"),
            value_format="humanizeDuration",
        ),
        above(
            "PostgresIdleInTransaction",
            _max(pg.PG_IDLE_IN_TRANSACTION_MAX, cfg),
            t.postgres_idle_in_transaction_seconds,
            for_=d.postgres_idle_in_transaction,
            severity="warning",
            summary=(
                "A PostgreSQL session has sat idle inside a transaction for longer than "
                f"{fmt_seconds(t.postgres_idle_in_transaction_seconds)}."
            ),
            description=(
                "A session of database {{ $labels.datname }} on {{ $labels.server }} has been "
                "idle in transaction for {{ $value | humanizeDuration }}: its locks and "
                "snapshot stay held until it commits or rolls back."
            ),
            panel=Panel("postgres", "Longest idle in transaction"),
            value_format="humanizeDuration",
        ),
        above(
            "PostgresLockWaits",
            _max(pg.PG_LOCK_WAITS_MAX, cfg),
            t.postgres_lock_wait_seconds,
            for_=d.postgres_lock_waits,
            severity="warning",
            summary=(
                "A PostgreSQL session has waited for a lock for longer than "
                f"{fmt_seconds(t.postgres_lock_wait_seconds)}."
            ),
            description=(
                "A session of database {{ $labels.datname }} on {{ $labels.server }} has "
                "waited {{ $value | humanizeDuration }} for a lock another session holds."
            ),
            panel=Panel("postgres", "Lock waits"),
            value_format="humanizeDuration",
        ),
    ]


def group(cfg: config.Config) -> Group:
    return Group("postgres", tuple(alerts(cfg)))
