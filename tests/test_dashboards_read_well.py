"""Dashboards that read well: ranges for bucket bars, named value columns, no probe routes,
empty panels that say why, and every exported metric charted or alerted on."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import attr
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from genonaut_monitoring import alerts, config, dashboards, settings
from genonaut_monitoring import builder as build
from genonaut_monitoring.alerts.promql import hidden_routes_matcher
from genonaut_monitoring.dashboards import common, main
from genonaut_monitoring.dashboards.checks import selected_series, uncovered_metrics
from genonaut_monitoring.exporters import catalogue as m

Board = dict[str, Any]


@pytest.fixture(scope="module")
def boards() -> dict[str, Board]:
    return {Path(p).name: json.loads(c) for p, c in dashboards.outputs(config.CONFIG).items()}


def all_panels(boards: dict[str, Board]) -> list[dict[str, Any]]:
    return [p for board in boards.values() for p in board["panels"]]


def bucket_panels(boards: dict[str, Board]) -> list[tuple[dict[str, Any], m.MetricSpec]]:
    """Bar panels of histogram buckets, each with the metric it shows."""
    found = []
    for p in all_panels(boards):
        targets = p.get("targets", [])
        if p["type"] == "bargauge" and targets and targets[0]["format"] == "heatmap":
            (name,) = selected_series(targets[0]["expr"])
            spec = m.lookup(name)
            assert spec is not None
            found.append((p, spec[0]))
    return found


def exposed_le_values(spec: m.MetricSpec) -> list[str]:
    """The ``le`` values prometheus_client really writes for ``spec``."""
    registry = CollectorRegistry()
    metric = m.Metrics(registry)[spec]
    (metric.labels(*(["x"] * len(spec.labels))) if spec.labels else metric).observe(1)
    text = generate_latest(registry).decode()
    return re.findall(rf'^{spec.name}_bucket{{.*le="([^"]+)"', text, re.M)


def test_bucket_bars_are_named_by_the_values_they_count(boards: dict[str, Board]) -> None:
    shown = bucket_panels(boards)
    assert {spec.name for _, spec in shown} == {
        m.PAGINATION_PAGE_SIZE.name,
        m.PAGINATION_PAGE_NUMBER.name,
        m.PAGINATION_OFFSET.name,
    }
    for p, spec in shown:
        overrides = p["fieldConfig"]["overrides"]
        names = [o["properties"][0]["value"] for o in overrides]
        minimum = 0 if spec is m.PAGINATION_OFFSET else 1
        assert names == [label for _, label in common.bucket_ranges(spec, minimum)]
        # Each le value the client writes is renamed by exactly one override.
        for le in exposed_le_values(spec):
            hits = [o for o in overrides if re.search(o["matcher"]["options"], le)]
            assert len(hits) == 1, (p["title"], le)
        # increase() extrapolates (40.2 requests): the bars show whole counts.
        assert p["targets"][0]["expr"].startswith("round(sum by (le) (increase(")


def test_bucket_ranges_read_like_the_catalogues_own_ranges() -> None:
    offsets = dict(common.bucket_ranges(m.PAGINATION_OFFSET, 0))
    assert offsets[0] == "0"
    assert offsets[100] == "51-100"
    assert m.PAGINATION_OFFSET.buckets is not None
    assert offsets[float("inf")] == f"{int(m.PAGINATION_OFFSET.buckets[-1]) + 1}+"
    sizes = common.bucket_ranges(m.PAGINATION_PAGE_SIZE, 1)
    assert sizes[0] == (1, "1") and sizes[1] == (5, "2-5")
    with pytest.raises(
        ValueError, match=re.escape("database_query_duration_seconds: bucket 0.0005")
    ):
        common.bucket_ranges(m.DB_QUERY_DURATION, 0)


def test_table_value_columns_are_named_and_sorted_by_that_name(boards: dict[str, Board]) -> None:
    tables = [p for p in all_panels(boards) if p["type"] == "table"]
    assert tables
    for p in tables:
        (organize,) = [t for t in p["transformations"] if t["id"] == "organize"]
        name = organize["options"]["renameByName"]["Value"]
        assert name and name != "Value"
        assert p["options"]["sortBy"][0]["displayName"] == name


def test_one_matcher_keeps_probes_scrapes_and_debug_routes_out(boards: dict[str, Board]) -> None:
    matcher = hidden_routes_matcher(config.CONFIG)
    for board in boards.values():
        for variable in board["templating"]["list"]:
            if variable["name"] == "route":
                assert matcher in variable["query"], board["uid"]
    # Every route-scoped query goes through $route, so the picker's list is the filter.
    for p in all_panels(boards):
        for target in p.get("targets", []):
            if "route" in target["expr"] and 'route=~"$route"' not in target["expr"]:
                raise AssertionError(f"{p['title']}: {target['expr']}")


def _hidden(matcher: str) -> re.Pattern[str]:
    match = re.fullmatch(r'route!~(".*")', matcher)
    assert match is not None
    # Prometheus anchors regex matchers at both ends.
    return re.compile(f"^(?:{json.loads(match.group(1))})$")


def test_the_matcher_follows_the_metrics_path_and_the_configured_patterns() -> None:
    demo = _hidden(hidden_routes_matcher(config.CONFIG))
    for route in ("/metrics", "/health", "/debug/faults"):
        assert demo.match(route), route
    for route in ("/api/v1/content", "/api/v1/content/{item_id}", "/metrics/extra", "unmatched"):
        assert not demo.match(route), route
    cfg = replace(
        config.CONFIG,
        services=(config.Service("shop", ("localhost:9000",), metrics_path="/internal/m.txt"),),
        grafana=replace(config.CONFIG.grafana, hidden_routes=("/ping", "/admin/.*")),
    )
    custom = _hidden(hidden_routes_matcher(cfg))
    assert custom.match("/internal/m.txt") and not custom.match("/internal/mXtxt")
    assert custom.match("/admin/users") and custom.match("/ping")
    assert not custom.match("/metrics") and not custom.match("/health")


def test_an_adopter_sets_the_hidden_routes_in_their_config_file(tmp_path: Path) -> None:
    path = tmp_path / "monitoring.toml"
    path.write_text('[grafana]\nhidden_routes = ["/status", "/internal/.*"]\n')
    cfg = settings.load(path)
    assert hidden_routes_matcher(cfg) == 'route!~"/metrics|/status|/internal/.*"'
    path.write_text('[grafana]\nhidden_routes = ["status"]\n')
    with pytest.raises(settings.SettingsError, match="hidden_routes"):
        settings.load(path)


def test_panels_that_are_empty_by_design_say_why(boards: dict[str, Board]) -> None:
    panels = {p["title"]: p for p in all_panels(boards)}
    for p in panels.values():
        if any("frontend_" in t["expr"] for t in p.get("targets", [])):
            assert "Empty until a frontend reports" in p["description"], p["title"]
            assert p["fieldConfig"]["defaults"]["noValue"] == "no lookups reported"
    exceptions = panels["Unhandled exceptions by type and route"]
    assert exceptions["fieldConfig"]["defaults"]["noValue"] == "no unhandled exceptions"
    assert "Empty while no handler raises" in exceptions["description"]


def test_every_exported_metric_is_charted_or_alerted_on() -> None:
    rules = [r for g in alerts.groups(config.CONFIG) for r in g.rules]
    recorded = {r.name: r.expr for r in rules if not isinstance(r, alerts.Alert)}
    assert uncovered_metrics([], recorded)  # nothing charted: everything is reported
    # A build succeeds, so the staged dashboards and alerts cover the whole catalogue.
    staged = build.render(config.CONFIG)
    queries = [
        t["expr"]
        for path, content in staged.items()
        if path.startswith(dashboards.DASHBOARD_DIR)
        for p in json.loads(content)["panels"]
        for t in p.get("targets", [])
    ]
    alerting = [r.expr for r in rules if isinstance(r, alerts.Alert)]
    assert uncovered_metrics([*queries, *alerting], recorded) == []


def test_an_alert_on_a_recording_rule_covers_the_metrics_the_rule_reads() -> None:
    rules = {"job:x:rate5m": "sum by (job) (rate(http_exceptions_total[5m]))"}
    problems = uncovered_metrics(["job:x:rate5m > 0"], rules)
    assert not any("'http_exceptions_total'" in p for p in problems)
    assert any("'pagination_offset'" in p for p in problems)


def test_the_build_names_a_metric_nobody_charts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def without_exceptions(cfg: config.Config) -> Any:
        board = main.dashboard(cfg)
        kept = [p for p in board.panels if p.title != "Unhandled exceptions by type and route"]
        return attr.evolve(board, panels=kept)

    monkeypatch.setitem(dashboards.DASHBOARDS, "main", without_exceptions)
    with pytest.raises(build.BuildError) as caught:
        build.build(config.CONFIG, tmp_path / "out")
    assert (
        "metric 'http_exceptions_total' (exporters/catalogue.py) is exported but no dashboard "
        "panel charts it and no alert reads it: chart it (dashboards/), alert on it (alerts/), "
        "or stop exporting it"
    ) in caught.value.problems
    assert not (tmp_path / "out").exists()
