"""scripts/preview.py: every panel drawn from a real Prometheus, one page showing them all."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from matplotlib import image as mimage

from scripts import _grafana_json as gj
from scripts import _panel_render as pr
from scripts._promapi import Series, Window, rfc3339
from scripts.preview import image_name
from tests.conftest import ROOT, free_port
from tests.live_prometheus import (
    CHECKED,
    LATENCY,
    MAP,
    NOTE,
    POOL,
    POOL_AGAIN,
    RATE,
    ROUTES,
    STATUS,
    UID,
    Live,
    live_window,
    sample_dashboard,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The sample dashboard's drawn panels, in grid order (rows are headings, not images).
SAMPLE_PANELS = [RATE, POOL, POOL_AGAIN, CHECKED, STATUS, ROUTES, LATENCY, NOTE, MAP]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header, after checking its signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def share_of_colour(path: Path, hex_colour: str, tolerance: float = 0.06) -> float:
    """The fraction of the image's pixels within ``tolerance`` of ``hex_colour``."""
    pixels = mimage.imread(path)[:, :, :3]
    target = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    close = (abs(pixels - target) <= tolerance).all(axis=2)
    return float(close.mean())


def preview(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.preview", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# --- units, colours, cells (no Prometheus) ---------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.25, "s", "250 ms"),
        (1.5, "s", "1.5 s"),
        (0.0005, "s", "500 µs"),
        (90, "s", "1.5 min"),
        (250, "ms", "250 ms"),
        (0.05, "percentunit", "5%"),
        (97.5, "percent", "97.5%"),
        (40, "reqps", "40 req/s"),
        (2048, "bytes", "2 KiB"),
        (1_234_567, "short", "1.23 Mil"),
        (42, "", "42"),
        (42, "none", "42"),
        (3, "conn", "3 conn"),
        (float("nan"), "s", "NaN"),
    ],
)
def test_values_are_written_in_grafana_units(value: float, unit: str, text: str) -> None:
    assert pr.format_unit(value, unit) == text


def test_threshold_colours_pick_the_highest_step_reached() -> None:
    steps = [gj.Step(None, "green"), gj.Step(40, "red")]
    assert pr.step_colour(39.9, steps) == pr.NAMED_COLOURS["green"]
    assert pr.step_colour(40, steps) == pr.NAMED_COLOURS["red"]
    assert pr.step_colour(None, steps) == pr.NO_DATA_GREY
    assert pr.colour("rgba(50, 172, 45, 0.97)") == "#32AC2D"
    assert pr.colour("#abcdef") == "#abcdef"
    assert pr.colour("no such colour") == pr.NO_DATA_GREY
    assert pr.unit_label("s") == "seconds (s)"
    assert pr.unit_label("short") == "short"
    assert pr.unit_label("none") == ""


def _panel(kind: str, **raw: object) -> gj.Panel:
    return gj.Panel(1, "P", kind, gj.Grid(0, 0, 12, 6), raw=raw)


def test_table_rows_merge_the_queries_by_labels() -> None:
    a, b = gj.Target("A", "x"), gj.Target("B", "y")
    lines = (
        pr.Line(a, Series({"route": "/a"}, [(1, 1.0), (2, 4.0)]), ""),
        pr.Line(a, Series({"route": "/b"}, [(1, 2.0)]), ""),
        pr.Line(b, Series({"route": "/a"}, [(1, 9.0)]), ""),
    )
    cells = pr.table_cells(pr.PanelData(_panel("table"), lines))
    assert cells == [["route", "Value #A", "Value #B"], ["/a", "4", "9"], ["/b", "2", ""]]


def test_table_rows_follow_the_panels_sort_by_option_like_grafana() -> None:
    a = gj.Target("A", "x")
    lines = tuple(
        pr.Line(a, Series({"route": route}, [(1, value)]), "")
        for route, value in (("/a", 2.0), ("/b", 30.0), ("/c", 7.0))
    )
    panel = _panel("table", options={"sortBy": [{"displayName": "Value", "desc": True}]})
    cells = pr.table_cells(pr.PanelData(panel, lines))
    assert cells == [["route", "Value"], ["/b", "30"], ["/c", "7"], ["/a", "2"]]


