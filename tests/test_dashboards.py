"""The generated dashboards: panels, queries, config thresholds, and the checks guarding them."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import attr
import grafanalib.core as g
import pytest

from genonaut_monitoring import alerts, config, dashboards
from genonaut_monitoring import builder as build
from genonaut_monitoring.alerts import recording as r
from genonaut_monitoring.alerts.promql import hidden_routes_matcher
from genonaut_monitoring.dashboards import common, main
from genonaut_monitoring.dashboards.checks import check_dashboards, substitute, variables_in
from genonaut_monitoring.exporters import catalogue as m

CFG = config.CONFIG
UIDS = CFG.grafana.dashboard_uids
T = CFG.thresholds

Board = dict[str, Any]


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Board]:
    """The three dashboards from a real build, keyed main/pagination/database."""
    out = tmp_path_factory.mktemp("build") / "out"
    build.build(CFG, out)
    return {
        key: json.loads((out / f"grafana/dashboards/{uid}.json").read_text())
        for key, uid in UIDS.items()
    }


def panel(board: Board, title: str) -> dict[str, Any]:
    found = [p for p in board["panels"] if p["title"] == title]
    assert len(found) == 1, f"{board['uid']} has {len(found)} panels titled {title!r}"
    return found[0]


def exprs(p: dict[str, Any]) -> list[str]:
    return [t["expr"] for t in p["targets"]]


def steps(p: dict[str, Any]) -> list[dict[str, Any]]:
    return list(p["fieldConfig"]["defaults"]["thresholds"]["steps"])


# (dashboard, panel title, panel type, series every query selects, text each query has)
PANELS = [
    ("main", "Request rate by route", "timeseries", m.HTTP_REQUESTS.name, "sum by (route)"),
    ("main", "Response time", "timeseries", "http_request_duration_seconds_bucket", "by (le)"),
    ("main", "p95 response time by route", "timeseries", r.http_duration_p95(CFG), "$route"),
    ("main", "p95 response time", "stat", r.http_duration_buckets(CFG), "by (le)"),
    ("main", "5xx ratio", "stat", r.http_error_ratio(CFG), 'job="$job"'),
    ("main", "Errors by status code", "timeseries", m.HTTP_REQUESTS.name, "sum by (status)"),
    ("main", "Requests in progress", "timeseries", m.HTTP_REQUESTS_IN_PROGRESS.name, "method"),
    ("main", "Process CPU", "timeseries", "process_cpu_seconds_total", "rate("),
    ("main", "Process memory (RSS)", "timeseries", "process_resident_memory_bytes", "job="),
    (
        "main",
        "Database query time p95 by operation",
        "timeseries",
        r.db_duration_buckets(CFG),
        "by (le, operation)",
    ),
    (
        "main",
        "Pagination query time p95 by mode",
        "timeseries",
        r.pagination_query_buckets(CFG),
        "by (le, mode)",
    ),
    ("pagination", "Pagination query time", "timeseries", r.pagination_query_p95(CFG), "$route"),
    (
        "pagination",
        "Query time by page size",
        "timeseries",
        "pagination_query_duration_seconds_bucket",
        "by (le, page_size_class)",
    ),
    (
        "pagination",
        "Response time by offset range",
        "timeseries",
        r.pagination_offset_p95(CFG),
        'offset_range!="none"',
    ),
    (
        "pagination",
        "Offset vs cursor: response time",
        "timeseries",
        "pagination_request_duration_seconds_bucket",
        "by (le, mode)",
    ),
    (
        "pagination",
        "Page size distribution",
        "bargauge",
        "pagination_page_size_bucket",
        "sum by (le)",
    ),
    (
        "pagination",
        "Most requested pages",
        "bargauge",
        "pagination_page_number_bucket",
        "sum by (le)",
    ),
    ("pagination", "Requests by offset range", "bargauge", "pagination_offset_bucket", "by (le)"),
    (
        "main",
        "Unhandled exceptions by type and route",
        "timeseries",
        m.HTTP_EXCEPTIONS.name,
        "sum by (exception, route)",
    ),
    (
        "pagination",
        "Most expensive pagination queries",
        "table",
        "pagination_query_duration_seconds_bucket",
        "by (le, route, offset_range)",
    ),
    (
        "pagination",
        "Items returned per page",
        "timeseries",
        "pagination_items_returned_sum",
        "pagination_items_returned_count",
    ),
    (
        "pagination",
        "Frontend cache hit rate",
        "timeseries",
        m.FRONTEND_CACHE_REQUESTS.name,
        'result="hit"',
    ),
    ("pagination", "Prefetch efficiency", "timeseries", m.FRONTEND_PREFETCHES.name, "used"),
    ("database", "Query time", "timeseries", "database_query_duration_seconds_bucket", "by (le)"),
    (
        "database",
        "Query time p95 by operation and table",
        "timeseries",
        r.db_duration_p95(CFG),
        'job="$job"',
    ),
    (
        "database",
        "Query time distribution",
        "heatmap",
        "database_query_duration_seconds_bucket",
        "sum by (le)",
    ),
    (
        "database",
        "Query rate by operation and table",
        "timeseries",
        "database_query_duration_seconds_count",
        "by (operation, table)",
    ),
    (
        "database",
        "Slow queries",
        "timeseries",
        r.db_slow_queries_rate(CFG),
        f"or 0 * {r.db_queries_rate(CFG)}{{",
    ),
    ("database", "Database errors", "timeseries", r.db_faults_rate(CFG), 'job="$job"'),
    (
        "database",
        "Failed statements by operation and table",
        "timeseries",
        m.DB_QUERY_ERRORS.name,
        "or 0 * rate(database_query_duration_seconds_count{",
    ),
    ("database", "Pool saturation", "timeseries", r.pool_saturation(CFG), "$instance"),
    ("database", "Pool saturation now", "gauge", r.pool_saturation(CFG), "$instance"),
    (
        "database",
        "Pool checkout timeouts",
        "timeseries",
        r.checkout_timeouts_increase(CFG),
        "$instance",
    ),
    ("database", "Server cache hit rate", "timeseries", m.CACHE_REQUESTS.name, 'result="hit"'),
]


@pytest.mark.parametrize(("key", "title", "kind", "series", "text"), PANELS)
def test_panel_exists_with_its_query(
    boards: dict[str, Board], key: str, title: str, kind: str, series: str, text: str
) -> None:
    p = panel(boards[key], title)
    assert p["type"] == kind
    assert p["targets"], title
    for expr in exprs(p):
        assert re.search(rf"(?<![\w:]){re.escape(series)}\{{", expr), expr
        assert text in expr, expr


def test_error_rate_draws_the_alerts_ratio_and_each_routes_over_the_same_window(
    boards: dict[str, Board],
) -> None:
    overall, per_route = exprs(panel(boards["main"], "Error rate"))
    assert overall == f'{r.http_error_ratio(CFG)}{{job="$job"}}'
    assert per_route.count(f"{r.http_requests_rate(CFG)}{{") == 3
    assert "$__rate_interval" not in per_route


def test_response_time_panels_show_p50_p95_p99(boards: dict[str, Board]) -> None:
    for key, title in (("main", "Response time"), ("database", "Query time")):
        p = panel(boards[key], title)
        assert [e.split(",")[0] for e in exprs(p)] == [
            "histogram_quantile(0.5",
            "histogram_quantile(0.95",
            "histogram_quantile(0.99",
        ]
        assert [t["legendFormat"] for t in p["targets"]] == ["p50", "p95", "p99"]


def test_pool_saturation_divides_checked_out_by_size_plus_overflow(
    boards: dict[str, Board],
) -> None:
    (record,) = [rule for rule in r.rules(CFG) if rule.name == r.pool_saturation(CFG)]
    assert " ".join(record.expr.split()) == (
        'database_connection_pool_checked_out{job="genonaut-api"}'
        ' / ((database_connection_pool_size{job="genonaut-api"}'
        ' + database_connection_pool_max_overflow{job="genonaut-api"}) > 0)'
    )
    expr = exprs(panel(boards["database"], "Pool saturation"))[0]
    assert expr == f'{r.pool_saturation(CFG)}{{job="$job",instance=~"$instance"}}'


def test_most_expensive_queries_is_a_sorted_instant_table(boards: dict[str, Board]) -> None:
    p = panel(boards["pagination"], "Most expensive pagination queries")
    (target,) = p["targets"]
    assert target["instant"] is True and target["format"] == "table"
    assert target["expr"].startswith("topk(10, histogram_quantile(0.95,")
    assert "[$__range]" in target["expr"]
    # The value column is named, and sorted by that name.
    (organize,) = p["transformations"]
    assert organize["options"]["renameByName"] == {"Value": "p95 page query time"}
    assert p["options"]["sortBy"] == [{"desc": True, "displayName": "p95 page query time"}]


def test_distributions_use_heatmap_format_so_grafana_unstacks_buckets(
    boards: dict[str, Board],
) -> None:
    for title in ("Page size distribution", "Most requested pages", "Requests by offset range"):
        (target,) = panel(boards["pagination"], title)["targets"]
        assert (target["format"], target["instant"], target["legendFormat"]) == (
            "heatmap",
            True,
            "{{le}}",
        )
    heat = panel(boards["database"], "Query time distribution")
    assert heat["targets"][0]["format"] == "heatmap"
    assert heat["options"]["calculate"] is False


def test_firing_alerts_lists_prometheus_rules(boards: dict[str, Board]) -> None:
    p = panel(boards["main"], "Firing alerts")
    assert p["type"] == "alertlist"
    assert p["options"]["datasource"] == CFG.grafana.prometheus_name
    assert p["options"]["stateFilter"]["firing"] is True
    assert "targets" not in p or p["targets"] == []


# (dashboard, panel title, the config threshold its first non-base step must equal, colours)
THRESHOLDS = [
    ("main", "Error rate", T.error_ratio, ("green", "red")),
    ("main", "5xx ratio", T.error_ratio, ("green", "red")),
    ("main", "Response time", T.latency_p95_seconds, ("green", "red")),
    ("main", "p95 response time by route", T.latency_p95_seconds, ("green", "red")),
    ("main", "p95 response time", T.latency_p95_seconds, ("green", "red")),
    ("main", "Database query time p95 by operation", T.db_query_p95_seconds, ("green", "red")),
    (
        "main",
        "Pagination query time p95 by mode",
        T.pagination_query_p95_seconds,
        ("green", "red"),
    ),
    ("pagination", "Pagination query time", T.pagination_query_p95_seconds, ("green", "red")),
    (
        "pagination",
        "Most expensive pagination queries",
        T.pagination_query_p95_seconds,
        ("green", "red"),
    ),
    ("pagination", "Response time by offset range", T.deep_offset_p95_seconds, ("green", "red")),
    ("pagination", "Frontend cache hit rate", T.cache_hit_ratio_min, ("red", "green")),
    ("pagination", "Prefetch efficiency", T.prefetch_efficiency_min, ("red", "green")),
    ("database", "Query time", T.db_query_p95_seconds, ("green", "red")),
    ("database", "Slow queries", T.slow_queries_per_second, ("green", "red")),
    ("database", "Database errors", T.db_errors_per_second, ("green", "red")),
    ("database", "Pool saturation", T.pool_saturation_ratio, ("green", "red")),
    ("database", "Pool saturation now", T.pool_saturation_ratio, ("green", "red")),
    ("database", "Server cache hit rate", T.cache_hit_ratio_min, ("red", "green")),
]


@pytest.mark.parametrize(("key", "title", "value", "colours"), THRESHOLDS)
def test_threshold_comes_from_config(
    boards: dict[str, Board], key: str, title: str, value: float, colours: tuple[str, str]
) -> None:
    assert steps(panel(boards[key], title)) == [
        {"color": colours[0], "value": None},
        {"color": colours[1], "value": value},
    ]


def test_thresholds_follow_a_changed_config() -> None:
    changed = replace(
        CFG,
        thresholds=replace(T, error_ratio=0.123, pool_saturation_ratio=0.77, deep_offset_min=500),
    )
    rendered = dashboards.render(changed)
    assert steps(panel(rendered["main"], "Error rate"))[1]["value"] == 0.123
    assert steps(panel(rendered["database"], "Pool saturation now"))[1]["value"] == 0.77
    deep = panel(rendered["pagination"], "Deep offset share")["targets"][0]["expr"]
    assert offset_ranges_matched(deep) == ["1001-10000", "10001-100000", "100001+"]


def offset_ranges_matched(expr: str) -> list[str]:
    """The offset_range values the expression's ``=~`` matcher selects, as Prometheus reads it."""
    (quoted,) = re.findall(r'offset_range=~("(?:[^"\\]|\\.)*")', expr)
    pattern = json.loads(quoted)  # a PromQL double-quoted string unescapes like JSON here
    labels = [label for _, label in m.OFFSET_RANGES]
    return [label for label in labels if re.fullmatch(pattern, label)]


