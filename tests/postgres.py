"""A throwaway PostgreSQL server for the tests marked ``postgres``.

``postgres_url`` is a session fixture: it yields ``TEST_DATABASE_URL`` when
that is set (the tests drop and create their tables there, so point it at a
scratch database), otherwise it starts a :class:`~genonaut_monitoring.pgserver.Server`
(``initdb`` on a temporary directory, a free loopback port, trust
authentication), creates a database and yields its ``postgresql+psycopg2``
URL. At the end of the session the server is stopped and the directory
removed; nothing keeps running. Use it from a test module with::

    from tests.postgres import postgres_url  # noqa: F401
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from genonaut_monitoring.pgserver import Server
from tests.conftest import require_tool

DATABASE = "genonaut_test"


def throwaway_server(settings: dict[str, str] | None = None) -> Server:
    """A started server on a fresh cluster; the caller stops and removes it."""
    bin_dir = Path(require_tool("initdb")).parent
    require_tool("pg_ctl")
    server = Server(bin_dir, settings)
    try:
        server.init()
        server.start()
    except BaseException:
        server.stop()
        server.remove()
        raise
    return server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL database: ``TEST_DATABASE_URL`` or a throwaway server."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    server = throwaway_server()
    try:
        server.execute([f"CREATE DATABASE {DATABASE}"])
        yield server.url(DATABASE, driver="psycopg2")
    finally:
        server.stop()
        server.remove()