def test_histogram_buckets_are_sorted_and_de_accumulated_per_label_set() -> None:
    target = gj.Target("A", "x", format="heatmap")
    cumulative: list[tuple[dict[str, str], list[tuple[float, float]]]] = [
        ({"le": "+Inf", "route": "/a"}, [(1, 10.0), (2, 12.0)]),
        ({"le": "0.5", "route": "/a"}, [(1, 7.0), (2, 7.0)]),
        ({"le": "0.1", "route": "/a"}, [(1, 2.0), (2, 3.0)]),
        ({"le": "0.1", "route": "/b"}, [(1, 5.0)]),
    ]
    lines = tuple(pr.Line(target, Series(labels, values), "") for labels, values in cumulative)
    prepared, notes = pr.prepare(pr.PanelData(_panel("bargauge"), lines))
    assert [
        (s.series.labels["route"], s.series.labels["le"], s.series.values) for s in prepared.lines
    ] == [
        ("/a", "0.1", [(1, 2.0), (2, 3.0)]),
        ("/a", "0.5", [(1, 5.0), (2, 4.0)]),
        ("/a", "+Inf", [(1, 3.0), (2, 5.0)]),
        ("/b", "0.1", [(1, 5.0)]),
    ]
    assert notes == ["bucket rates, de-accumulated from cumulative le buckets"]
    # A plain time series target keeps its cumulative buckets, as Grafana shows them.
    plain = pr.Line(gj.Target("A", "x"), Series({"le": "1"}, [(1, 4.0)]), "")
    kept, no_notes = pr.prepare(pr.PanelData(_panel("timeseries"), (plain,)))
    assert (kept.lines, no_notes) == ((plain,), [])


def test_pie_charts_share_out_the_reduced_values(tmp_path: Path) -> None:
    target = gj.Target("A", "x")
    lines = (
        pr.Line(target, Series({"mode": "offset"}, [(1, 1.0), (2, 3.0)]), "offset"),
        pr.Line(target, Series({"mode": "cursor"}, [(1, 1.0), (2, 1.0)]), "cursor"),
    )
    panel = gj.Panel(
        1, "Modes", "piechart", gj.Grid(0, 0, 8, 8), raw={"options": {"pieType": "pie"}}
    )
    rendered = pr.render(pr.PanelData(panel, lines), Window(0, 60, 1), tmp_path / "pie.png")
    assert rendered.kind == "piechart"
    first, second = (share_of_colour(tmp_path / "pie.png", c, 0.01) for c in pr.PALETTE[:2])
    # Last values 3 and 1: the first slice is three times the second (legend swatches aside).
    assert first / second == pytest.approx(3, rel=0.15)


def test_image_names_come_from_uid_and_panel_id() -> None:
    assert image_name("genonaut-main", 7) == "genonaut-main-panel-7.png"
    assert image_name("we/ird uid", 2) == "we_ird_uid-panel-2.png"


def test_unknown_and_undrawable_panels_become_labelled_images(tmp_path: Path) -> None:
    window = Window(1_800_000_000, 1_800_000_060, 1)
    unknown = pr.render(pr.PanelData(_panel("worldmap")), window, tmp_path / "u.png")
    assert unknown.kind == "placeholder"
    assert unknown.notes == ["type 'worldmap' is shown as a placeholder"]
    bad_bucket = pr.Line(gj.Target("A", "x"), Series({"le": "abc"}, [(1_800_000_001, 1.0)]), "")
    broken = pr.render(pr.PanelData(_panel("heatmap"), (bad_bucket,)), window, tmp_path / "b.png")
    assert broken.kind == "error"
    assert "could not convert string to float: 'abc'" in broken.notes[0]
    # Grey box for a placeholder, pink for an error: neither is a blank image.
    for name, box in (("u.png", "#F2F2F2"), ("b.png", "#FDECEE")):
        assert png_size(tmp_path / name) == (672, 216)
        assert share_of_colour(tmp_path / name, box, tolerance=0.01) > 0.5


def test_dollar_signs_in_titles_and_queries_are_drawn_as_text(tmp_path: Path) -> None:
    panel = gj.Panel(
        1, "Cost in $ per $job", "geomap", gj.Grid(0, 0, 8, 6),
        targets=(gj.Target("A", 'sum(x{job="$job"}[$__rate_interval])'),),
    )  # fmt: skip
    rendered = pr.render(pr.PanelData(panel), Window(0, 60, 1), tmp_path / "d.png")
    assert rendered.kind == "placeholder"