def test_deep_offset_share_and_its_alert_select_the_same_ranges(boards: dict[str, Board]) -> None:
    deep = panel(boards["pagination"], "Deep offset share")["targets"][0]["expr"]
    (alert,) = [a for a in alerts.all_alerts(CFG) if a.name == "PaginationDeepOffsetSlow"]
    expected = m.offset_ranges_from(T.deep_offset_min)
    assert expected == ["10001-100000", "100001+"]
    assert offset_ranges_matched(deep) == expected
    assert offset_ranges_matched(alert.expr) == expected


def test_timeseries_thresholds_draw_dashed_lines(boards: dict[str, Board]) -> None:
    custom = panel(boards["main"], "Error rate")["fieldConfig"]["defaults"]["custom"]
    assert custom["thresholdsStyle"] == {"mode": "dashed"}
    plain = panel(boards["main"], "Request rate by route")["fieldConfig"]["defaults"]["custom"]
    assert plain["thresholdsStyle"] == {"mode": "off"}


LEGACY = {"graph", "singlestat", "grafana-piechart-panel", "grafana-worldmap-panel", "table-old"}


def test_only_modern_panel_types(boards: dict[str, Board]) -> None:
    kinds = {p["type"] for board in boards.values() for p in board["panels"]}
    assert not kinds & LEGACY
    assert kinds == {
        "timeseries",
        "stat",
        "gauge",
        "bargauge",
        "table",
        "heatmap",
        "piechart",
        "alertlist",
    }


