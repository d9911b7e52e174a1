"""prometheus-community's postgres_exporter: its custom queries and the monitoring role.

The exporter version this project runs and checks against is 0.11.1 (Debian
bookworm's ``prometheus-postgres-exporter``; compose pins the same release's
image). Its built-in queries give connections by state, locks by mode, the
``pg_stat_database`` counters, database sizes and ``pg_settings``. What they
lack comes from the custom queries below (``--extend.query-path``):

- ``pg_oldest_transaction_seconds``: client sessions only, so a long autovacuum
  (which the built-in ``pg_stat_activity_max_tx_duration`` counts) never pages;
- ``pg_idle_in_transaction_*``: how long sessions have sat idle inside a transaction
  (since their last statement, not since the transaction began);
- ``pg_lock_waits_*``: sessions waiting for a lock, and for how long (PostgreSQL 14+,
  ``pg_locks.waitstart``);
- ``pg_stat_statements_*``: the top statements by total time, named like the
  ``stat_statements`` collector of postgres_exporter 0.15+. A query on a missing
  ``pg_stat_statements`` fails every scrape, so it ships in a second file that is
  used only where the extension is loaded (compose; the local stack's own server).

Every query groups by database from ``pg_database``, so each series exists (at 0)
before the first lock wait or idle session, and is marked ``master`` so that
``--auto-discover-databases`` cannot run these server-wide views once per database.

The exporter logs in as ``cfg.postgres.monitor_role``: a read-only member of
``pg_monitor`` that :func:`role_statements` creates.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from genonaut_monitoring import config
from genonaut_monitoring.builder import Outputs

BINARY = "prometheus-postgres-exporter"
VERSION = "0.11.1"
QUERIES = "postgres-exporter/queries.yaml"
QUERIES_WITH_STATEMENTS = "postgres-exporter/queries-pg_stat_statements.yaml"
INIT_SCRIPT = "postgres/initdb/10-genonaut-monitoring.sh"
# Server settings that pg_stat_statements needs, and that keep a tagged statement's
# trailing sqlcommenter comment inside pg_stat_activity.query (1kB by default).
SERVER_SETTINGS = {
    "shared_preload_libraries": "pg_stat_statements",
    "pg_stat_statements.track": "top",
    "track_activity_query_size": "4096",
}
# The monitoring role may hold this many connections: the exporter needs one.
MONITOR_CONNECTION_LIMIT = 3


@dataclass(frozen=True)
class Column:
    """One column of a custom query: a label or a metric (``namespace_column``)."""

    name: str
    usage: str  # LABEL, GAUGE or COUNTER
    description: str


@dataclass(frozen=True)
class Query:
    namespace: str
    sql: str
    columns: tuple[Column, ...]

    @property
    def metrics(self) -> dict[str, str]:
        """Exposed metric name -> usage."""
        return {f"{self.namespace}_{c.name}": c.usage for c in self.columns if c.usage != "LABEL"}


DATNAME = Column("datname", "LABEL", "Database name.")


def session_queries() -> list[Query]:
    """Queries on pg_stat_activity and pg_locks: they work on any PostgreSQL 14+."""
    return [
        Query(
            "pg_oldest_transaction",
            """\
SELECT d.datname,
       COALESCE(MAX(EXTRACT(EPOCH FROM now() - a.xact_start)), 0) AS seconds
FROM pg_database d
LEFT JOIN pg_stat_activity a
       ON a.datname = d.datname
      AND a.backend_type = 'client backend'
      AND a.xact_start IS NOT NULL
      AND a.pid <> pg_backend_pid()
WHERE d.datallowconn
GROUP BY d.datname
""",
            (
                DATNAME,
                Column(
                    "seconds",
                    "GAUGE",
                    "Age of the oldest open transaction of a client session, in seconds.",
                ),
            ),
        ),
        Query(
            "pg_idle_in_transaction",
            """\
SELECT d.datname,
       COUNT(a.pid) AS sessions,
       COALESCE(MAX(EXTRACT(EPOCH FROM now() - a.state_change)), 0) AS max_seconds
FROM pg_database d
LEFT JOIN pg_stat_activity a
       ON a.datname = d.datname
      AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
WHERE d.datallowconn
GROUP BY d.datname
""",
            (
                DATNAME,
                Column("sessions", "GAUGE", "Sessions idle inside an open transaction."),
                Column(
                    "max_seconds",
                    "GAUGE",
                    "Longest time a session has been idle inside an open transaction, in seconds.",
                ),
            ),
        ),
        Query(
            "pg_lock_waits",
            """\
SELECT d.datname,
       COUNT(w.pid) AS sessions,
       COALESCE(MAX(EXTRACT(EPOCH FROM now() - w.waitstart)), 0) AS max_seconds
FROM pg_database d
LEFT JOIN (
    SELECT a.datname, l.pid, MIN(l.waitstart) AS waitstart
    FROM pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE NOT l.granted
    GROUP BY a.datname, l.pid
) w ON w.datname = d.datname
WHERE d.datallowconn
GROUP BY d.datname
""",
            (
                DATNAME,
                Column("sessions", "GAUGE", "Sessions waiting for a lock."),
                Column("max_seconds", "GAUGE", "Longest current wait for a lock, in seconds."),
            ),
        ),
    ]


def statements_query(cfg: config.Config) -> Query:
    """The top statements by total time, from pg_stat_statements (PostgreSQL 14+)."""
    p = cfg.postgres
    # The trailing sqlcommenter comment of a tagged statement is cut off, and runs of
    # white space folded, so the label shows the statement as people read it.
    return Query(
        "pg_stat_statements",
        f"""\
