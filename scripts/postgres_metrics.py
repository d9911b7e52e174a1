"""Record what postgres_exporter really exposes into exporters/postgres_exporter.json.

    make postgres-metrics            # or: python -m scripts.postgres_metrics
    python -m scripts.postgres_metrics --check   # exit 1 if the fixture is stale

Starts a throwaway PostgreSQL (pg_stat_statements loaded, the monitoring role
created as the stack creates it), runs the installed postgres_exporter on it as
that role with the project's custom queries, scrapes it, and writes every
``pg_*`` series with its type, help and label names. The build checks every
dashboard and alert query against that file (exporters/external.py). Run it
after changing the custom queries (genonaut_monitoring/pgexporter.py) or the
exporter version; nothing keeps running afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from genonaut_monitoring import config, pgexporter
from genonaut_monitoring.exporters import external
from genonaut_monitoring.pgserver import Server
from genonaut_monitoring.processes import Process, StackError, find_binary, free_port

DATABASE = "genonaut"
SCRAPE_TIMEOUT_SECONDS = 30


def _scrape(url: str, process: Process) -> str:
    """The exposition text once the exporter has connected (pg_up 1)."""
    deadline = time.monotonic() + SCRAPE_TIMEOUT_SECONDS
    text = ""
    while time.monotonic() < deadline:
        if not process.alive():
            raise StackError(f"postgres_exporter exited; its log:\n{process.tail()}")
        try:
            text = requests.get(url, timeout=10).text
        except requests.RequestException:
            text = ""
        if "\npg_up 1" in text:
            return text
        time.sleep(0.2)
    raise StackError(f"postgres_exporter never reached PostgreSQL; its log:\n{process.tail()}")


def record_live(cfg: config.Config = config.CONFIG, server: Server | None = None) -> dict[str, Any]:
    """The fixture, from a real exporter on a real (throwaway, unless given) server."""
    binary = find_binary(pgexporter.BINARY)
    own = server is None
    work = Path(tempfile.mkdtemp(prefix="genonaut-pgx-"))
    try:
        if server is None:
            server = Server(settings=pgexporter.SERVER_SETTINGS)
            server.init()
            server.start()
            server.execute([f"CREATE DATABASE {DATABASE}"])
            server.execute(pgexporter.role_statements(cfg, None), DATABASE)
        # A statement for pg_stat_statements to report, whatever ran before.
        server.execute(["SELECT 1"], DATABASE)
        queries = work / "queries.yaml"
        queries.write_text(pgexporter.queries_yaml(cfg, statements=True))
        port = free_port()
        dsn = server.url(DATABASE, cfg.postgres.monitor_role) + "?sslmode=disable"
        process = Process(
            "postgres-exporter",
            pgexporter.command(binary, f"127.0.0.1:{port}", queries),
            work / "exporter.log",
            {"DATA_SOURCE_NAME": dsn},
            work,
        )
        process.start()
        try:
            text = _scrape(f"http://127.0.0.1:{port}/metrics", process)
        finally:
            process.stop()
        major = int(_setting(server, "server_version_num")) // 10_000
    finally:
        if own and server is not None:
            server.stop()
            server.remove()
        shutil.rmtree(work, ignore_errors=True)
    return external.record(
        text,
        external.POSTGRES_EXPORTER,
        pgexporter.installed_version(binary),
        f"PostgreSQL {major} with pg_stat_statements, custom queries of pgexporter.py",
    )


def _setting(server: Server, name: str) -> str:
    import psycopg2

    conn = psycopg2.connect(server.dsn(DATABASE))
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT current_setting(%s)", (name,))
            return str(cursor.fetchone()[0])
    finally:
        conn.close()


def differences(recorded: dict[str, Any], committed: dict[str, Any]) -> list[str]:
    """How a live recording differs from the committed fixture, one line each."""
    lines = []
    for key in ("version", "recorded_with"):
        if recorded[key] != committed.get(key):
            lines.append(f"{key}: {committed.get(key)!r} committed, {recorded[key]!r} now")
    old, new = committed.get("metrics", {}), recorded["metrics"]
    for name in sorted(set(old) | set(new)):
        if name not in new:
            lines.append(f"gone: {name}")
        elif name not in old:
            lines.append(f"new: {name} {new[name]['labels']}")
        elif old[name] != new[name]:
            lines.append(f"changed: {name}: {old[name]} -> {new[name]}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed fixture; write nothing"
    )
    args = parser.parse_args(argv)
    path = external.fixture_path(external.POSTGRES_EXPORTER)
    try:
        recorded = record_live()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        committed = external.load(external.POSTGRES_EXPORTER) if path.exists() else {}
        lines = differences(recorded, committed)
        for line in lines:
            print(line)
        return 1 if lines else 0
    path.write_text(external.dump(recorded))
    print(
        f"wrote {len(recorded['metrics'])} series of {recorded['exporter']} "
        f"{recorded['version']} to {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