def test_every_panel_has_description_unit_and_datasource(boards: dict[str, Board]) -> None:
    for board in boards.values():
        for p in board["panels"]:
            assert len(p["description"]) > 40, (board["uid"], p["title"])
            if p["type"] == "alertlist":
                continue
            assert p["fieldConfig"]["defaults"]["unit"], (board["uid"], p["title"])
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            for target in p["targets"]:
                assert target["datasource"] == p["datasource"]


def test_rates_use_grafana_intervals(boards: dict[str, Board]) -> None:
    for board in boards.values():
        for p in board["panels"]:
            for expr in exprs(p) if "targets" in p else []:
                windows = re.findall(r"\}\[([^\]]+)\]", expr)
                assert len(windows) == len(re.findall(r"\b(rate|increase)\(", expr)), expr
                assert set(windows) <= {"$__rate_interval", "$__range"}, (p["title"], expr)


def test_house_defaults_are_stamped(boards: dict[str, Board]) -> None:
    for key, board in boards.items():
        assert board["uid"] == UIDS[key]
        assert board["tags"] == [*CFG.grafana.tags, key]
        assert (board["refresh"], board["timezone"]) == (CFG.grafana.refresh, "browser")
        assert board["time"] == {"from": CFG.grafana.time_from, "to": "now"}
        ids = [p["id"] for p in board["panels"]]
        assert ids == list(range(1, len(ids) + 1))
        link, *own = board["links"]
        assert (link["type"], link["tags"], link["keepTime"], link["includeVars"]) == (
            "dashboards",
            [CFG.grafana.tags[0]],
            True,
            True,
        )
        assert all(extra["type"] == "link" for extra in own), key