SELECT d.datname,
       r.rolname AS user,
       s.queryid::text AS queryid,
       LEFT(regexp_replace(regexp_replace(s.query, '\\s*/\\*[^*]*\\*/\\s*$', ''),
                           '\\s+', ' ', 'g'), {p.statement_text_length}) AS query,
       s.calls AS calls_total,
       s.total_exec_time / 1000 AS seconds_total,
       s.rows AS rows_total
FROM pg_stat_statements s
JOIN pg_database d ON d.oid = s.dbid
JOIN pg_roles r ON r.oid = s.userid
WHERE s.toplevel AND s.queryid IS NOT NULL
ORDER BY s.total_exec_time DESC
LIMIT {p.top_statements}
""",
        (
            DATNAME,
            Column("user", "LABEL", "Role that ran the statement."),
            Column("queryid", "LABEL", "pg_stat_statements' id of the normalised statement."),
            Column("query", "LABEL", "Normalised statement text, shortened."),
            Column("calls_total", "COUNTER", "Times the statement was executed."),
            Column("seconds_total", "COUNTER", "Time spent executing the statement, in seconds."),
            Column("rows_total", "COUNTER", "Rows the statement retrieved or affected."),
        ),
    )


def queries(cfg: config.Config, statements: bool) -> list[Query]:
    return session_queries() + ([statements_query(cfg)] if statements else [])


class _Dumper(yaml.SafeDumper):
    """SQL as literal blocks, so the file reads like the queries above."""


_Dumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    ),
)


def queries_yaml(cfg: config.Config, statements: bool) -> str:
    """The ``--extend.query-path`` file, in the format postgres_exporter 0.11 reads."""
    data = {
        q.namespace: {
            "query": q.sql,
            "master": True,
            "metrics": [
                {c.name: {"usage": c.usage, "description": c.description}} for c in q.columns
            ],
        }
        for q in queries(cfg, statements)
    }
    header = (
        "# postgres_exporter custom queries. Generated by build.py from "
        "genonaut_monitoring/pgexporter.py; edit the Python, not this file.\n"
    )
    return header + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=1_000_000)


def role_statements(cfg: config.Config, password: str | None) -> list[str]:
    """SQL creating the exporter's read-only role; ``password`` is an SQL expression.

    pg_monitor reads every statistics view and setting, never a table. The role is
    read-only by default and may hold only a few connections, so a misbehaving
    exporter cannot take the slots the application needs.
    """
    role = cfg.postgres.monitor_role
    login = f"LOGIN PASSWORD {password}" if password else "LOGIN"
    return [
        f"CREATE ROLE {role} {login} NOSUPERUSER NOCREATEDB NOCREATEROLE "
        f"CONNECTION LIMIT {MONITOR_CONNECTION_LIMIT}",
        f"GRANT pg_monitor TO {role}",
        f"ALTER ROLE {role} SET default_transaction_read_only = on",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    ]


def init_script(cfg: config.Config) -> str:
    """The postgres image's init script (``/docker-entrypoint-initdb.d``) for compose.

    It runs once, on an empty data volume, as the image's superuser in POSTGRES_DB.
    The password comes from the container's environment into a psql variable, so it
    is in no file; psql quotes it as a literal (``:'monitor_password'``).
    """
    sql = ";\n".join(role_statements(cfg, ":'monitor_password'")) + ";\n"
    return (
        "#!/bin/sh\n"
        "# Generated by build.py from genonaut_monitoring/pgexporter.py; edit the Python.\n"
        "# Creates the read-only role postgres-exporter logs in as (docker-compose.yml).\n"
        "# The postgres image runs this once, when it initialises an empty data volume.\n"
        "set -e\n"
        ': "${POSTGRES_MONITOR_PASSWORD:?set POSTGRES_MONITOR_PASSWORD in .env}"\n'
        'psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \\\n'
        "     --set monitor_password=\"$POSTGRES_MONITOR_PASSWORD\" <<'SQL'\n"
        f"{sql}"
        "SQL\n"
    )


def outputs(cfg: config.Config) -> Outputs:
    return {
        QUERIES: queries_yaml(cfg, statements=False).encode(),
        QUERIES_WITH_STATEMENTS: queries_yaml(cfg, statements=True).encode(),
        INIT_SCRIPT: init_script(cfg).encode(),
    }


def validate(folder: Path, cfg: config.Config) -> list[str]:
    """The query files parse, and every metric they define is in the recorded fixture."""
    from genonaut_monitoring.exporters import external

    problems = []
    for relative in (QUERIES, QUERIES_WITH_STATEMENTS):
        try:
            data = yaml.safe_load((folder / relative).read_text())
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"{relative}: cannot be read as YAML: {exc}")
            continue
        if not isinstance(data, dict) or not all("query" in q for q in data.values()):
            problems.append(f"{relative}: every entry needs a query")
    recorded = external.catalogue(external.POSTGRES_EXPORTER)
    for query in queries(cfg, statements=True):
        for name in sorted(set(query.metrics) - set(recorded)):
            problems.append(
                f"pgexporter.py: custom query {query.namespace} defines {name}, which "
                f"{external.fixture_path(external.POSTGRES_EXPORTER).name} lacks; "
                f"refresh it: {external.REFRESH_COMMAND}"
            )
    return problems


# --- running it ---------------------------------------------------------------------


def command(binary: str, listen: str, queries_file: Path) -> list[str]:
    """The exporter's command line; its connection string comes from the environment."""
    return [
        binary,
        f"--web.listen-address={listen}",
        f"--extend.query-path={queries_file}",
        "--log.level=warn",
    ]


def installed_version(binary: str) -> str:
    """The version a postgres_exporter binary reports (``--version``)."""
    import re
    import subprocess

    result = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    found = re.search(r"version (\S+)", result.stdout + result.stderr)
    return found.group(1) if found else "unknown"
