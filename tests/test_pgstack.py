"""The local stack's PostgreSQL parts: its own server, the exporter, what `up` chooses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from genonaut_monitoring import config, pgstack
from genonaut_monitoring.stack import Stack, StackError
from tests.conftest import require_tool


@pytest.mark.postgres
def test_the_exporter_watches_the_stacks_own_server_as_the_monitoring_role(
    tmp_path: Path,
) -> None:
    require_tool("prometheus-postgres-exporter")
    require_tool("initdb")
    with Stack(tmp_path, components=pgstack.COMPONENTS) as stack:
        assert stack.pg.server is not None
        root, pid = stack.pg.server.root, stack.pg.server.process.pid  # type: ignore[union-attr]
        metrics = requests.get(f"{stack.pg.exporter_url}/metrics", timeout=10).text
        assert "\npg_up 1\n" in metrics
        # The custom queries with pg_stat_statements, which the stack's server loads.
        assert "\npg_stat_statements_calls_total{" in metrics
        exporter = stack.processes[pgstack.EXPORTER]
        dsn = exporter.env["DATA_SOURCE_NAME"]
        assert dsn.startswith(f"postgresql://{stack.cfg.postgres.monitor_role}@127.0.0.1:")
        assert stack.cfg.postgres.targets == (f"127.0.0.1:{stack.ports.postgres_exporter}",)
        # The demo API would run on that server, as its own role.
        assert stack._api_env()["DATABASE_URL"] == stack.pg.database_url()
        # The connection string is in the exporter's environment only, never in a file.
        port = f":{stack.pg.server.port}/"
        for path in stack.out.rglob("*"):
            assert not path.is_file() or port not in path.read_text(), path
        assert "PostgreSQL" in stack.urls() and "PG exporter" in stack.urls()
    assert not root.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_without_a_server_or_a_connection_string_the_exporter_will_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in pgstack.DSN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(StackError) as raised, Stack(tmp_path, components={pgstack.EXPORTER}):
        pass
    assert "set DATA_SOURCE_NAME" in str(raised.value)


def test_a_stack_without_the_exporter_has_no_postgres_job(tmp_path: Path) -> None:
    stack = Stack(tmp_path, components={"prometheus"})
    assert stack.cfg.postgres.targets == ()
    scraping_own = Stack(tmp_path, components={"prometheus"}, own_targets=True)
    assert scraping_own.cfg.postgres.targets == config.TEST_CONFIG.postgres.targets


def test_up_watches_the_database_the_environment_names_else_runs_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in pgstack.DSN_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert pgstack.components_for_up(no_postgres=True, demo=True) == (frozenset(), None)
    components, note = pgstack.components_for_up(no_postgres=False, demo=False)
    assert components == frozenset() and note is not None and "DATA_SOURCE_NAME" in note
    monkeypatch.setattr(pgstack, "find_bin", lambda name: None)
    components, note = pgstack.components_for_up(no_postgres=False, demo=True)
    assert components == frozenset()
    assert note is not None and "apt-get install --no-install-recommends postgresql" in note
    monkeypatch.setenv("DATA_SOURCE_NAME", "postgresql://m:pw@db:5432/app")
    assert pgstack.components_for_up(no_postgres=False, demo=False) == (
        frozenset({pgstack.EXPORTER}),
        None,
    )