def test_titles_start_with_the_configured_app_name(boards: dict[str, Board]) -> None:
    for key, board in boards.items():
        assert board["title"].startswith(f"{CFG.grafana.title}: "), key
        assert board["links"][0]["title"] == f"{CFG.grafana.title} dashboards"
    renamed = dashboards.render(replace(CFG, grafana=replace(CFG.grafana, title="Acme API")))
    for key, board in renamed.items():
        own = boards[key]["title"].removeprefix(f"{CFG.grafana.title}: ")
        assert (board["title"], board["links"][0]["title"]) == (
            f"Acme API: {own}",
            "Acme API dashboards",
        ), key


def test_database_and_postgres_dashboards_link_to_each_other(boards: dict[str, Board]) -> None:
    for key, other in (("database", "postgres"), ("postgres", "database")):
        links = [link for link in boards[key]["links"] if link["type"] == "link"]
        assert [link["url"] for link in links] == [f"/d/{UIDS[other]}"], key
        assert links[0]["keepTime"] is True


def test_variables(boards: dict[str, Board]) -> None:
    expected = {
        "main": ["datasource", "job", "instance", "route"],
        "pagination": ["datasource", "job", "instance", "route"],
        "database": ["datasource", "job", "instance"],
        "postgres": ["datasource", "job", "instance", "datname"],
        # One SLO at a time: the SLO belongs to a job, not to an instance.
        "slo": ["datasource", "job", "slo"],
    }
    jobs = {key: CFG.jobs[0] for key in expected} | {"postgres": CFG.postgres.job}
    for key, board in boards.items():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert list(variables) == expected[key]
        source = variables["datasource"]
        assert (source["type"], source["query"], source["current"]["value"]) == (
            "datasource",
            "prometheus",
            CFG.grafana.prometheus_uid,
        )
        assert variables["job"]["current"]["value"] == jobs[key]
        if "instance" not in variables:
            continue
        assert variables["instance"]["query"].startswith("label_values(")
        assert variables["instance"]["query"].endswith('{job="$job"}, instance)')
        assert variables["instance"]["datasource"] == {
            "type": "prometheus",
            "uid": "${datasource}",
        }
    assert {v["name"]: v for v in boards["main"]["templating"]["list"]}["route"][
        "query"
    ] == f'label_values(http_requests_total{{job="$job",{hidden_routes_matcher(CFG)}}}, route)'


