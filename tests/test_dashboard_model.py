"""Dashboards are written the way Grafana 11.6 writes them, so loading one migrates nothing.

The defaults pass (dashboards/model.py, called from dashboards.to_data) sets what
grafanalib cannot express: the current schemaVersion, every panel's
pluginVersion and the plugin options Grafana 11.6 requires.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grafanalib.core as g
import pytest

from genonaut_monitoring import config, dashboards
from genonaut_monitoring.dashboards import common, model
from genonaut_monitoring.dashboards.checks import check_dashboards

Board = dict[str, Any]
TIME_UNITS = {"ns", "µs", "us", "ms", "s", "m", "h", "d"}


@pytest.fixture(scope="module", params=sorted(config.PROFILES))
def boards(request: pytest.FixtureRequest) -> dict[str, Board]:
    cfg = config.PROFILES[request.param]
    return {Path(p).name: json.loads(c) for p, c in dashboards.outputs(cfg).items()}


def panels(boards: dict[str, Board]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, p) for name, board in sorted(boards.items()) for p in board["panels"]]


def test_dashboards_are_at_grafana_11_6s_schema_version(boards: dict[str, Board]) -> None:
    # Grafana migrates a dashboard from its schemaVersion up on every load; at its own
    # version (41 in 11.6) nothing runs, so what the build writes is what Grafana shows.
    assert model.SCHEMA_VERSION == 41
    for name, board in boards.items():
        assert board["schemaVersion"] == model.SCHEMA_VERSION, name


def test_the_shared_crosshair_survives_loading(boards: dict[str, Board]) -> None:
    # Below schemaVersion 14 the migrator sets graphTooltip from the legacy sharedCrosshair
    # key, which the build strips: at grafanalib's 12 the crosshair would be turned off.
    for name, board in boards.items():
        assert board["graphTooltip"] == g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR == 1, name
        assert board["schemaVersion"] >= 14, name
        assert "sharedCrosshair" not in board, name


def test_every_panel_carries_the_plugin_version(boards: dict[str, Board]) -> None:
    # Without it Grafana re-runs each plugin's migrations on every load; the single-stat
    # handler then pins percentunit stats to min 0 / max 1, flattening their sparklines.
    for name, p in panels(boards):
        assert p["pluginVersion"] == model.PLUGIN_VERSION == "11.6.0", (name, p["title"])
    percent_stats = [
        p for _, p in panels(boards) if p["type"] == "stat" and "percent" in str(p["fieldConfig"])
    ]
    assert percent_stats
    for p in percent_stats:
        defaults = p["fieldConfig"]["defaults"]
        assert "min" not in defaults and "max" not in defaults, p["title"]


def test_heatmap_cells_count_while_the_y_axis_keeps_the_bucket_unit(
    boards: dict[str, Board],
) -> None:
    # The heatmap gives its cells the first bucket field's config, unit included: the
    # field unit (s) is the y axis, so the cells need a count unit of their own.
    heatmaps = [p for _, p in panels(boards) if p["type"] == "heatmap"]
    assert heatmaps
    for p in heatmaps:
        options = p["options"]
        assert options["yAxis"]["unit"] == p["fieldConfig"]["defaults"]["unit"] == "s"
        assert options["cellValues"]["unit"] == "short"
        assert options["cellValues"]["unit"] not in TIME_UNITS


def test_dashboards_carry_what_grafana_writes_itself(boards: dict[str, Board]) -> None:
    for name, board in boards.items():
        builtin = board["annotations"]["list"][0]
        assert builtin["builtIn"] == 1 and builtin["name"] == "Annotations & Alerts", name
        assert builtin["datasource"] == {"type": "grafana", "uid": "-- Grafana --"}
        assert board["fiscalYearStartMonth"] == 0
        assert "time_options" not in board["timepicker"]  # removed by Grafana's v41 step


def test_the_defaults_pass_completes_what_grafanalib_cannot_write() -> None:
    # grafanalib's Stat has no field for the options Grafana 11.6 requires
    # (percentChangeColorMode, showPercentChange, wideLayout) nor for pluginVersion.
    stat = g.Stat(title="s", dataSource=common.PROMETHEUS, colorMode="background")
    board = g.Dashboard(title="t", panels=[stat]).auto_panel_ids()
    data = dashboards.to_data(board)
    (panel,) = data["panels"]
    assert panel["pluginVersion"] == model.PLUGIN_VERSION
    assert panel["options"]["colorMode"] == "background"  # what a panel sets wins
    for key, value in model.PANEL_DEFAULTS["stat"].items():
        assert key in panel["options"], key
        if key != "orientation":  # grafanalib writes its own
            assert panel["options"][key] == value
    assert data["schemaVersion"] == model.SCHEMA_VERSION


def test_merge_missing_keeps_what_is_set_and_copies_what_is_not() -> None:
    defaults: dict[str, Any] = {"a": 1, "nested": {"b": 2, "c": [3]}}
    target: dict[str, Any] = {"a": 9, "nested": {"b": 8}}
    model.merge_missing(target, defaults)
    assert target == {"a": 9, "nested": {"b": 8, "c": [3]}}
    target["nested"]["c"].append(4)
    assert defaults["nested"]["c"] == [3]  # no shared lists between panels


def test_the_build_check_refuses_an_old_schema_or_a_missing_plugin_version(
    boards: dict[str, Board],
) -> None:
    name, board = next(iter(sorted(boards.items())))
    stale = json.loads(json.dumps(board))
    stale["schemaVersion"] = 12
    del stale["panels"][0]["pluginVersion"]
    problems = check_dashboards({name: stale}, {}, {})
    uid = board["uid"]
    title = board["panels"][0]["title"]
    assert (
        f"dashboard {uid!r} ({name}): schemaVersion is 12, not 41: Grafana would migrate it "
        "on every load; leave it to the defaults pass (dashboards/model.py)"
    ) in problems
    assert (
        f"dashboard {uid!r} ({name}), panel {title!r}: pluginVersion is None, not '11.6.0': "
        "Grafana would re-run the plugin's migrations on every load"
    ) in problems
