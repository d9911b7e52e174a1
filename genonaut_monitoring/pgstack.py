"""The local stack's PostgreSQL parts: its own throwaway server, and postgres_exporter.

Component ``postgres`` is a throwaway server (:class:`~genonaut_monitoring.pgserver.Server`)
with pg_stat_statements loaded, a ``genonaut`` role and database for the demo
API, and the read-only monitoring role the exporter logs in as, created the way
compose's init script creates it (:func:`pgexporter.role_statements`).

Component ``postgres-exporter`` is the Debian ``prometheus-postgres-exporter``.
It watches the stack's own server, or, without one, the PostgreSQL its
``DATA_SOURCE_NAME`` (or ``DATA_SOURCE_URI`` with ``DATA_SOURCE_USER`` and
``DATA_SOURCE_PASS[_FILE]``) names in this process's environment. The
connection string stays in the exporter's environment, never in a file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import TYPE_CHECKING

from genonaut_monitoring import pgexporter
from genonaut_monitoring.pgserver import Server, find_bin
from genonaut_monitoring.processes import StackError, find_binary

if TYPE_CHECKING:
    from genonaut_monitoring.stack import Stack

SERVER = "postgres"
EXPORTER = "postgres-exporter"
COMPONENTS = frozenset({SERVER, EXPORTER})
# The demo API's role and database on the stack's own server.
DATABASE = "genonaut"
APP_ROLE = "genonaut"
# Connection settings the exporter reads from its environment.
DSN_VARIABLES = ("DATA_SOURCE_NAME", "DATA_SOURCE_URI", "DATA_SOURCE_URI_FILE")


def given_dsn(environ: Mapping[str, str]) -> bool:
    """True when the environment names a PostgreSQL for the exporter."""
    return any(environ.get(name) for name in DSN_VARIABLES)


def components_for_up(no_postgres: bool, demo: bool) -> tuple[frozenset[str], str | None]:
    """What ``genonaut-monitoring up`` runs of PostgreSQL, and a note when it runs nothing.

    The exporter watches the PostgreSQL its environment names; failing that, with the
    demo, the stack runs its own server when PostgreSQL and the exporter are installed.
    """
    if no_postgres:
        return frozenset(), None
    if given_dsn(os.environ):
        return frozenset({EXPORTER}), None
    if not demo:
        return frozenset(), (
            "postgres_exporter is not started here (set DATA_SOURCE_NAME to run it on your "
            "database); Prometheus scrapes the config's postgres.targets, empty them without "
            "PostgreSQL"
        )
    missing = [
        package
        for found, package in (
            (find_bin("initdb"), "postgresql"),
            (shutil.which(pgexporter.BINARY), pgexporter.BINARY),
        )
        if not found
    ]
    if missing:
        return frozenset(), (
            "the demo API runs on SQLite and the PostgreSQL dashboard stays empty: "
            f"apt-get install --no-install-recommends {' '.join(missing)}"
        )
    return COMPONENTS, None


class PostgresParts:
    """Starts and stops the PostgreSQL components of one :class:`Stack`."""

    def __init__(self, stack: Stack, settings: Mapping[str, str] | None = None) -> None:
        self.stack = stack
        self.settings = {**pgexporter.SERVER_SETTINGS, **(settings or {})}
        self.server: Server | None = None

    @property
    def exporter_url(self) -> str:
        return f"http://127.0.0.1:{self.stack.ports.postgres_exporter}"

    def database_url(self, driver: str = "psycopg2") -> str | None:
        """The demo API's database on the stack's own server (None without one)."""
        if self.server is None:
            return None
        return self.server.url(DATABASE, APP_ROLE, driver)

    def start_server(self) -> None:
        """Initialise and start the server; create the app's and the exporter's roles."""
        self.server = Server(settings=self.settings)
        self.server.init()
        self.server.start()
        self.server.execute(
            [f"CREATE ROLE {APP_ROLE} LOGIN", f"CREATE DATABASE {DATABASE} OWNER {APP_ROLE}"]
        )
        self.server.execute(pgexporter.role_statements(self.stack.cfg, None), DATABASE)

    def start_exporter(self) -> None:
        """Run postgres_exporter on the stack's server, or the one the environment names."""
        env = dict(os.environ)
        if self.server is not None:
            role = self.stack.cfg.postgres.monitor_role
            for name in (*DSN_VARIABLES, "DATA_SOURCE_USER", "DATA_SOURCE_PASS"):
                env.pop(name, None)
            env["DATA_SOURCE_NAME"] = self.server.url(DATABASE, role) + "?sslmode=disable"
            queries = self.stack.out / pgexporter.QUERIES_WITH_STATEMENTS
        elif given_dsn(env):
            # Another server: pg_stat_statements may be missing there, and a query on it
            # would fail every scrape.
            queries = self.stack.out / pgexporter.QUERIES
        else:
            raise StackError(
                f"{EXPORTER} needs a PostgreSQL: start the stack's own ({SERVER!r} component) "
                "or set DATA_SOURCE_NAME (postgresql://user:password@host:port/db)"
            )
        listen = f"127.0.0.1:{self.stack.ports.postgres_exporter}"
        binary = find_binary(pgexporter.BINARY)
        self.stack._start(EXPORTER, pgexporter.command(binary, listen, queries), env)
        self.stack._wait_http(EXPORTER, f"{self.exporter_url}/", timeout=30)

    def stop(self) -> None:
        """Stop and remove the server (the stack stops the exporter with its processes)."""
        server, self.server = self.server, None
        if server is not None:
            server.stop()
            server.remove()

    def urls(self) -> dict[str, str]:
        urls = {}
        if self.server is not None:
            urls["PostgreSQL"] = f"{self.database_url('')} (throwaway, gone on stop)"
        if EXPORTER in self.stack.processes:
            urls["PG exporter"] = f"{self.exporter_url}/metrics"
        return urls