def test_no_nulls_except_threshold_base_steps(boards: dict[str, Board]) -> None:
    def nulls(node: Any, path: str) -> list[str]:
        if isinstance(node, dict):
            found = [f"{path}.{k}" for k, v in node.items() if v is None]
            if set(node) == {"color", "value"}:
                found = []
            return found + [x for k, v in node.items() for x in nulls(v, f"{path}.{k}")]
        if isinstance(node, list):
            return [x for i, v in enumerate(node) for x in nulls(v, f"{path}[{i}]")]
        return []

    for board in boards.values():
        assert nulls(board, board["uid"]) == []
        text = json.dumps(board)
        assert '"steps": ""' not in text
        assert '"maxDataPoints"' not in text


def test_grid_is_filled_row_by_row_without_gaps(boards: dict[str, Board]) -> None:
    for board in boards.values():
        rows: dict[int, list[dict[str, int]]] = {}
        for p in board["panels"]:
            rows.setdefault(p["gridPos"]["y"], []).append(p["gridPos"])
        for y, cells in rows.items():
            assert sum(c["w"] for c in cells) == 24, (board["uid"], y)
            xs = [c["x"] for c in cells]
            assert xs == sorted(xs) and xs[0] == 0


# --- the layout helper ------------------------------------------------------------


