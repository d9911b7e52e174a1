"""promtool cases for the PostgreSQL alerts: postgres_exporter series above and below each limit.

Series carry the labels the recorded exporter gives them (``server``,
``datname``) plus the target labels of the configured ``postgres`` job; the
numbers come from the config, as for the other cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from genonaut_monitoring import config
from genonaut_monitoring.exporters import pgmetrics as pg
from tests.rules.cases import Case, Expected, Scenario, Timeline, counter, gauge

EXPORTER = "127.0.0.1:9187"
SERVER = "127.0.0.1:5432"
DATABASE = "genonaut"
# A second database that stays quiet: alerts must name the one at fault.
OTHER_DATABASE = "template1"


def exporter(cfg: config.Config, **labels: str) -> dict[str, str]:
    return {"job": cfg.postgres.job, "instance": EXPORTER, **labels}


def database(cfg: config.Config, datname: str = DATABASE) -> dict[str, str]:
    return exporter(cfg, server=SERVER, datname=datname)


def _down(cfg: config.Config, tl: Timeline, n: int) -> Case:
    name = pg.PG_UP.name
    return Case(
        "PostgresDown",
        Scenario(
            "the exporter cannot connect",
            [gauge(name, exporter(cfg), 0, n)],
            [Expected(exporter(cfg), 0)],
        ),
        Scenario("the exporter is connected", [gauge(name, exporter(cfg), 1, n)]),
    )


def _exporter_down(cfg: config.Config, tl: Timeline, n: int) -> Case:
    return Case(
        "PostgresExporterDown",
        Scenario(
            "every scrape of the exporter fails",
            [gauge("up", exporter(cfg), 0, n)],
            [Expected(exporter(cfg), 0)],
        ),
        Scenario("every scrape of the exporter succeeds", [gauge("up", exporter(cfg), 1, n)]),
    )


def _exporter_missing(cfg: config.Config, tl: Timeline, n: int) -> Case:
    api = {"job": cfg.jobs[0], "instance": "127.0.0.1:8000"}
    return Case(
        "PostgresExporterMissing",
        Scenario(
            "only the API is scraped",
            [gauge("up", api, 1, n)],
            [Expected({"job": cfg.postgres.job}, 1)],
        ),
        Scenario("the exporter is scraped", [gauge("up", exporter(cfg), 1, n)]),
    )


def _connections(cfg: config.Config, tl: Timeline, n: int) -> Case:
    share, limit = cfg.thresholds.postgres_connections_ratio, 100
    hot, cold = min(limit, math.ceil(limit * (1 + share) / 2)), math.floor(limit * share / 2)
    server = exporter(cfg, server=SERVER)

    def sessions(total: int) -> list[dict[str, str]]:
        # Spread over states and databases: the alert adds them all up per server.
        return [
            gauge(pg.PG_CONNECTIONS.name, {**database(cfg), "state": "active"}, total // 2, n),
            gauge(
                pg.PG_CONNECTIONS.name,
                {**database(cfg, OTHER_DATABASE), "state": "idle"},
                total - total // 2,
                n,
            ),
            gauge(pg.PG_MAX_CONNECTIONS.name, server, limit, n),
        ]

    return Case(
        "PostgresTooManyConnections",
        Scenario(
            f"{hot} of {limit} connections are in use",
            sessions(hot),
            [Expected(server, hot / limit)],
        ),
        Scenario(f"{cold} of {limit} connections are in use", sessions(cold)),
    )


def _deadlocks(cfg: config.Config, tl: Timeline, n: int) -> Case:
    name = pg.PG_DEADLOCKS.name
    quiet = counter(name, database(cfg, OTHER_DATABASE), 0, n)
    return Case(
        "PostgresDeadlocks",
        Scenario(
            "one deadlock happens every evaluation interval",
            [counter(name, database(cfg), 1, n), quiet],
            [Expected(database(cfg), tl.window / tl.step)],
        ),
        Scenario("no deadlock happens", [counter(name, database(cfg), 0, n), quiet]),
    )


def _age(alert: str, spec_name: str, threshold: Callable[[config.Config], float], what: str):
    """A case for an age gauge per database above ``threshold``: twice it, or half."""

    def build(cfg: config.Config, tl: Timeline, n: int) -> Case:
        limit = threshold(cfg)
        hot, cold = 2 * limit, limit / 2
        quiet = gauge(spec_name, database(cfg, OTHER_DATABASE), 0, n)
        return Case(
            alert,
            Scenario(
                f"{what} for {hot:g}s",
                [gauge(spec_name, database(cfg), hot, n), quiet],
                [Expected(database(cfg), hot)],
            ),
            Scenario(f"{what} for {cold:g}s", [gauge(spec_name, database(cfg), cold, n), quiet]),
        )

    return build


BUILDERS: dict[str, Callable[[config.Config, Timeline, int], Case]] = {
    "PostgresDown": _down,
    "PostgresExporterDown": _exporter_down,
    "PostgresExporterMissing": _exporter_missing,
    "PostgresTooManyConnections": _connections,
    "PostgresDeadlocks": _deadlocks,
    "PostgresLongTransaction": _age(
        "PostgresLongTransaction",
        pg.PG_OLDEST_TRANSACTION.name,
        lambda cfg: cfg.thresholds.postgres_transaction_age_seconds,
        "a transaction has been open",
    ),
    "PostgresIdleInTransaction": _age(
        "PostgresIdleInTransaction",
        pg.PG_IDLE_IN_TRANSACTION_MAX.name,
        lambda cfg: cfg.thresholds.postgres_idle_in_transaction_seconds,
        "a session has been idle in transaction",
    ),
    "PostgresLockWaits": _age(
        "PostgresLockWaits",
        pg.PG_LOCK_WAITS_MAX.name,
        lambda cfg: cfg.thresholds.postgres_lock_wait_seconds,
        "a session has waited for a lock",
    ),
}
