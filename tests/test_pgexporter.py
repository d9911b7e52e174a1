"""postgres_exporter: the recorded fixture is current, the role is read-only, the queries run.

Real parts throughout: a throwaway PostgreSQL, the Debian postgres_exporter,
psql running compose's init script.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from genonaut_monitoring import builder, config, pgexporter
from genonaut_monitoring.exporters import catalogue, external
from genonaut_monitoring.pgserver import Server
from genonaut_monitoring.processes import Process, free_port
from scripts import postgres_metrics
from tests.conftest import require_tool
from tests.postgres import throwaway_server

CFG = config.CONFIG
DATABASE = "genonaut"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """PostgreSQL as the stack runs it (pg_stat_statements loaded), with the monitoring role."""
    require_tool(pgexporter.BINARY)
    running = throwaway_server(pgexporter.SERVER_SETTINGS)
    try:
        running.execute([f"CREATE DATABASE {DATABASE}"])
        running.execute(pgexporter.role_statements(CFG, None), DATABASE)
        yield running
    finally:
        running.stop()
        running.remove()


def as_monitor(server: Server, sql: str) -> list[tuple[Any, ...]]:
    import psycopg2

    conn = psycopg2.connect(server.dsn(DATABASE, CFG.postgres.monitor_role))
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        conn.close()


# --- the fixture the contract check reads ---------------------------------------------------


@pytest.mark.postgres
def test_the_committed_fixture_is_what_the_installed_exporter_exposes(server: Server) -> None:
    binary = require_tool(pgexporter.BINARY)
    assert pgexporter.installed_version(binary) == pgexporter.VERSION
    live = postgres_metrics.record_live(CFG, server)
    committed = external.load(external.POSTGRES_EXPORTER)
    differences = postgres_metrics.differences(live, committed)
    assert differences == [], f"refresh with `{external.REFRESH_COMMAND}`:\n" + "\n".join(
        differences
    )


def test_recording_keeps_names_as_written_and_every_label() -> None:
    text = (
        "# HELP pg_stat_database_deadlocks Deadlocks.\n"
        "# TYPE pg_stat_database_deadlocks counter\n"
        'pg_stat_database_deadlocks{datid="1",datname="a",server="h:5432"} 0\n'
        'pg_stat_database_deadlocks{datid="2",datname="b, \\"c\\"",server="h:5432"} 3\n'
        "# TYPE pg_static untyped\n"
        'pg_static{version="PostgreSQL 15"} 1\n'
        "# TYPE go_goroutines gauge\n"
        "go_goroutines 9\n"
    )
    fixture = external.record(text, "x", "1.0", "test")
    assert fixture["metrics"] == {
        # A counter without _total keeps its name: PromQL selects it as written.
        "pg_stat_database_deadlocks": {
            "type": "counter",
            "help": "Deadlocks.",
            "labels": ["datid", "datname", "server"],
        },
        "pg_static": {"type": "untyped", "help": "", "labels": ["version"]},
    }


def test_expressions_on_exporter_metrics_are_checked_against_the_fixture() -> None:
    assert catalogue.check_expression('sum by (datname) (pg_locks_count{mode="sharelock"})') == []
    assert [str(p) for p in catalogue.check_expression('pg_up{datname="x"}')] == [
        "metric 'pg_up' has no label 'datname' (it has: instance, job)"
    ]
    assert [str(p) for p in catalogue.check_expression("pg_stat_database_deadlocks > 0")] == [
        "counter 'pg_stat_database_deadlocks' is used outside rate()/increase(): its raw "
        "value only ever grows; wrap it in rate(...[$__rate_interval])"
    ]
    # The 0.15+ name of the same counter is not what 0.11.1 exposes.
    assert catalogue.check_expression("rate(pg_stat_database_deadlocks_total[5m])")


def test_a_custom_metric_missing_from_the_fixture_fails_the_build_with_the_refresh_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    original = pgexporter.session_queries

    def with_extra() -> list[pgexporter.Query]:
        first, *rest = original()
        column = pgexporter.Column("extra", "GAUGE", "Not recorded.")
        return [replace(first, columns=(*first.columns, column)), *rest]

    monkeypatch.setattr(pgexporter, "session_queries", with_extra)
    with pytest.raises(builder.BuildError) as caught:
        builder.build(CFG, tmp_path / "out")
    assert (
        "pgexporter.py: custom query pg_oldest_transaction defines "
        "pg_oldest_transaction_extra, which postgres_exporter.json lacks; refresh it: "
        f"{external.REFRESH_COMMAND}"
    ) in caught.value.problems
    assert not (tmp_path / "out").exists()


# --- the role and the queries on a real server --------------------------------------------------


@pytest.mark.postgres
def test_the_monitoring_role_reads_statistics_and_writes_nothing(server: Server) -> None:
    import psycopg2

    others = as_monitor(server, "SELECT count(*) FROM pg_stat_activity WHERE query <> ''")
    assert others[0][0] >= 1  # pg_read_all_stats: other sessions' statements are visible
    assert as_monitor(server, "SELECT count(*) >= 0 FROM pg_stat_statements") == [(True,)]
    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        as_monitor(server, "CREATE TABLE intruder (id int)")
    limit = as_monitor(
        server, f"SELECT rolconnlimit FROM pg_roles WHERE rolname = '{CFG.postgres.monitor_role}'"
    )
    assert limit == [(pgexporter.MONITOR_CONNECTION_LIMIT,)]


@pytest.mark.postgres
def test_compose_init_script_creates_the_role_with_the_password_from_env() -> None:
    psql = require_tool("psql")
    server = throwaway_server()
    try:
        server.execute([f"CREATE DATABASE {DATABASE}"])
        script = pgexporter.init_script(config.COMPOSE_CONFIG)
        password = 'it\'s a "secret" $HOME'
        env = {
            "PATH": f"{Path(psql).parent}:{os.environ['PATH']}",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(server.port),
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": DATABASE,
            "POSTGRES_MONITOR_PASSWORD": password,
        }
        result = subprocess.run(
            ["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        import psycopg2

        conn = psycopg2.connect(server.dsn(DATABASE))
        try:
            with conn.cursor() as cursor:
                role = config.COMPOSE_CONFIG.postgres.monitor_role
                cursor.execute(
                    "SELECT rolpassword IS NOT NULL, pg_has_role(rolname, 'pg_monitor', 'USAGE') "
                    "FROM pg_authid WHERE rolname = %s",
                    (role,),
                )
                assert cursor.fetchall() == [(True, True)]
                cursor.execute("SELECT extname FROM pg_extension WHERE extname LIKE 'pg_stat%'")
                assert cursor.fetchall() == [("pg_stat_statements",)]
        finally:
            conn.close()
        # Without the password it refuses, naming the variable.
        del env["POSTGRES_MONITOR_PASSWORD"]
        refused = subprocess.run(
            ["sh", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert refused.returncode != 0
        assert "set POSTGRES_MONITOR_PASSWORD in .env" in refused.stderr
    finally:
        server.stop()
        server.remove()


def scrape_errors(server: Server, queries: str, tmp_path: Path) -> float:
    """pg_exporter_last_scrape_error after a scrape with ``queries``."""
    binary = require_tool(pgexporter.BINARY)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "queries.yaml"
    path.write_text(queries)
    port = free_port()
    dsn = server.url(DATABASE, CFG.postgres.monitor_role) + "?sslmode=disable"
    process = Process(
        "exporter",
        pgexporter.command(binary, f"127.0.0.1:{port}", path),
        tmp_path / "exporter.log",
        {"DATA_SOURCE_NAME": dsn},
        tmp_path,
    )
    process.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        process.stop()
    return next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("pg_exporter_last_scrape_error ")
    )


@pytest.mark.postgres
def test_without_pg_stat_statements_the_plain_queries_scrape_cleanly(tmp_path: Path) -> None:
    require_tool(pgexporter.BINARY)
    server = throwaway_server()  # no shared_preload_libraries, no extension
    try:
        server.execute([f"CREATE DATABASE {DATABASE}"])
        server.execute(pgexporter.role_statements(CFG, None)[:3], DATABASE)
        plain = scrape_errors(server, pgexporter.queries_yaml(CFG, False), tmp_path / "a")
        both = scrape_errors(server, pgexporter.queries_yaml(CFG, True), tmp_path / "b")
    finally:
        server.stop()
        server.remove()
    assert plain == 0
    # Why there are two files: the files differ only in the statements query, which fails
    # every scrape where the extension is missing.
    assert both == 1


# --- the Kubernetes target ----------------------------------------------------------------


def test_kubernetes_scrapes_the_exporter_under_the_job_the_alerts_select() -> None:
    from genonaut_monitoring import kubernetes

    path = f"service-monitors/{CFG.postgres.job}.yaml"
    monitor = yaml.safe_load(kubernetes.outputs(CFG)[path])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["relabelings"] == [
        {"action": "replace", "targetLabel": "job", "replacement": CFG.postgres.job}
    ]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert endpoint["interval"] == CFG.intervals.scrape_interval
    assert monitor["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "prometheus-postgres-exporter"}
    }
    without = replace(CFG, postgres=replace(CFG.postgres, targets=()))
    assert path not in kubernetes.outputs(without)