def test_layout_splits_free_columns_and_stacks_rows() -> None:
    a, b, c, d = (g.Text(title=t) for t in "abcd")
    placed = common.layout(common.row(4, a, b, (c, 10)), common.row(6, d))
    assert [(p.title, p.gridPos.x, p.gridPos.w, p.gridPos.y, p.gridPos.h) for p in placed] == [
        ("a", 0, 7, 0, 4),
        ("b", 7, 7, 0, 4),
        ("c", 14, 10, 0, 4),
        ("d", 0, 24, 4, 6),
    ]


def test_layout_refuses_a_row_wider_than_the_grid() -> None:
    with pytest.raises(ValueError, match=r"row \['a', 'b'\] is wider than the 24-column grid"):
        common.layout(common.row(4, (g.Text(title="a"), 16), (g.Text(title="b"), 10)))


# --- variable handling in the checks ---------------------------------------------------


def test_variables_are_found_in_every_grafana_syntax() -> None:
    text = 'x{a="$job",b=~"${route:regex}",c="[[instance]]"}[$__rate_interval]'
    assert variables_in(text) == ["job", "route", "instance", "__rate_interval"]
    assert substitute(text) == 'x{a="value",b=~"value",c="value"}[5m]'


# --- the checks catch seeded mistakes, and a failed build writes nothing -------------------


