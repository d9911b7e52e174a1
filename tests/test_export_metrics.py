"""scripts/export_metrics.py and the dashboard reading it shares with the preview."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import _grafana_json as gj
from scripts._promapi import (
    Prometheus,
    Window,
    format_duration,
    join_time_options,
    parse_duration,
    parse_time,
    rfc3339,
)
from tests.conftest import ROOT, free_port
from tests.live_prometheus import (
    CHECKED_OUT,
    JOB,
    POOL,
    POOL_SIZE,
    RATE,
    ROUTES,
    Live,
    live_window,
    sample_dashboard,
)

# --- durations, times, windows -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15), ("1h30m", 5400), ("500ms", 0.5), ("2d", 172800), ("90", 90), ("1.5", 1.5)],
)
def test_durations_parse_like_prometheus(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_a_bad_duration_says_how_to_write_one() -> None:
    with pytest.raises(ValueError, match=r"'5 minutes' is not a duration: write it like 15s"):
        parse_duration("5 minutes")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(4, "4s"), (60, "1m"), (75, "75s"), (5400, "90m"), (7200, "2h"), (0.5, "500ms")],
)
def test_durations_format_in_the_largest_exact_unit(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_times_are_absolute_relative_or_now() -> None:
    now = 1_800_000_000.0
    assert parse_time("now", now) == now
    assert parse_time("-1h", now) == now - 3600
    assert parse_time("now-30m", now) == now - 1800
    assert parse_time("2026-01-02T15:04:05Z", now) == 1767366245
    assert parse_time("2026-01-02T16:04:05+01:00", now) == 1767366245
    assert parse_time("1767366245", now) == 1767366245
    assert rfc3339(1767366245) == "2026-01-02T15:04:05Z"
    with pytest.raises(ValueError, match="use RFC3339"):
        parse_time("yesterday", now)


def test_the_automatic_step_gives_about_300_points_and_too_many_points_are_refused() -> None:
    now = 1_800_000_000.0
    window = Window.parse("-1h", "now", "auto", now=now)
    assert (window.start, window.end, window.step) == (now - 3600, now, 12)
    with pytest.raises(ValueError, match="use a step of at least 8s"):
        Window.parse("-1d", "now", "1s", now=now)
    with pytest.raises(ValueError, match="must be after --start"):
        Window.parse("now", "-1h", "auto", now=now)


# --- template variables ---------------------------------------------------------------


def test_rate_interval_is_four_scrapes_or_step_plus_one_scrape() -> None:
    fast = gj.builtins(Window(0, 3600, 15), scrape_interval=15)
    assert fast["__rate_interval"].render() == "1m"
    slow = gj.builtins(Window(0, 3600, 60), scrape_interval=15)
    assert slow["__rate_interval"].render() == "75s"
    assert slow["__interval"].render() == "1m"
    assert slow["__range"].render() == "1h"
    assert slow["__range_s"].render() == "3600"


def test_variables_are_substituted_in_every_syntax_grafana_accepts() -> None:
    variables = {
        "job": gj.Value(("api",)),
        "route": gj.Value(("/a", "/b.c"), multi=True),
        "all": gj.Value(("x", "y"), multi=True, all_value=".+"),
        "quote": gj.Value(("it's",)),
    }
    unknown: set[str] = set()
    text = (
        'x{job="$job", route=~"${route}", r2=~"${route:pipe}", old="[[job]]", '
        'a=~"$all", q="$quote", u=~"$nope"}'
    )
    assert gj.interpolate(text, variables, unknown) == (
        'x{job="api", route=~"(/a|/b\\\\.c)", r2=~"/a|/b.c", old="api", '
        'a=~".+", q="it\\\'s", u=~".*"}'
    )
    assert unknown == {"nope"}


def test_legends_follow_the_legend_format_or_name_the_series() -> None:
    labels = {"__name__": "http_requests_total", "route": "/a", "status": "200"}
    assert gj.legend("{{route}} {{ status }}", labels) == "/a 200"
    assert gj.legend("{{missing}}x", labels) == "x"
    assert gj.legend("", labels) == 'http_requests_total{route="/a", status="200"}'
    assert gj.legend("__auto", {"route": "/a"}) == '{route="/a"}'


def _board(tmp_path: Path, content: object, name: str = "board.json") -> gj.Dashboard:
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return gj.load_dashboard(path)


def test_custom_and_constant_variables_resolve_without_prometheus(tmp_path: Path) -> None:
    board = _board(
        tmp_path,
        {
            "uid": "v",
            "panels": [],
            "templating": {
                "list": [
                    {"name": "env", "type": "constant", "query": "prod"},
                    {
                        "name": "size",
                        "type": "custom",
                        "query": "small : 10, large : 100",
                        "regex": "/^(\\d+)$/",
                        "multi": True,
                        "includeAll": True,
                        "current": {"value": ["10", "100"]},
                    },
                    {"name": "ds", "type": "datasource", "query": "prometheus"},
                    {"name": "route", "type": "query", "query": "label_values(route)"},
                ]
            },
        },
    )
    # Nothing listens there: a call to Prometheus would fail the test.
    nowhere = Prometheus(f"http://127.0.0.1:{free_port()}")
    resolved = gj.resolve_variables(
        board, nowhere, Window(0, 60, 1), overrides={"route": ["/health"]}
    )
    assert {k: v.render() for k, v in resolved.items()} == {
        "env": "prod",
        "size": "(10|100)",
        "route": "/health",
    }


# --- reading dashboards -----------------------------------------------------------------


def test_panels_come_in_grid_order_with_their_rows_and_grafanalib_quirks(tmp_path: Path) -> None:
    board = _board(
        tmp_path,
        {
            "uid": "q",
            "title": "Quirks",
            "panels": [
                {
                    "id": 5,
                    "type": "stat",
                    "title": "right",
                    "gridPos": {"x": 12, "y": 1, "w": 12, "h": 4},
                    "fieldConfig": {"defaults": {"thresholds": {"mode": "absolute", "steps": ""}}},
                },
                {
                    "id": 4,
                    "type": "timeseries",
                    "title": "left",
                    "gridPos": {"x": 0, "y": 1, "w": 12, "h": 4},
                    "targets": [
                        {"refId": "A", "expr": "up"},
                        {"refId": "B", "expr": "up", "hide": True},
                    ],
                    "fieldConfig": {
                        "defaults": {
                            "unit": "s",
                            "thresholds": {
                                "steps": [
                                    {"color": "red", "value": 1.0},
                                    {"color": "green", "value": "null"},
                                ]
                            },
                        }
                    },
                },
                {
                    "id": 1,
                    "type": "row",
                    "title": "Top",
                    "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1},
                },
                {
                    "id": 2,
                    "type": "row",
                    "title": "Folded",
                    "collapsed": True,
                    "gridPos": {"x": 0, "y": 5, "w": 24, "h": 1},
                    "panels": [
                        {
                            "type": "table",
                            "title": "inside",
                            "gridPos": {"x": 0, "y": 6, "w": 24, "h": 3},
                        }
                    ],
                },
            ],
        },
    )
    assert [(p.id, p.title, p.row) for p in board.panels] == [
        (4, "left", "Top"),
        (5, "right", "Top"),
        (6, "inside", "Folded"),
    ]
    left, right, _inside = board.panels
    assert left.unit == "s"
    assert left.steps == (gj.Step(None, "green"), gj.Step(1.0, "red"))
    assert [t.ref_id for t in left.targets] == ["A"]
    assert right.steps == ()


def test_legacy_rows_are_placed_on_the_grid(tmp_path: Path) -> None:
    board = _board(
        tmp_path,
        {
            "uid": "old",
            "rows": [
                {
                    "title": "R1",
                    "height": "240px",
                    "panels": [
                        {
                            "id": 1,
                            "type": "graph",
                            "title": "a",
                            "span": 6,
                            "yaxes": [{"format": "ms"}],
                        },
                        {"id": 2, "type": "singlestat", "title": "b", "span": 6},
                    ],
                },
                {"title": "R2", "panels": [{"id": 3, "type": "graph", "title": "c", "span": 12}]},
            ],
        },
    )
    assert [(p.id, p.grid, p.row, p.unit) for p in board.panels] == [
        (1, gj.Grid(0, 0, 12, 8), "R1", "ms"),
        (2, gj.Grid(12, 0, 12, 8), "R1", ""),
        (3, gj.Grid(0, 8, 24, 8), "R2", ""),
    ]


def test_unreadable_dashboards_are_named(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"panels": [}')
    with pytest.raises(gj.DashboardError, match=r"broken\.json: not JSON \(line 1, column 13"):
        gj.load_dashboards([tmp_path])
    with pytest.raises(
        gj.DashboardError, match=re.escape("nowhere: no such file or folder; run `python build.py`")
    ):
        gj.load_dashboards([tmp_path / "nowhere"])
    (tmp_path / "broken.json").write_text('{"title": "not a dashboard"}')
    with pytest.raises(gj.DashboardError, match="not a Grafana dashboard"):
        gj.load_dashboards([tmp_path])


# --- against a real Prometheus ------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_window(tmp_path_factory.mktemp("export")) as window:
        yield window


def export(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.export_metrics", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def window_args(live: Live) -> list[str]:
    return ["--prometheus", live.url, "--start", rfc3339(live.start), "--end", str(live.end)]


@pytest.mark.e2e
def test_dashboard_panels_export_to_csv_and_json_with_the_values_exposed(
    live: Live, tmp_path: Path
) -> None:
    csv_path, json_path = tmp_path / "m.csv", tmp_path / "m.json"
    result = export(
        *window_args(live),
        "--step",
        "1s",
        "--dashboards",
        live.dashboards,
        "--csv",
        csv_path,
        "--json",
        json_path,
    )
    assert result.returncode == 0, result.stderr
    assert "dashboard sample-board (sample-board.json): 9 queries" in result.stderr
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert list(rows[0]) == list(
        (
            "dashboard",
            "panel_id",
            "panel",
            "ref_id",
            "expr",
            "series",
            "labels",
            "timestamp",
            "value",
        )
    )
    timestamps = list(range(live.start, live.end + 1))

    pool = [r for r in rows if r["panel_id"] == str(POOL)]
    assert [int(r["timestamp"]) for r in pool] == timestamps
    assert {r["value"] for r in pool} == {"42"}
    assert {(r["dashboard"], r["panel"], r["ref_id"]) for r in pool} == {
        ("sample-board", "Pool size", "A")
    }
    labels = json.loads(pool[0]["labels"])
    assert labels.pop("instance").startswith("127.0.0.1:")
    assert labels == {"__name__": "database_connection_pool_size", "job": JOB, "pool": "main"}

    rate = [r for r in rows if r["panel_id"] == str(RATE)]
    assert {r["expr"] for r in rate} == {
        f'sum by (route) (rate(http_requests_total{{job="{JOB}", '
        'route=~"(/api/v1/content|/health)"}[4s]))'
    }
    by_series: dict[str, list[float]] = {}
    for row in rate:
        by_series.setdefault(row["series"], []).append(float(row["value"]))
    assert sorted(by_series) == ["/api/v1/content", "/health"]
    # Every tick counts 4 content requests (3 ok, 1 error) for each health check.
    content, health = (sum(by_series[k][5:]) for k in ("/api/v1/content", "/health"))
    assert health > 0
    assert content / health == pytest.approx(4, rel=0.1)

    assert {r["ref_id"] for r in rows if r["panel_id"] == str(ROUTES)} == {"A", "B"}

    document = json.loads(json_path.read_text())
    assert json_path.read_text().endswith("}\n")
    assert (document["start"], document["step_seconds"]) == (rfc3339(live.start), 1)
    assert [(q["panel"], q["ref_id"]) for q in document["queries"]] == [
        ("Request rate", "A"),
        ("Pool size", "A"),
        ("Pool size", "A"),
        ("Checked out", "A"),
        ("Requests by status", "A"),
        ("Requests per route", "A"),
        ("Requests per route", "B"),
        ("Latency distribution", "A"),
        ("Share by route", "A"),
    ]
    checked = document["queries"][2]
    assert checked["expr"] == 'database_connection_pool_checked_out{pool="main"}'
    assert {v for _, v in checked["series"][0]["values"]} == {CHECKED_OUT}
    assert sum(len(s["values"]) for q in document["queries"] for s in q["series"]) == len(rows)


@pytest.mark.e2e
def test_chosen_queries_export_to_stdout_with_rate_interval_resolved(live: Live) -> None:
    result = export(
        *window_args(live),
        "--step",
        "2s",
        "--scrape-interval",
        "1s",
        "--json",
        "-",
        "--query",
        "database_connection_pool_size",
        "--query",
        "sum(rate(http_requests_total[$__rate_interval]))",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    gauge, rate = document["queries"]
    assert (gauge["ref_id"], gauge["panel"], gauge["dashboard"]) == ("Q1", "", "")
    assert [t for t, _ in gauge["series"][0]["values"]] == list(range(live.start, live.end + 1, 2))
    assert {v for _, v in gauge["series"][0]["values"]} == {POOL_SIZE}
    # max(step + scrape, 4 * scrape) = max(3s, 4s)
    assert rate["expr"] == "sum(rate(http_requests_total[4s]))"
    assert all(v > 0 for _, v in rate["series"][0]["values"])


@pytest.mark.e2e
def test_a_failing_query_names_panel_expression_and_prometheus_error(
    live: Live, tmp_path: Path
) -> None:
    broken = {"id": 20, "type": "timeseries", "title": "Broken panel",
              "gridPos": {"x": 0, "y": 30, "w": 24, "h": 6},
              "targets": [{"refId": "Z", "expr": "sum(rate(http_requests_total[1m])"}]}  # fmt: skip
    (tmp_path / "broken.json").write_text(json.dumps(sample_dashboard("broken", (broken,))))
    out = tmp_path / "never.csv"
    result = export(*window_args(live), "--dashboards", tmp_path / "broken.json", "--csv", out)
    assert result.returncode == 1
    assert "1 queries failed; nothing was written" in result.stderr
    assert "dashboard broken, panel 'Broken panel' (id 20), query Z: bad_data: " in result.stderr
    assert "parse error" in result.stderr
    assert "expression: sum(rate(http_requests_total[1m])" in result.stderr
    assert not out.exists()


def test_an_unreachable_prometheus_exits_2_with_the_url_and_a_hint(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = export("--prometheus", url, "--query", "up", "--csv", tmp_path / "x.csv")
    assert result.returncode == 2
    assert f"cannot reach Prometheus at {url} (connection refused)" in result.stderr
    assert "genonaut-monitoring up" in result.stderr
    assert not (tmp_path / "x.csv").exists()


def test_help_and_bad_arguments(tmp_path: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "scripts/export_metrics.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert shown.returncode == 0, shown.stderr
    for option in ("--query EXPR", "--dashboards PATH", "--var NAME=VALUE", "--csv FILE", "--step"):
        assert option in shown.stdout
    assert "http://127.0.0.1:9090" in shown.stdout
    bad = export("--start", "yesterday", "--query", "up")
    assert bad.returncode == 2
    assert "'yesterday' is not a time" in bad.stderr
    bad_var = export("--var", "route", "--query", "up")
    assert bad_var.returncode == 2
    assert "write it as NAME=VALUE" in bad_var.stderr
    missing = export("--dashboards", tmp_path / "none", "--prometheus", "http://127.0.0.1:1")
    assert missing.returncode == 1
    assert "no such file or folder; run `python build.py`" in missing.stderr


@pytest.mark.e2e
def test_the_project_dashboards_export_with_their_variables_resolved(
    live: Live, tmp_path: Path
) -> None:
    out = tmp_path / "project.json"
    result = export(*window_args(live), "--dashboards", live.project_dashboards, "--json", out)
    assert result.returncode == 0, result.stderr
    queries = json.loads(out.read_text())["queries"]
    boards = gj.load_dashboards([live.project_dashboards])
    assert len(queries) == sum(len(p.targets) for b in boards for p in b.panels)
    assert all("$" not in q["expr"] for q in queries)
    # Any panel that counts requests by route shows the routes the target exposed,
    # except the probes and scrapes the $route picker leaves out (/health here).
    rate = next(
        q for q in queries if q["expr"].startswith("sum by (route) (rate(http_requests_total{")
    )
    assert f'job="{JOB}"' in rate["expr"]
    assert 'route=~"/api/v1/content"' in rate["expr"]
    assert sorted(s["legend"] for s in rate["series"]) == ["/api/v1/content"]


def test_relative_times_may_follow_their_option_as_a_separate_word() -> None:
    assert join_time_options(["--start", "-1h", "--end", "now", "--step", "1s"]) == [
        "--start=-1h", "--end=now", "--step", "1s"
    ]  # fmt: skip
    assert join_time_options(["--query", "up", "--start"]) == ["--query", "up", "--start"]


@pytest.mark.e2e
def test_a_relative_window_ends_now(live: Live) -> None:
    result = export("--prometheus", live.url, "--start", "-5s", "--step", "1s",
                    "--query", "database_connection_pool_size", "--json", "-")  # fmt: skip
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)["queries"][0]["series"][0]["values"]
    assert len(values) == 6
    assert {v for _, v in values} == {POOL_SIZE}
    assert values[-1][0] == pytest.approx(time.time(), abs=3)
