"""End to end: PostgreSQL faults on a real server fire their alerts in a real Prometheus.

The stack runs a throwaway PostgreSQL (30 connections, a 100ms deadlock
timeout), the Debian postgres_exporter logging in as the monitoring role, and
Prometheus with the test profile's rules. The test then causes each fault at
once (a tagged API route holding a row lock and idling in its transaction,
another session waiting for that lock, a deadlock, connections near the limit),
checks that ``pg_stat_activity`` names the route holding the lock, waits for
every alert to have fired for the database at fault, and last stops the server
for ``PostgresDown``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from genonaut_monitoring import config, pgstack
from genonaut_monitoring.alerts import postgres
from genonaut_monitoring.alerts.model import seconds
from genonaut_monitoring.exporters import instrument
from tests.apps.driver import get
from tests.conftest import require_tool

CFG = config.TEST_CONFIG
MAX_CONNECTIONS = 30
HOLD_ROUTE = "/api/v1/content/{item_id}/hold"
POSTGRES_ALERTS = 'ALERTS{alertname=~"Postgres.*"}'
# Alerts about the exporter rather than a fault of the server: PostgresDown is caused last
# (the server stops); the other two must stay silent throughout.
NOT_FAULTS = ("PostgresDown", "PostgresExporterDown", "PostgresExporterMissing")
# Loaded CI machines are slow; the bound below is what the intervals allow at worst.
PATIENCE = 3.0


def fire_bound(cfg: config.Config, threshold_seconds: float, for_: str) -> float:
    """Seconds from a fault to its alert firing: the age to reach, a scrape, two evaluations
    (the exporter's series are read by the rule on the next one), then ``for``."""
    scrape = cfg.postgres.scrape_interval or cfg.intervals.scrape_interval
    return (
        threshold_seconds
        + seconds(scrape)
        + 2 * seconds(cfg.intervals.evaluation_interval)
        + seconds(for_)
    )


@pytest.fixture
def stack(tmp_path: Any) -> Iterator[Any]:
    for tool in ("prometheus", "promtool", "amtool", "prometheus-postgres-exporter", "initdb"):
        require_tool(tool)
    from genonaut_monitoring.stack import Stack

    with Stack(
        tmp_path,
        cfg=CFG,
        components={"prometheus", *pgstack.COMPONENTS},
        postgres_settings={"max_connections": str(MAX_CONNECTIONS), "deadlock_timeout": "100ms"},
    ) as running:
        yield running


def connect(stack: Any) -> Any:
    import psycopg2

    assert stack.pg.server is not None
    return psycopg2.connect(stack.pg.server.dsn(pgstack.DATABASE))


def fired(stack: Any, alert: str, since: float) -> list[dict[str, str]]:
    """Label sets ``alert`` has fired with since ``since`` (time.monotonic()).

    Read from ALERTS over that range, so an alert that fired briefly counts too.
    """
    window = math.ceil(time.monotonic() - since) + 1
    selector = f'ALERTS{{alertname="{alert}",alertstate="firing"}}'
    return [r["metric"] for r in stack.query(f"max_over_time({selector}[{window}s])")]


def read_route(query: str) -> str:
    """The route of a statement's trailing sqlcommenter comment."""
    body = query[query.rindex("/*") + 2 : query.rindex("*/")]
    pairs = dict(pair.split("=", 1) for pair in body.split(","))
    return unquote(pairs["route"].strip("'"))


class Faults:
    """Each fault in its own thread or connection; ``release`` ends them all."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []
        self.connections: list[Any] = []
        self.deadlock_errors: list[str] = []
        self.engine = sa.create_engine(stack.pg.database_url())
        # Watches from outside every fault.
        self.observer = connect(stack)
        self.observer.autocommit = True
        self.connections.append(self.observer)

    def thread(self, target: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self.threads.append(thread)
        return thread

    def hold_a_row_in_a_tagged_route(self) -> None:
        """An API route that locks row 1 and idles in its transaction until released."""
        app = FastAPI()

        @app.get(HOLD_ROUTE)
        def hold(item_id: int) -> dict[str, int]:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.text("SELECT id FROM items WHERE id = :id FOR UPDATE"), {"id": item_id}
                )
                self.release.wait(120)
            return {"held": item_id}

        instrument(app, engine=self.engine, registry=CollectorRegistry(), sql_comments=True)

        def request() -> None:
            get(app, "/api/v1/content/1/hold?who=e2e")

        self.thread(request)
        # The row is locked, and the route's session idles in its transaction.
        self.stack.wait_for(
            lambda: self.sessions("state = 'idle in transaction' AND query LIKE '%FOR UPDATE%'"),
            30,
            "the route to hold the row",
        )

    def sessions(self, where: str) -> list[int]:
        with self.observer.cursor() as cursor:
            cursor.execute(f"SELECT pid FROM pg_stat_activity WHERE {where}")
            return [int(row[0]) for row in cursor.fetchall()]

    def wait_for_the_row(self) -> int:
        """A second session blocked on row 1; returns its pid."""
        conn = connect(self.stack)
        self.connections.append(conn)
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = int(cursor.fetchone()[0])
        self.thread(lambda: conn.cursor().execute("SELECT id FROM items WHERE id = 1 FOR UPDATE"))
        return pid

    def deadlock(self) -> None:
        """Two sessions that each lock a row the other one then wants."""
        import psycopg2

        first, second = connect(self.stack), connect(self.stack)
        first.cursor().execute("UPDATE items SET n = n + 1 WHERE id = 2")
        second.cursor().execute("UPDATE items SET n = n + 1 WHERE id = 3")

        def crossed(conn: Any, row: int) -> None:
            try:
                conn.cursor().execute(f"UPDATE items SET n = n + 1 WHERE id = {row}")
            except psycopg2.errors.DeadlockDetected as exc:
                self.deadlock_errors.append(str(exc))
            conn.rollback()

        other = self.thread(lambda: crossed(first, 3))
        crossed(second, 2)
        other.join(30)
        # A session reports its statistics (the deadlock count) when it ends; an idle one
        # only every 10s (PostgreSQL 15's PGSTAT_IDLE_INTERVAL).
        pids = ", ".join(str(conn.info.backend_pid) for conn in (first, second))
        first.close()
        second.close()
        self.stack.wait_for(
            lambda: not self.sessions(f"pid IN ({pids})"), 30, "the deadlocked sessions to end"
        )

    def fill_connections(self, share: float) -> None:
        """Open sessions until more than ``share`` of max_connections are in use.

        Counted again after each one, so the test's other sessions are taken into account.
        """
        target = math.floor(MAX_CONNECTIONS * share) + 2
        # What pg_stat_activity_count adds up: sessions of a database, in some state.
        while len(self.sessions("datname IS NOT NULL AND state IS NOT NULL")) < target:
            self.connections.append(connect(self.stack))

    def end(self) -> None:
        """Release the lock and let the route finish; then close every connection."""
        self.release.set()
        self.threads[0].join(30)
        for conn in self.connections:
            conn.close()
        for thread in self.threads:
            thread.join(30)
        self.engine.dispose()


@pytest.mark.e2e
@pytest.mark.postgres
def test_each_postgres_fault_fires_its_alert_and_the_lock_holder_names_its_route(
    stack: Any,
) -> None:
    t, d = CFG.thresholds, CFG.durations
    stack.wait_for(lambda: stack.query("pg_up == 1"), 30, "the exporter to reach PostgreSQL")
    # Rules have been evaluated (the Watchdog fires at once) and no PostgreSQL alert is up.
    stack.wait_for(lambda: stack.query('ALERTS{alertname="Watchdog"}'), 30, "a rule evaluation")
    time.sleep(2 * seconds(CFG.intervals.evaluation_interval))
    assert stack.query(POSTGRES_ALERTS) == []
    # From here on the exporter is scraped (before its first scrape, up was absent).
    baseline = time.monotonic()

    setup = sa.create_engine(stack.pg.database_url())
    with setup.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id integer PRIMARY KEY, n integer NOT NULL)")
        conn.exec_driver_sql("INSERT INTO items VALUES (1, 0), (2, 0), (3, 0)")
    setup.dispose()

    faults = Faults(stack)
    started = time.monotonic()
    try:
        faults.hold_a_row_in_a_tagged_route()
        waiter = faults.wait_for_the_row()
        blockers = stack.wait_for(
            lambda: blocking_queries(faults.observer, waiter), 30, "the lock wait"
        )
        # pg_stat_activity names the route of the session that holds the lock.
        assert [read_route(q) for q in blockers] == [HOLD_ROUTE]
        assert "who=e2e" not in blockers[0]
        faults.deadlock()
        assert len(faults.deadlock_errors) == 1, faults.deadlock_errors
        faults.fill_connections(t.postgres_connections_ratio)

        expected = {
            "PostgresTooManyConnections": fire_bound(CFG, 0, d.postgres_too_many_connections),
            "PostgresDeadlocks": fire_bound(CFG, 0, d.postgres_deadlocks),
            "PostgresLongTransaction": fire_bound(
                CFG, t.postgres_transaction_age_seconds, d.postgres_long_transaction
            ),
            "PostgresIdleInTransaction": fire_bound(
                CFG, t.postgres_idle_in_transaction_seconds, d.postgres_idle_in_transaction
            ),
            "PostgresLockWaits": fire_bound(
                CFG, t.postgres_lock_wait_seconds, d.postgres_lock_waits
            ),
        }
        # Every PostgreSQL alert is proven here: by a fault above, or by the exporter below.
        assert {a.name for a in postgres.alerts(CFG)} == {*expected, *NOT_FAULTS}
        seen: dict[str, list[dict[str, str]]] = {}
        for alert, bound in sorted(expected.items(), key=lambda kv: kv[1]):
            left = max(1.0, started + PATIENCE * bound - time.monotonic())
            seen[alert] = stack.wait_for(
                lambda a=alert: fired(stack, a, started), left, f"{alert} to fire"
            )
    finally:
        faults.end()

    server = f"127.0.0.1:{stack.pg.server.port}"
    for alert, label_sets in seen.items():
        for labels in label_sets:
            assert labels["job"] == CFG.postgres.job and labels["server"] == server, labels
            if alert != "PostgresTooManyConnections":
                assert labels["datname"] == pgstack.DATABASE, (alert, labels)

    # Last, the server goes away: the exporter still answers, with pg_up 0.
    stack.pg.server.stop()
    bound = fire_bound(CFG, 0, d.postgres_down)
    stopped = time.monotonic()
    stack.wait_for(lambda: fired(stack, "PostgresDown", stopped), PATIENCE * bound, "PostgresDown")
    for alert in NOT_FAULTS[1:]:
        assert fired(stack, alert, baseline) == [], alert


def blocking_queries(conn: Any, pid: int) -> list[str]:
    """The current or last statement of each session that blocks ``pid``."""
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT b.query FROM unnest(pg_blocking_pids(%s)) AS p(pid) "
            "JOIN pg_stat_activity b ON b.pid = p.pid",
            (pid,),
        )
        return [row[0] for row in cursor.fetchall()]
