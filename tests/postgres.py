"""A throwaway PostgreSQL server for the tests marked ``postgres``.

``postgres_url`` is a session fixture: it yields ``TEST_DATABASE_URL`` when
that is set (the tests drop and create their tables there, so point it at a
scratch database), otherwise it runs ``initdb`` on a temporary directory,
starts the server on a free loopback port (its socket inside that directory,
trust authentication), creates a database and yields its ``postgresql+psycopg2``
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
STOP_TIMEOUT_SECONDS = 30


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
    """One PostgreSQL cluster in a temporary directory, run as a child of this process.

    A child rather than ``pg_ctl start``'s daemon: the server's exit is reaped here,
    so not even a zombie outlives the session, and a server that will not stop can
    be killed by the pid we started.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        # Not pytest's tmp_path: its parents are private to root, and the server may run
        # as the postgres user, which must reach the data and socket directories.
        self.root = Path(tempfile.mkdtemp(prefix="genonaut-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log = self.root / "server.log"
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            try:
                shutil.chown(self.root, "postgres", "postgres")
                shutil.chown(self.socket_dir, "postgres", "postgres")
            except LookupError:
                shutil.rmtree(self.root)
                raise RuntimeError(
                    "running as root, PostgreSQL needs the 'postgres' user: "
                    "apt-get install --no-install-recommends postgresql"
                ) from None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def init(self) -> None:
        """Create the cluster: trust authentication, no fsync (the data is thrown away)."""
        _run(
            [
                str(self.bin_dir / "initdb"),
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
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            argv = [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.socket_dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
            with self.log.open("ab") as log:
                # Own session: a Ctrl-C meant for pytest must not reach the server first.
                self.process = subprocess.Popen(
                    _as_owner(argv),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=tempfile.gettempdir(),
                    start_new_session=True,
                )
            if self._wait_ready():
                return
            self.stop()
        log_text = self.log.read_text(errors="replace") if self.log.exists() else ""
        raise RuntimeError(
            f"PostgreSQL did not start after {START_ATTEMPTS} attempts; server log:\n{log_text}"
        )

    def _wait_ready(self) -> bool:
        import psycopg2

        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False  # exited: most likely the port was taken meanwhile
            try:
                psycopg2.connect(self.dsn("postgres"), connect_timeout=2).close()
                return True
            except psycopg2.OperationalError:
                time.sleep(0.1)
        return False

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def create_database(self) -> str:
        """Create the test database and return its URL."""
        import psycopg2

        conn = psycopg2.connect(self.dsn("postgres"))
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            conn.close()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def stop(self) -> None:
        """Fast shutdown with pg_ctl; kill the server if it does not go."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            _run(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(STOP_TIMEOUT_SECONDS),
                    "stop",
                ],
                "pg_ctl stop",
            )
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except (RuntimeError, subprocess.TimeoutExpired):
            # SIGQUIT is PostgreSQL's immediate shutdown; the whole session goes with it.
            for sig in (signal.SIGQUIT, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                    process.wait(timeout=10)
                    break
                except ProcessLookupError:
                    break
                except subprocess.TimeoutExpired:
                    continue

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL database: ``TEST_DATABASE_URL`` or a throwaway server."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    bin_dir = Path(require_tool("initdb")).parent
    require_tool("pg_ctl")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.fail("running as root needs runuser (util-linux) to start PostgreSQL as postgres")
    server = Server(bin_dir)
    try:
        server.init()
        server.start()
        yield server.create_database()
    finally:
        server.stop()
        server.remove()