def test_help_runs_as_a_module_and_as_a_file() -> None:
    for command in (["-m", "scripts.preview"], ["scripts/preview.py"]):
        shown = subprocess.run(
            [sys.executable, *command, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert "--out OUT" in shown.stdout
        assert "out-preview" in shown.stdout


# --- against a real Prometheus -------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_window(tmp_path_factory.mktemp("preview")) as window:
        yield window


@dataclass(frozen=True)
class Run:
    """One preview run over the live window."""

    out: Path
    result: subprocess.CompletedProcess[str]

    @property
    def page(self) -> str:
        return (self.out / "index.html").read_text(encoding="utf-8")


def window_args(live: Live) -> list[str]:
    return ["--prometheus", live.url, "--start", rfc3339(live.start), "--end", str(live.end)]


@pytest.fixture(scope="module")
def sample(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Run:
    out = tmp_path_factory.mktemp("sample") / "preview"
    result = preview(
        *window_args(live), "--step", "1s", "--dashboards", live.dashboards, "--out", out
    )
    assert result.returncode == 0, result.stderr
    return Run(out, result)


@pytest.mark.e2e
def test_every_panel_becomes_a_png_sized_by_its_grid_place(sample: Run, live: Live) -> None:
    board = gj.load_dashboard(live.dashboards / f"{UID}.json")
    assert [p.id for p in board.panels] == SAMPLE_PANELS
    names = sorted(p.name for p in sample.out.iterdir())
    assert names == sorted(["index.html", *(image_name(UID, i) for i in SAMPLE_PANELS)])
    for panel in board.panels:
        path = sample.out / image_name(UID, panel.id)
        expected = (max(320, panel.grid.w * pr.COLUMN_PX), max(160, panel.grid.h * pr.ROW_PX))
        assert png_size(path) == expected, panel.title
        assert path.stat().st_size > 2000, panel.title
    assert re.search(rf"^{UID}: 9 panels in \d+\.\d\ds$", sample.result.stderr, re.M)


@pytest.mark.e2e
def test_the_page_shows_every_panel_in_grid_order_with_titles_units_and_thresholds(
    sample: Run,
) -> None:
    page = sample.page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert sources == [image_name(UID, i) for i in SAMPLE_PANELS]
    for text in (
        '<h2 id="sample-board">Sample sample-board</h2>',
        "<h4>Request rate</h4>",
        "unit: requests/sec (reqps)",
        "red ≥ 50 req/s",
        "<h4>Pool size</h4>",
        "red ≥ 40",
        "<h4>Checked out</h4>",
        "orange ≥ 30",
        "<h4>Latency distribution</h4>",
        "unit: seconds (s)",
        "bucket rates, de-accumulated from cumulative le buckets",
        "type &#x27;geomap&#x27; is shown as a placeholder",
        "9 panels · rendered in",
    ):
        assert text in page, text
    assert page.index("<h3>Traffic</h3>") < page.index("<h4>Request rate</h4>")
    assert page.index("<h4>Latency distribution</h4>") < page.index("<h3>Notes</h3>")
    assert page.index("<h3>Notes</h3>") < page.index("<h4>About</h4>")
    table = re.search(r'<table class="data">.*?</table>', page)
    assert table is not None
    assert "<th>route</th><th>Value #A</th><th>Value #B</th>" in table.group(0)
    assert "<td>/api/v1/content</td>" in table.group(0)
    assert "<td>/health</td>" in table.group(0)
    assert page.endswith("</html>\n")


@pytest.mark.e2e
def test_colours_follow_the_data_and_the_threshold_steps(sample: Run) -> None:
    red, green = pr.NAMED_COLOURS["red"], pr.NAMED_COLOURS["green"]
    pool = sample.out / image_name(UID, POOL)  # 42, at or above the red step at 40
    checked = sample.out / image_name(UID, POOL_AGAIN)  # 7: same panel, other data
    assert share_of_colour(pool, red) > 0.5
    assert share_of_colour(pool, green) == 0
    assert share_of_colour(checked, green) > 0.5
    assert share_of_colour(checked, red) == 0
    assert pool.read_bytes() != checked.read_bytes()
    rate = sample.out / image_name(UID, RATE)
    for series_colour in pr.PALETTE[:2]:  # one line per route
        assert share_of_colour(rate, series_colour) > 0.002
    # The dashed threshold line at 50 req/s: thin and antialiased, so a looser match.
    assert share_of_colour(rate, red, tolerance=0.15) > 0.002
    gauge = sample.out / image_name(UID, CHECKED)
    for band in (green, pr.NAMED_COLOURS["orange"], red):
        assert share_of_colour(gauge, band) > 0.001


@pytest.mark.e2e
def test_the_same_window_draws_the_same_images(sample: Run, live: Live, tmp_path: Path) -> None:
    again = preview(
        *window_args(live),
        "--step",
        "1s",
        "--dashboards",
        live.dashboards,
        "--out",
        tmp_path / "again",
        "--quiet",
    )
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""
    for panel_id in SAMPLE_PANELS:
        name = image_name(UID, panel_id)
        assert (tmp_path / "again" / name).read_bytes() == (sample.out / name).read_bytes(), name


@pytest.mark.e2e
def test_the_project_dashboards_render_without_query_errors(live: Live, tmp_path: Path) -> None:
    out = tmp_path / "project"
    result = preview(*window_args(live), "--dashboards", live.project_dashboards, "--out", out)
    assert result.returncode == 0, result.stderr
    boards = gj.load_dashboards([live.project_dashboards])
    expected = {image_name(b.uid, p.id) for b in boards for p in b.panels}
    assert {p.name for p in out.glob("*.png")} == expected
    page = (out / "index.html").read_text(encoding="utf-8")
    for board in boards:
        assert f'<h2 id="{board.uid}">' in page
        assert re.search(rf"^{board.uid}: {len(board.panels)} panels in ", result.stderr, re.M)
    assert 'class="error"' not in page
    # The alert list is drawn from the alerts Prometheus reports at the window's end.
    main = next(b for b in boards if any(p.type == "alertlist" for p in b.panels))
    (alerts_panel,) = [p for p in main.panels if p.type == "alertlist"]
    anchor = image_name(main.uid, alerts_panel.id).removesuffix(".png")
    shown = page[page.index(f'id="{anchor}"') :].split('<div class="panel"')[0]
    assert "<th>State</th><th>Alert</th>" in shown
    assert "<td>firing</td><td>Watchdog</td>" in shown


@pytest.mark.e2e
def test_a_failing_query_is_shown_in_its_panel_and_exits_1(live: Live, tmp_path: Path) -> None:
    broken = {
        "id": 20,
        "type": "timeseries",
        "title": "Broken panel",
        "gridPos": {"x": 0, "y": 30, "w": 24, "h": 6},
        "targets": [{"refId": "Z", "expr": "sum(rate(http_requests_total[1m])"}],
    }
    (tmp_path / "broken.json").write_text(json.dumps(sample_dashboard("broken", (broken,))))
    out = tmp_path / "out"
    result = preview(*window_args(live), "--dashboards", tmp_path / "broken.json", "--out", out)
    assert result.returncode == 1
    assert "1 queries failed (shown in their panels)" in result.stderr
    assert "dashboard broken, panel 'Broken panel' (id 20), query Z: bad_data: " in result.stderr
    page = (out / "index.html").read_text(encoding="utf-8")
    shown = '<div class="error">dashboard broken, panel &#x27;Broken panel&#x27; (id 20), query Z:'
    assert page.count(shown) == 2  # above the dashboard and in the panel
    assert page.count("parse error") >= 2
    assert png_size(out / image_name("broken", 20)) == (24 * pr.COLUMN_PX, 6 * pr.ROW_PX)
    assert share_of_colour(out / image_name("broken", 20), "#FDECEE") > 0.3  # the error box
    assert len(list(out.glob("*.png"))) == len(SAMPLE_PANELS) + 1


def test_an_unreachable_prometheus_exits_2_and_keeps_the_old_preview(tmp_path: Path) -> None:
    boards = tmp_path / "boards"
    boards.mkdir()
    (boards / "b.json").write_text(json.dumps(sample_dashboard()))
    out = tmp_path / "preview"
    out.mkdir()
    (out / "index.html").write_text("previous run\n")
    url = f"http://127.0.0.1:{free_port()}"
    result = preview("--prometheus", url, "--dashboards", boards, "--out", out)
    assert result.returncode == 2
    assert f"cannot reach Prometheus at {url} (connection refused)" in result.stderr
    assert "genonaut-monitoring up" in result.stderr
    assert (out / "index.html").read_text() == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["boards", "preview"]
