"""A throwaway PostgreSQL server: for the local stack, the tests and the metric fixture.

``initdb`` on a temporary directory, the server on a free loopback port (its
socket inside that directory, trust authentication on loopback), stopped with
``pg_ctl -m fast`` and removed afterwards; nothing keeps running.

    >>> server = Server(settings={"max_connections": "30"})  # doctest: +SKIP
    >>> server.init(); server.start()                        # doctest: +SKIP
    >>> server.execute(["CREATE DATABASE genonaut"])         # doctest: +SKIP
    >>> server.stop(); server.remove()                       # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from genonaut_monitoring.processes import StackError, free_port

START_ATTEMPTS = 3
START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 30
SUPERUSER = "postgres"
# Debian keeps the server programs out of PATH, one folder per major version.
DEBIAN_BIN_DIRS = "/usr/lib/postgresql/*/bin"


def find_bin(name: str) -> str | None:
    """A PostgreSQL server program (initdb, postgres, pg_ctl): PATH, else Debian's folder."""
    found = shutil.which(name)
    if found is None:
        candidates = sorted(Path("/").glob(f"{DEBIAN_BIN_DIRS.lstrip('/')}/{name}"))
        found = str(candidates[-1]) if candidates else None
    return found


def _as_owner(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the ``postgres`` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", SUPERUSER, "--", *argv]
    return argv


def _run(argv: list[str], what: str) -> None:
    # cwd: the postgres user may not be allowed into the directory we run in.
    result = subprocess.run(
        _as_owner(argv),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tempfile.gettempdir(),
    )
    if result.returncode != 0:
        raise StackError(
            f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n"
            f"{result.stdout}{result.stderr}"
        )


class Server:
    """One PostgreSQL cluster in a temporary directory, run as a child of this process.

    A child rather than ``pg_ctl start``'s daemon: its exit is reaped here, so not
    even a zombie outlives its owner, and a server that will not stop can be killed
    by the pid we started. ``settings`` become ``-c name=value`` options.
    """

    def __init__(self, bin_dir: Path | None = None, settings: Mapping[str, str] | None = None):
        if bin_dir is None:
            initdb = find_bin("initdb")
            if initdb is None:
                raise StackError(
                    "PostgreSQL is not installed: apt-get install --no-install-recommends "
                    "postgresql (initdb, postgres and pg_ctl)"
                )
            bin_dir = Path(initdb).parent
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            raise StackError("running as root needs runuser (util-linux) to start PostgreSQL")
        self.bin_dir = bin_dir
        self.settings = dict(settings or {})
        # Not a caller's folder: its parents may be private to root, and the server may
        # run as the postgres user, which must reach the data and socket directories.
        self.root = Path(tempfile.mkdtemp(prefix="genonaut-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "run"
        self.log = self.root / "server.log"
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            try:
                shutil.chown(self.root, SUPERUSER, SUPERUSER)
                shutil.chown(self.socket_dir, SUPERUSER, SUPERUSER)
            except LookupError:
                shutil.rmtree(self.root)
                raise StackError(
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
                SUPERUSER,
                "--auth=trust",
                "--no-locale",
                "--encoding=UTF8",
                "--no-sync",
            ],
            "initdb",
        )

    def start(self) -> None:
        """Start on a free port; retried, since another process may take the port first."""
        options = {
            "listen_addresses": "127.0.0.1",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            **self.settings,
        }
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            argv = [
                str(self.bin_dir / "postgres"),
                *("-D", str(self.data), "-p", str(self.port), "-k", str(self.socket_dir)),
                *(arg for name, value in options.items() for arg in ("-c", f"{name}={value}")),
            ]
            with self.log.open("ab") as log:
                # Own process group: a Ctrl-C meant for the caller must not reach the server
                # first. The caller's session still, so it can find everything it started.
                self.process = subprocess.Popen(
                    _as_owner(argv),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=tempfile.gettempdir(),
                    process_group=0,
                )
            if self._wait_ready():
                return
            self.stop()
        raise StackError(
            f"PostgreSQL did not start after {START_ATTEMPTS} attempts; server log:\n{self.tail()}"
        )

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _wait_ready(self) -> bool:
        import psycopg2

        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                return False  # exited: most likely the port was taken meanwhile
            try:
                psycopg2.connect(self.dsn(SUPERUSER), connect_timeout=2).close()
                return True
            except psycopg2.OperationalError:
                time.sleep(0.1)
        return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def dsn(self, database: str, user: str = SUPERUSER) -> str:
        """A libpq keyword/value connection string (trust authentication: no password)."""
        return f"host=127.0.0.1 port={self.port} user={user} dbname={database}"

    def url(self, database: str, user: str = SUPERUSER, driver: str = "") -> str:
        """``postgresql[+driver]://user@127.0.0.1:port/database``."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{user}@127.0.0.1:{self.port}/{database}"

    def execute(self, statements: Iterable[str], database: str = SUPERUSER) -> None:
        """Run statements as the superuser, each in its own autocommit transaction."""
        import psycopg2

        conn = psycopg2.connect(self.dsn(database))
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            conn.close()

    def stop(self) -> None:
        """Fast shutdown with pg_ctl; kill the server if it does not go."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            _run(
                [
                    str(self.bin_dir / "pg_ctl"),
                    *("-D", str(self.data), "-m", "fast", "-w"),
                    *("-t", str(STOP_TIMEOUT_SECONDS), "stop"),
                ],
                "pg_ctl stop",
            )
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except (StackError, subprocess.TimeoutExpired):
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
