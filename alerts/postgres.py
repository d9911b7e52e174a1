"""PostgreSQL alerts, from the server's side (postgres_exporter): down, full, stuck, deadlocked.

Series come from :mod:`exporters.pgmetrics` (recorded from the exporter), the
job from ``cfg.postgres``; without exporter targets there is no group at all.
Every alert keeps ``server`` (the exporter's name for the PostgreSQL it reads)
and, where the series has one, ``datname``, so a notification names the database.
The cases label their series as the recorded exporter does (``server``,
``datname``, and ``state`` or ``datid`` where it has them; the build checks
them) and put a second, quiet database beside the one at fault, so an alert
must name the right one.
"""

from __future__ import annotations

import json
import math

from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording
from genonaut_monitoring.alerts.cases import Cases, Expect, Gauge, Scenario, target
from genonaut_monitoring.alerts.factories import (
    EARLIER,
    Told,
    above,
    absent_alert,
    down_alert,
    increase_cases,
    up_cases,
)
from genonaut_monitoring.alerts.model import Alert, Group, Panel
from genonaut_monitoring.alerts.promql import series
from genonaut_monitoring.config import fmt_ratio, fmt_seconds
from genonaut_monitoring.exporters import catalogue as c
from genonaut_monitoring.exporters import pgmetrics as pg
from genonaut_monitoring.exporters.catalogue import MetricSpec

SERVER = ("job", "instance", "server")
DATABASE = (*SERVER, "datname")
# Labels of the cases' series: the server as the exporter names it (host:port of its
# connection), the database at fault and one that stays quiet beside it.
CASE_SERVER = "127.0.0.1:5432"
CASE_DATABASE, CASE_OTHER_DATABASE = "genonaut", "template1"
# pg_stat_database's series also carry the database's oid.
CASE_DATIDS = {CASE_DATABASE: "16384", CASE_OTHER_DATABASE: "1"}
# PostgreSQL's default max_connections, for the connection cases.
CASE_MAX_CONNECTIONS = 100


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


def exporter(cfg: config.Config, **labels: str) -> dict[str, str]:
    """The target labels of the first exporter, plus ``labels``."""
    return {"job": cfg.postgres.job, "instance": cfg.postgres.targets[0], **labels}


def server(cfg: config.Config) -> dict[str, str]:
    """Labels of a per-server series (``server`` is the PostgreSQL the exporter reads)."""
    return exporter(cfg, server=CASE_SERVER)


def database(cfg: config.Config, datname: str = CASE_DATABASE) -> dict[str, str]:
    """Labels of a per-database series (the ``DATABASE`` labels an alert keeps)."""
    return {**server(cfg), "datname": datname}


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
        cases=up_cases(
            pg.PG_UP.name,
            exporter(cfg),
            down="the exporter cannot connect",
            up="the exporter is connected",
        ),
    )


def exporter_down(cfg: config.Config) -> Alert:
    return down_alert(
        "PostgresExporterDown",
        "PostgreSQL exporter",
        selector(cfg),
        for_=cfg.durations.postgres_exporter_down,
        panel=Panel("postgres", "PostgreSQL up"),
        cases=up_cases(
            c.UP.name,
            exporter(cfg),
            down="every scrape of the exporter fails",
            up="every scrape of the exporter succeeds",
        ),
    )


def exporter_missing(cfg: config.Config) -> Alert:
    return absent_alert(
        "PostgresExporterMissing",
        "PostgreSQL exporter",
        (cfg.postgres.job,),
        for_=cfg.durations.postgres_exporter_down,
        panel=Panel("postgres", "PostgreSQL up"),
        cases=Cases(
            fires=Scenario(
                "only the API is scraped",
                [Gauge(c.UP.name, target(cfg), 1)],
                [Expect({"job": cfg.postgres.job}, 1)],
            ),
            quiet=[Scenario("the exporter is scraped", [Gauge(c.UP.name, exporter(cfg), 1)])],
        ),
    )