@pytest.fixture
def previous(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A good build in tmp_path/out, and its files, to compare after a failed build."""
    out = tmp_path / "out"
    build.build(CFG, out)
    return out, build.read_tree(out)


def broken_panel(
    expr: str = "", datasource: dict[str, str] | None = None, title: str = "Request rate by route"
) -> Any:
    """A stand-in for main.request_rate that returns a panel with one mistake."""

    def make(cfg: config.Config) -> g.Panel:
        p = common.timeseries(title, "A seeded mistake for the tests.", [expr], unit="reqps")
        return p if datasource is None else attr.evolve(p, dataSource=datasource)

    return make


def assert_refused(
    previous: tuple[Path, dict[str, bytes]], cfg: config.Config, *expected: str
) -> str:
    out, before = previous
    with pytest.raises(build.BuildError) as caught:
        build.build(cfg, out)
    message = str(caught.value)
    for text in expected:
        assert text in message
    assert build.read_tree(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]
    return message


GOOD_RATE = 'sum(rate(http_requests_total{job="$job"}[$__rate_interval]))'


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        (
            'sum(rate(http_request_total{job="$job"}[$__rate_interval]))',
            "metric 'http_request_total' is not in the catalogue",
        ),
        (
            'sum(rate(http_requests_total{job="$job",colour="red"}[$__rate_interval]))',
            "metric 'http_requests_total' has no label 'colour'",
        ),
        ('sum(rate(http_requests_total{job="$job"}[$__rate_interval])', "does not parse"),
        (
            'sum by (cluster) (rate(http_requests_total{job="$job"}[$__rate_interval]))',
            "sum groups by 'cluster', which none of its metrics has",
        ),
        (
            'sum(http_requests_total{job="$job"})',
            "counter 'http_requests_total' is used outside rate()/increase()",
        ),
        (
            'sum(rate(http_requests_total{job="$job"}[5m]))',
            "range [5m] is hard-coded; use [$__rate_interval]",
        ),
        (
            'sum(rate(http_requests_total{job="$cluster"}[$__rate_interval]))',
            "uses $cluster, which is not a template variable of this dashboard",
        ),
    ],
)
def test_build_refuses_a_bad_expression(
    monkeypatch: pytest.MonkeyPatch,
    previous: tuple[Path, dict[str, bytes]],
    expr: str,
    expected: str,
) -> None:
    monkeypatch.setattr(main, "request_rate", broken_panel(expr))
    message = assert_refused(
        previous,
        CFG,
        "dashboard 'genonaut-main' (genonaut-main.json), panel 'Request rate by route'",
        expected,
    )
    assert f"expression {expr!r}" in message or "$cluster" in message


def test_build_refuses_an_unknown_datasource_uid(
    monkeypatch: pytest.MonkeyPatch, previous: tuple[Path, dict[str, bytes]]
) -> None:
    monkeypatch.setattr(
        main, "request_rate", broken_panel(GOOD_RATE, {"type": "prometheus", "uid": "prom-old"})
    )
    assert_refused(
        previous,
        CFG,
        "panel 'Request rate by route': the panel: datasource uid 'prom-old' is not provisioned "
        "(provisioned: alertmanager, prometheus)",
    )


def test_build_refuses_a_datasource_of_the_wrong_type(
    monkeypatch: pytest.MonkeyPatch, previous: tuple[Path, dict[str, bytes]]
) -> None:
    ref = {"type": "prometheus", "uid": CFG.grafana.alertmanager_uid}
    monkeypatch.setattr(main, "request_rate", broken_panel(GOOD_RATE, ref))
    assert_refused(previous, CFG, "datasource 'alertmanager' is a 'alertmanager', not 'prometheus'")


def test_build_refuses_duplicate_panel_titles(
    monkeypatch: pytest.MonkeyPatch, previous: tuple[Path, dict[str, bytes]]
) -> None:
    monkeypatch.setattr(main, "request_rate", broken_panel(GOOD_RATE, title="Process CPU"))
    assert_refused(
        previous,
        CFG,
        "panel 'Process CPU': has the same title as another panel; titles are unique",
    )


def overlapping(cfg: config.Config) -> g.Dashboard:
    """The main dashboard with its "Firing alerts" panel moved by hand over the second row."""
    board = main.dashboard(cfg)
    panels = list(board.panels)
    at = next(i for i, panel in enumerate(panels) if panel.title == "Firing alerts")
    panels[at] = attr.evolve(panels[at], gridPos=g.GridPos(h=8, w=12, x=6, y=4))
    return attr.evolve(board, panels=panels)


def test_build_refuses_overlapping_panels(
    monkeypatch: pytest.MonkeyPatch, previous: tuple[Path, dict[str, bytes]]
) -> None:
    monkeypatch.setitem(dashboards.DASHBOARDS, "main", overlapping)
    assert_refused(
        previous,
        CFG,
        "dashboard 'genonaut-main' (genonaut-main.json), panel 'Firing alerts': overlaps panel "
        "'Request rate by route' (gridPos x=6 y=4 w=12 h=8 vs x=0 y=4 w=12 h=8)",
        "panel 'Firing alerts': overlaps panel 'Response time' (gridPos x=6 y=4 w=12 h=8 vs "
        "x=12 y=4 w=12 h=8)",
    )


def test_build_refuses_a_duplicate_uid(previous: tuple[Path, dict[str, bytes]]) -> None:
    uids = {**UIDS, "database": UIDS["main"]}
    cfg = replace(CFG, grafana=replace(CFG.grafana, dashboard_uids=uids))
    assert_refused(
        previous,
        cfg,
        "dashboard 'database': uid 'genonaut-main' is also the uid of 'main'; uids must be unique",
    )


def test_build_refuses_a_uid_longer_than_40_characters(
    previous: tuple[Path, dict[str, bytes]],
) -> None:
    uids = {**UIDS, "pagination": "genonaut-pagination-performance-dashboard"}
    cfg = replace(CFG, grafana=replace(CFG.grafana, dashboard_uids=uids))
    assert_refused(
        previous,
        cfg,
        "dashboard 'genonaut-pagination-performance-dashboard' "
        "(genonaut-pagination-performance-dashboard.json): uid "
        "'genonaut-pagination-performance-dashboard' must be at most 40 characters",
    )


def test_build_refuses_a_legacy_panel(
    monkeypatch: pytest.MonkeyPatch, previous: tuple[Path, dict[str, bytes]]
) -> None:
    def legacy(cfg: config.Config) -> g.Panel:
        return g.Graph(
            title="Request rate by route",
            description="An Angular graph panel.",
            dataSource=common.PROMETHEUS,
            targets=[common.Query(GOOD_RATE, refId="A")],
        )

    monkeypatch.setattr(main, "request_rate", legacy)
    assert_refused(
        previous, CFG, "panel 'Request rate by route': type 'graph' is a legacy or unknown panel"
    )


def test_checks_collect_every_problem_before_failing() -> None:
    board = dashboards.render(CFG)["main"]
    board["panels"][0]["targets"][0]["expr"] = "nope_total"
    board["panels"][1]["description"] = ""
    board["panels"][2]["fieldConfig"]["defaults"]["unit"] = ""
    board["templating"]["list"][2]["query"] = "label_values(http_requests_total, colour)"
    datasources = {"prometheus": "prometheus", "alertmanager": "alertmanager"}
    problems = check_dashboards(
        {"genonaut-main.json": board}, datasources, alerts.recorded_series(CFG)
    )
    first, second, third = (board["panels"][i]["title"] for i in range(3))
    where = "dashboard 'genonaut-main' (genonaut-main.json)"
    assert problems == [
        f"{where}: variable $instance: query 'label_values(http_requests_total, colour)': "
        "count groups by 'colour', which none of its metrics has (they have: instance, job, "
        "method, route, status)",
        f"{where}, panel {first!r}: expression 'nope_total': metric 'nope_total' is not in the "
        "catalogue (exporters/catalogue.py), nor recorded from another exporter "
        "(exporters/*.json), nor produced by a recording rule",
        f"{where}, panel {second!r}: has no description; say what a developer is looking at",
        f"{where}, panel {third!r}: has no unit (fieldConfig.defaults.unit)",
    ]


def test_recording_rules_are_known_series() -> None:
    board = dashboards.render(CFG)["main"]
    board["panels"][0]["targets"][0]["expr"] = 'job:my_ratio:rate5m{job="$job"}'
    datasources = {"prometheus": "prometheus", "alertmanager": "alertmanager"}
    shipped = alerts.recorded_series(CFG)
    assert check_dashboards({"genonaut-main.json": board}, datasources, shipped) != []
    recorded = {**shipped, "job:my_ratio:rate5m": frozenset({"job"})}
    assert check_dashboards({"genonaut-main.json": board}, datasources, recorded) == []


def test_a_series_the_metric_does_not_have_is_refused_by_name() -> None:
    with pytest.raises(ValueError) as caught:
        common.selector(m.HTTP_REQUESTS, suffix="_bucket")
    assert str(caught.value) == (
        "http_requests_total has no series 'http_requests_total_bucket' "
        "(it has ['http_requests_total'])"
    )


def test_a_broken_datasources_file_is_reported_by_name_not_raised(tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    build.write_tree(staged, build.render(CFG))
    datasources = staged / "grafana/provisioning/datasources/datasources.yaml"
    datasources.write_text("datasources: [unclosed\n")
    with pytest.raises(build.BuildError) as caught:
        build.validate(staged, CFG)
    problems = caught.value.problems
    assert any(
        p.startswith("grafana/provisioning/datasources/datasources.yaml: cannot be read as YAML")
        for p in problems
    ), problems


def test_each_alerts_panel_states_its_threshold_in_the_words_of_the_alerts_summary(
    boards: dict[str, Board],
) -> None:
    """The threshold a panel draws is quoted, formatted the same way, by it and its alert."""
    formats = (config.fmt_seconds, config.fmt_ratio, config.fmt_number)
    checked = []
    for alert in alerts.all_alerts(CFG):
        if alert.panel is None or alert.panel.title is None:
            continue
        shown = panel(boards[alert.panel.dashboard], alert.panel.title)
        drawn = [step["value"] for step in steps(shown) if step["value"] is not None]
        if not drawn or not any(ch.isdigit() for ch in alert.summary):
            continue  # e.g. ApiTargetDown: its summary quotes no number
        words = [fmt(drawn[0]) for fmt in formats if fmt(drawn[0]) in alert.summary]
        assert words, (alert.name, drawn[0], alert.summary)
        assert words[0] in shown["description"], (alert.name, words[0], shown["description"])
        checked.append(alert.name)
    assert len(checked) >= 6, checked
