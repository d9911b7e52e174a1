"""The preview draws what Grafana would: one test per fault a reader saw in the old previews."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from matplotlib.figure import Figure

from scripts import _alert_list as alert_list
from scripts import _grafana_json as gj
from scripts import _panel_render as pr
from scripts._promapi import Series, Window

WINDOW = Window(1_800_000_000, 1_800_000_600, 15)
STAMPS = [WINDOW.start + 15 * i for i in range(41)]


def panel(kind: str, w: int = 12, h: int = 8, unit: str = "", raw: Any = None) -> gj.Panel:
    raw = raw or {}
    defaults = (raw.get("fieldConfig") or {}).get("defaults") or {}
    steps = (defaults.get("thresholds") or {}).get("steps") or []
    return gj.Panel(
        7,
        "P",
        kind,
        gj.Grid(0, 0, w, h),
        unit=unit,
        steps=tuple(gj.Step(s["value"], s["color"]) for s in steps),
        minimum=defaults.get("min"),
        maximum=defaults.get("max"),
        raw=raw,
    )


def line(legend: str, values: list[float], ref: str = "A", **labels: str) -> pr.Line:
    points = list(zip(STAMPS, values, strict=False))
    return pr.Line(gj.Target(ref, "x"), Series(labels, points), legend)


def inside(fig: Figure, artist: Any) -> bool:
    """Whether ``artist`` is drawn wholly inside the figure (nothing cut at its edges)."""
    fig.canvas.draw()  # place everything first
    box = artist.get_window_extent(fig.canvas.get_renderer())  # type: ignore[attr-defined]
    width, height = fig.get_figwidth() * fig.dpi, fig.get_figheight() * fig.dpi
    within_x = box.x0 >= -0.5 and box.x1 <= width + 0.5
    return bool(within_x and box.y0 >= -0.5 and box.y1 <= height + 0.5)


def y_tick_labels(ax: Any) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


def display_name(pattern: str, name: str) -> dict[str, Any]:
    return {
        "matcher": {"id": "byRegexp", "options": pattern},
        "properties": [{"id": "displayName", "value": name}],
    }


# --- the alert list -----------------------------------------------------------------------


def alerts_data(**options: Any) -> pr.PanelData:
    def alert(name: str, state: str, since: float, **labels: str) -> list[pr.Line]:
        rule = {"alertname": name, **labels}
        firing = Series({"__name__": "ALERTS", "alertstate": state, **rule}, [(WINDOW.end, 1.0)])
        active = Series({"__name__": "ALERTS_FOR_STATE", **rule}, [(WINDOW.end, since)])
        return [
            pr.Line(alert_list.ALERTS, firing, ""),
            pr.Line(alert_list.ACTIVE_SINCE, active, ""),
        ]

    lines = [
        *alert("Watchdog", "firing", WINDOW.end - 3600, severity="info"),
        *alert("ApiHighLatency", "pending", WINDOW.end - 30, severity="warning", route="/a"),
        *alert("ApiHighErrorRate", "firing", WINDOW.end - 125, severity="critical", job="api"),
    ]
    return pr.PanelData(panel("alertlist", w=8, raw={"options": options}), tuple(lines))


def test_the_alert_list_is_drawn_from_the_alerts_prometheus_reports() -> None:
    states = {"firing": True, "pending": True, "normal": False}
    fig, rendered = pr.draw(alerts_data(sortOrder=3, stateFilter=states), WINDOW)
    assert rendered.kind == "alertlist"
    assert rendered.table == [
        ["State", "Alert", "Labels", "Active for"],
        ["firing", "ApiHighErrorRate", "job=api, severity=critical", "2m 5s"],
        ["firing", "Watchdog", "severity=info", "1h"],
        ["pending", "ApiHighLatency", "route=/a, severity=warning", "30s"],
    ]  # importance: firing first, then by name
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts[0] == "ApiHighErrorRate" and "firing for 2m 5s" in texts[1]


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({"stateFilter": {"firing": True}}, ["ApiHighErrorRate", "Watchdog"]),
        ({"stateFilter": {"pending": True}}, ["ApiHighLatency"]),
        ({"alertName": "api"}, ["ApiHighErrorRate", "ApiHighLatency"]),
        (
            {"alertInstanceLabelFilter": '{severity=~"crit.*|warning"}'},
            ["ApiHighErrorRate", "ApiHighLatency"],
        ),
        ({"sortOrder": 2, "maxItems": 2}, ["Watchdog", "ApiHighLatency"]),
        ({"sortOrder": 4}, ["Watchdog", "ApiHighErrorRate", "ApiHighLatency"]),
    ],
)
def test_the_alert_list_follows_the_panels_filters_and_order(
    options: dict[str, Any], names: list[str]
) -> None:
    _fig, rendered = pr.draw(alerts_data(**options), WINDOW)
    assert rendered.table is not None
    assert [row[1] for row in rendered.table[1:]] == names


def test_an_empty_alert_list_says_so() -> None:
    data = pr.PanelData(panel("alertlist"))
    fig, rendered = pr.draw(data, WINDOW)
    assert rendered.table == [["State", "Alert", "Labels", "Active for"]]
    assert "No alerts" in [t.get_text() for ax in fig.axes for t in ax.texts]


# --- legends --------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [3, 9, 40])
def test_legends_never_cut_a_series_name(count: int) -> None:
    names = [
        f'database_query_duration_seconds{{operation="SELECT", table="content_items_{i}"}}'
        for i in range(count)
    ]
    lines = tuple(line(n, [float(i)] * 41) for i, n in enumerate(names))
    fig, rendered = pr.draw(pr.PanelData(panel("timeseries", w=8, h=8), lines), WINDOW)
    (legend,) = fig.legends
    texts = legend.get_texts()
    assert texts
    for text in texts:
        assert inside(fig, text), text.get_text()
    shown = [t.get_text().replace("\n", "") for t in texts]
    assert shown == names[: len(shown)]  # whole names, in order
    if len(shown) < count:
        assert f"legend shows {len(shown)} of {count} series, names whole" in rendered.notes


# --- value axes -------------------------------------------------------------------------------


def test_binary_units_tick_at_binary_values_with_every_digit_shown() -> None:
    rss = 93_000_000.0  # a 93 MB process: the old axis read ".1 MiB, .1 MiB, .2 MiB"
    series = (line("rss", [rss, rss + 4e5] * 20),)
    data = pr.PanelData(panel("timeseries", unit="bytes"), series)
    fig, _ = pr.draw(data, WINDOW)
    ax = fig.axes[0]
    labels = y_tick_labels(ax)
    assert labels and all(label.endswith(" MiB") for label in labels if label != "0")
    numbers = [float(label.removesuffix(" MiB")) for label in labels if label != "0"]
    assert all(88 <= n <= 90 for n in numbers)
    assert len(set(labels)) == len(labels)  # neighbours never read alike
    for tick in ax.get_yticklabels():
        assert inside(fig, tick), tick.get_text()
    steps = {round(b - a, 6) for a, b in itertools.pairwise(numbers)}
    assert len(steps) == 1
    whole = [label for _, label in pr.ticks(0, 100 * 2**20, "bytes")]
    assert whole == ["0", "16 MiB", "32 MiB", "48 MiB", "64 MiB", "80 MiB", "96 MiB"]


def test_an_explicit_min_is_honoured_even_for_all_zero_series() -> None:
    zeros = tuple(line(f"r{i}", [0.0] * 41) for i in range(3))
    raw = {"fieldConfig": {"defaults": {"min": 0}}}
    fig, _ = pr.draw(pr.PanelData(panel("timeseries", unit="reqps", raw=raw), zeros), WINDOW)
    low, high = fig.axes[0].get_ylim()
    assert low == 0 and high > 0
    assert not any(label.startswith("-") for label in y_tick_labels(fig.axes[0]))


UNITS = ["s", "ms", "ns", "bytes", "decbytes", "short", "percentunit", "percent", "reqps", "ops"]


@pytest.mark.parametrize("unit", [*UNITS, "", "none", "conn"])
def test_zero_is_zero_in_any_unit(unit: str) -> None:
    assert pr.format_unit(0.0, unit) == "0"
    assert pr.format_unit(-0.0, unit) == "0"
    assert pr.ticks(0, 1, unit)[0] == (0.0, "0")


# --- bars -----------------------------------------------------------------------------------------


def test_range_labelled_bars_sort_by_their_lower_bound() -> None:
    labels = ["0", "1-100", "10001-100000", "1001-10000", "100001+", "101-1000"]
    lines = tuple(line(label, [1.0] * 41) for label in labels)
    fig, _ = pr.draw(pr.PanelData(panel("bargauge", unit="short"), lines), WINDOW)
    top_to_bottom = y_tick_labels(fig.axes[0])  # the first tick is the top bar
    assert top_to_bottom == ["0", "1-100", "101-1000", "1001-10000", "10001-100000", "100001+"]
    assert pr.in_range_order([("b", 1), ("a", 2)]) == [("b", 1), ("a", 2)]  # not ranges: kept


def test_bucket_bars_take_the_panels_range_names_and_bucket_order() -> None:
    target = gj.Target("A", "x", format="heatmap", instant=True)
    cumulative = {"1.0": 4.0, "5.0": 10.0, "+Inf": 12.0}
    lines = tuple(
        pr.Line(target, Series({"le": le}, [(WINDOW.end, v)]), le)
        for le, v in reversed(cumulative.items())
    )
    overrides = [
        display_name(pattern, name)
        for pattern, name in ((r"^1(\.0)?$", "1"), (r"^5(\.0)?$", "2-5"), (r"^\+Inf$", "6+"))
    ]
    raw = {"fieldConfig": {"defaults": {}, "overrides": overrides}}
    data, notes = pr.prepare(pr.PanelData(panel("bargauge", raw=raw), lines))
    named = [(x.legend, x.series.values[0][1]) for x in data.lines]
    assert named == [("1", 4.0), ("2-5", 6.0), ("6+", 2.0)]
    assert "series named by the panel's display-name overrides" in notes


# --- no data, tables, heatmaps -------------------------------------------------------------------


def test_a_panel_without_data_shows_its_no_value_text_and_nothing_else() -> None:
    steps = [{"color": "red", "value": None}, {"color": "green", "value": 0.5}]
    defaults = {
        "noValue": "no lookups reported",
        "min": 0,
        "max": 1,
        "thresholds": {"mode": "absolute", "steps": steps},
        "custom": {"thresholdsStyle": {"mode": "dashed"}},
    }
    p = panel("timeseries", unit="percentunit", raw={"fieldConfig": {"defaults": defaults}})
    empty = tuple(line(f"cache{i}", [math.nan] * 41) for i in range(3))  # 0/0: NaN, no data
    fig, rendered = pr.draw(pr.PanelData(p, empty), WINDOW)
    assert fig.legends == []
    assert all(not ax.lines for ax in fig.axes)  # no threshold line, no series
    assert "no lookups reported" in [t.get_text() for ax in fig.axes for t in ax.texts]
    assert rendered.notes[-1] == "no data: no legend, no threshold lines (as Grafana)"


def test_table_columns_take_the_organize_names_and_sort_by_them() -> None:
    a = gj.Target("A", "x")
    lines = tuple(
        pr.Line(a, Series({"route": r, "offset_range": o}, [(1, v)]), "")
        for r, o, v in (("/a", "0", 0.2), ("/b", "1-100", 0.9))
    )
    organize = {
        "excludeByName": {"Time": True, "offset_range": True},
        "renameByName": {"Value": "p95 page query time"},
    }
    raw = {
        "options": {"sortBy": [{"displayName": "p95 page query time", "desc": True}]},
        "transformations": [{"id": "organize", "options": organize}],
    }
    cells = pr.table_cells(pr.PanelData(panel("table", unit="s", raw=raw), lines))
    assert cells == [["route", "p95 page query time"], ["/b", "900 ms"], ["/a", "200 ms"]]


def test_heatmap_cells_are_counted_in_their_own_unit() -> None:
    target = gj.Target("A", "x", format="heatmap")
    lines = tuple(
        pr.Line(target, Series({"le": le}, [(t, v) for t in STAMPS]), le)
        for le, v in (("0.001", 3.0), ("0.01", 5.0), ("+Inf", 6.0))
    )
    options = {"yAxis": {"unit": "s"}, "cellValues": {"unit": "short"}}
    p = panel("heatmap", unit="s", raw={"options": options})
    fig, rendered = pr.draw(pr.PanelData(p, lines), WINDOW)
    assert "y axis in s, cells in short" in rendered.notes
    assert y_tick_labels(fig.axes[0]) == ["1 ms", "10 ms", "+Inf"]
    colour_bar = fig.axes[1]
    fig.canvas.draw()
    bar_labels = [t.get_text() for t in colour_bar.get_yticklabels() if t.get_text()]
    assert bar_labels and not any(label.endswith(("s", "ms")) for label in bar_labels)