def too_many_connections(cfg: config.Config) -> Alert:
    share, limit = cfg.thresholds.postgres_connections_ratio, CASE_MAX_CONNECTIONS
    hot = min(limit, math.ceil(limit * (1 + share) / 2))
    cold = math.floor(limit * share / 2)

    def sessions(total: int) -> list[Gauge]:
        # Spread over states and databases: the alert adds them all up per server.
        return [
            Gauge(pg.PG_CONNECTIONS.name, {**database(cfg), "state": "active"}, total // 2),
            Gauge(
                pg.PG_CONNECTIONS.name,
                {**database(cfg, CASE_OTHER_DATABASE), "state": "idle"},
                total - total // 2,
            ),
            Gauge(pg.PG_MAX_CONNECTIONS.name, server(cfg), limit),
        ]

    return above(
        "PostgresTooManyConnections",
        connections_share(cfg),
        share,
        for_=cfg.durations.postgres_too_many_connections,
        severity="warning",
        summary=f"PostgreSQL sessions hold more than {fmt_ratio(share)} of max_connections.",
        description=(
            "{{ $labels.server }} has {{ $value | humanizePercentage }} of its "
            "max_connections in use; new connections fail once they are all taken."
        ),
        panel=Panel("postgres", "Connections used"),
        value_format="humanizePercentage",
        cases=Cases(
            fires=Scenario(
                f"{hot} of {limit} connections are in use",
                sessions(hot),
                [Expect(server(cfg), hot / limit)],
            ),
            quiet=[Scenario(f"{cold} of {limit} connections are in use", sessions(cold))],
        ),
    )


def deadlocks(cfg: config.Config) -> Alert:
    w, for_ = cfg.intervals.rate_window, cfg.durations.postgres_deadlocks

    def stat_database(datname: str) -> dict[str, str]:
        return {**database(cfg, datname), "datid": CASE_DATIDS[datname]}

    return above(
        "PostgresDeadlocks",
        # Any deadlock means PostgreSQL aborted a transaction that the app saw fail.
        recording.pg_deadlocks_increase(cfg),
        0,
        for_=for_,
        severity="warning",
        summary="PostgreSQL aborted transactions caught in a deadlock.",
        description=(
            "{{ $value | humanize }} deadlocks in database {{ $labels.datname }} on "
            f"{{{{ $labels.server }}}} in the last {w}."
        ),
        panel=Panel("postgres", "Deadlocks"),
        cases=increase_cases(
            cfg,
            pg.PG_DEADLOCKS,
            stat_database(CASE_DATABASE),
            [stat_database(CASE_OTHER_DATABASE)],
            # The sum by database drops datid, which the alert has no use for.
            tuple(database(cfg)),
            for_,
            Told(
                fires="one deadlock happens every evaluation interval",
                none="no deadlock happens",
                flat=f"{EARLIER} deadlocks happened before the window and none since",
                restart=f"PostgreSQL restarts after {EARLIER} deadlocks, and has none since",
            ),
        ),
    )


def _age_cases(cfg: config.Config, spec: MetricSpec, limit: float, what: str) -> Cases:
    """An age gauge per database at twice ``limit`` (fires) or half of it (silent)."""
    hot, cold = 2 * limit, limit / 2
    other = Gauge(spec.name, database(cfg, CASE_OTHER_DATABASE), 0)
    return Cases(
        fires=Scenario(
            f"{what} for {fmt_seconds(hot)}",
            [Gauge(spec.name, database(cfg), hot), other],
            [Expect(database(cfg), hot)],
        ),
        quiet=[
            Scenario(
                f"{what} for {fmt_seconds(cold)}", [Gauge(spec.name, database(cfg), cold), other]
            )
        ],
    )


def long_transaction(cfg: config.Config) -> Alert:
    limit = cfg.thresholds.postgres_transaction_age_seconds
    return above(
        "PostgresLongTransaction",
        _max(pg.PG_OLDEST_TRANSACTION, cfg),
        limit,
        for_=cfg.durations.postgres_long_transaction,
        severity="warning",
        summary=f"A PostgreSQL transaction has been open longer than {fmt_seconds(limit)}.",
        description=(
            "The oldest client transaction in database {{ $labels.datname }} on "
            "{{ $labels.server }} has been open for {{ $value | humanizeDuration }}; "
            "it holds back vacuum and may hold locks."
        ),
        panel=Panel("postgres", "Longest transaction"),
        value_format="humanizeDuration",
        cases=_age_cases(cfg, pg.PG_OLDEST_TRANSACTION, limit, "a transaction has been open"),
    )


def idle_in_transaction(cfg: config.Config) -> Alert:
    limit = cfg.thresholds.postgres_idle_in_transaction_seconds
    return above(
        "PostgresIdleInTransaction",
        _max(pg.PG_IDLE_IN_TRANSACTION_MAX, cfg),
        limit,
        for_=cfg.durations.postgres_idle_in_transaction,
        severity="warning",
        summary=(
            "A PostgreSQL session has sat idle inside a transaction for longer than "
            f"{fmt_seconds(limit)}."
        ),
        description=(
            "A session of database {{ $labels.datname }} on {{ $labels.server }} has been "
            "idle in transaction for {{ $value | humanizeDuration }}: its locks and "
            "snapshot stay held until it commits or rolls back."
        ),
        panel=Panel("postgres", "Longest idle in transaction"),
        value_format="humanizeDuration",
        cases=_age_cases(
            cfg, pg.PG_IDLE_IN_TRANSACTION_MAX, limit, "a session has been idle in transaction"
        ),
    )


def lock_waits(cfg: config.Config) -> Alert:
    limit = cfg.thresholds.postgres_lock_wait_seconds
    return above(
        "PostgresLockWaits",
        _max(pg.PG_LOCK_WAITS_MAX, cfg),
        limit,
        for_=cfg.durations.postgres_lock_waits,
        severity="warning",
        summary=(
            f"A PostgreSQL session has waited for a lock for longer than {fmt_seconds(limit)}."
        ),
        description=(
            "A session of database {{ $labels.datname }} on {{ $labels.server }} has "
            "waited {{ $value | humanizeDuration }} for a lock another session holds."
        ),
        panel=Panel("postgres", "Lock waits"),
        value_format="humanizeDuration",
        cases=_age_cases(cfg, pg.PG_LOCK_WAITS_MAX, limit, "a session has waited for a lock"),
    )


def alerts(cfg: config.Config) -> list[Alert]:
    return [
        postgres_down(cfg),
        exporter_down(cfg),
        exporter_missing(cfg),
        too_many_connections(cfg),
        deadlocks(cfg),
        long_transaction(cfg),
        idle_in_transaction(cfg),
        lock_waits(cfg),
    ]


def group(cfg: config.Config) -> Group:
    return Group("postgres", tuple(alerts(cfg)))
