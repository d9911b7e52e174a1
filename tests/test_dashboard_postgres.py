"""The PostgreSQL server dashboard, from a real build: exporter series only, scoped, linked."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from genonaut_monitoring import alerts, builder, config
from genonaut_monitoring.alerts import postgres as postgres_alerts
from genonaut_monitoring.alerts import recording
from genonaut_monitoring.dashboards.checks import substitute
from genonaut_monitoring.exporters import external

CFG = config.CONFIG
_SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("build") / "out"
    builder.build(CFG, out)
    uid = CFG.grafana.dashboard_uids["postgres"]
    data: dict[str, Any] = json.loads((out / f"grafana/dashboards/{uid}.json").read_text())
    return data


def panels(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for p in board["panels"]}


def test_it_shows_what_a_postgres_outage_needs(board: dict[str, Any]) -> None:
    assert list(panels(board)) == [
        "PostgreSQL up",
        "Connections by state",
        "Connections used",
        "Lock waits",
        "Locks by mode",
        "Deadlocks",
        "Commits and rollbacks",
        "Buffer cache hit ratio",
        "Longest transaction",
        "Longest idle in transaction",
        "Database size",
        "Top statements by total time",
    ]


def test_every_query_selects_recorded_exporter_series_scoped_by_the_variables(
    board: dict[str, Any],
) -> None:
    recorded = external.catalogue(external.POSTGRES_EXPORTER)
    # Recording rules over exporter series count as the series they read (a panel an
    # alert links to draws the alert's rule).
    rules = {rule.name: rule.expr for rule in recording.rules(CFG)}
    for title, panel in panels(board).items():
        for target in panel["targets"]:
            selectors = _SELECTOR.findall(target["expr"])
            assert selectors, (title, target["expr"])
            for name, matchers in selectors:
                if name in rules:
                    (name,) = {n for n, _ in _SELECTOR.findall(rules[name])}
                assert name in recorded, (title, name)
                assert 'job="$job"' in matchers and 'instance=~"$instance"' in matchers, title
                # Totals against max_connections count every database, on purpose.
                if "datname" in recorded[name].labels and title != "Connections used":
                    assert 'datname=~"$datname"' in matchers, (title, name)


def test_connections_used_divides_like_its_alert(board: dict[str, Any]) -> None:
    (target,) = panels(board)["Connections used"]["targets"]
    alert_expr = postgres_alerts.connections_share(CFG)
    # The same series and join; the alert groups by job too, the panel has one job.
    assert "/ on (instance, server)" in target["expr"]
    assert "/ on (job, instance, server)" in alert_expr
    names = {n for n, _ in _SELECTOR.findall(substitute(target["expr"]))}
    assert names == {n for n, _ in _SELECTOR.findall(alert_expr)}


def test_top_statements_is_an_instant_table_of_the_range(board: dict[str, Any]) -> None:
    panel = panels(board)["Top statements by total time"]
    (target,) = panel["targets"]
    assert panel["type"] == "table"
    assert (target["instant"], target["format"]) == (True, "table")
    assert target["expr"].startswith("topk(10, sum by (datname, queryid, query) (increase(")
    assert "[$__range]" in target["expr"]


def test_variables_pick_the_exporter_job_and_databases(board: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["job"]["query"] == f'label_values(pg_up{{job="{CFG.postgres.job}"}}, job)'
    assert variables["job"]["current"]["value"] == CFG.postgres.job
    assert variables["datname"]["query"] == (
        'label_values(pg_database_size_bytes{job="$job",instance=~"$instance"}, datname)'
    )
    assert variables["datname"]["includeAll"] is True


def test_every_postgres_alert_links_a_panel_of_this_dashboard() -> None:
    uid = CFG.grafana.dashboard_uids["postgres"]
    ids = alerts.dashboard_panel_ids(CFG)
    for alert in postgres_alerts.alerts(CFG):
        assert alert.panel is not None and alert.panel.dashboard == "postgres", alert.name
        assert (uid, alert.panel.title) in ids, alert.name
