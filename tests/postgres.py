"""A throwaway PostgreSQL server for the tests marked ``postgres``.

``postgres_url`` is a session fixture: it yields ``TEST_DATABASE_URL`` when
that is set, otherwise it runs ``initdb`` on a temporary directory, starts the
server on a free loopback port (its socket inside that directory, trust
authentication), creates a database and yields its ``postgresql+psycopg2``
URL. At the end of the session the server is stopped (``pg_ctl -m fast``) and
the directory removed; nothing keeps running. Use it from a test module with::

    from tests.postgres import postgres_url  # noqa: F401
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, require_tool

DATABASE = "genonaut_test"
START_ATTEMPTS = 3
START_TIMEOUT_SECONDS = 30


def _as_owner(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _run(argv: list[str], what: str) -> None:
    # cwd: the postgres user may not be allowed into the directory pytest runs in.
    result = subprocess.run(
        _as_owner(argv),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n"
            f"{result.stdout}{result.stderr}"
        )


class Server:
    """One PostgreSQL cluster in a temporary directory."""

    def __init__(self, pg_ctl: str) -> None:
        self.pg_ctl = pg_ctl
        # Not pytest's tmp_path: its parents are private to root, and the server may run
        # as the postgres user, which must reach the data and socket directories.
        self.root = Path(tempfile.mkdtemp(prefix="genonaut-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log = self.root / "server.log"
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            # LookupError here means there is no postgres user: install the postgresql package.
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
        self.port = 0

    def init(self, initdb: str) -> None:
        """Create the cluster: trust authentication, no fsync (the data is thrown away)."""
        _run(
            [
                initdb,
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "--encoding=UTF8",
                "--no-sync",
            ],
            "initdb",
        )

    def start(self) -> None:
        """Start on a free port; retried, since another process may take the port first."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            options = (
                f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                _run(
                    [
                        self.pg_ctl,
                        "-D",
                        str(self.data),
                        "-l",
                        str(self.log),
                        "-o",
                        options,
                        "-w",
                        "-t",
                        str(START_TIMEOUT_SECONDS),
                        "start",
                    ],
                    "pg_ctl start",
                )
            except RuntimeError:
                self.stop()
                if attempt == START_ATTEMPTS:
                    log = self.log.read_text(errors="replace") if self.log.exists() else ""
                    raise RuntimeError(f"PostgreSQL did not start; server log:\n{log}") from None
                continue
            return

    def create_database(self) -> str:
        """Create the test database and return its URL."""
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres"
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            conn.close()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def stop(self) -> None:
        """Stop the server (fast shutdown); kill the postmaster if that fails."""
        pid_file = self.data / "postmaster.pid"
        if pid_file.exists():
            try:
                _run(
                    [self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop"],
                    "pg_ctl stop",
                )
            except (RuntimeError, subprocess.TimeoutExpired):
                self._kill(pid_file)

    def _kill(self, pid_file: Path) -> None:
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        # SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its children along.
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL database: ``TEST_DATABASE_URL`` or a throwaway server."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    initdb, pg_ctl = require_tool("initdb"), require_tool("pg_ctl")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.fail("running as root needs runuser (util-linux) to start PostgreSQL as postgres")
    server = Server(pg_ctl)
    try:
        server.init(initdb)
        server.start()
        yield server.create_database()
    finally:
        server.stop()
        server.remove()
