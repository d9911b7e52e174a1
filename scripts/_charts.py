"""The panel types the preview draws: time series, bars, pie, heatmap and table.

Stats and gauges are in ``_stats``, the alert list in ``_alert_list``. Each
function draws one prepared panel (see ``_panel_data.prepare``) into a figure.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter

from scripts import _layout as lay
from scripts._grafana_json import Panel
from scripts._panel_data import (
    PanelData,
    Rendered,
    decimals,
    defaults,
    in_range_order,
    options,
    reduced,
    reducer,
    table_cells,
)
from scripts._promapi import Window
from scripts._units import PALETTE, absolute_steps, colour, format_unit, step_colour, ticks


def _custom(panel: Panel) -> dict[str, Any]:
    return dict(defaults(panel).get("custom") or {})


def shows_threshold_lines(panel: Panel) -> bool:
    """Whether Grafana draws the threshold steps on this time series panel."""
    return ((_custom(panel).get("thresholdsStyle") or {}).get("mode") or "off") != "off"


def no_value(panel: Panel) -> str:
    """What Grafana writes in a panel without data: its noValue, or "No data"."""
    return str(defaults(panel).get("noValue") or "No data")


def _value_range(panel: Panel, values: list[float], marks: list[float]) -> tuple[float, float]:
    """The y range: an explicit min and max win; otherwise the data and threshold lines."""
    seen = [*values, *marks]
    low = panel.minimum if panel.minimum is not None else min(seen)
    high = panel.maximum if panel.maximum is not None else max(seen)
    if panel.maximum is None and high > low:
        high += (high - low) * 0.05
    if high <= low:  # flat data: a unit of room above (Grafana shows 0 to 1 for all zeros)
        high = low + (abs(low) if low else 1.0)
    return low, high


def timeseries(fig: Figure, data: PanelData, window: Window) -> Rendered:
    panel = data.panel
    rendered = Rendered("timeseries")
    values = [v for line in data.lines for _, v in line.series.values if math.isfinite(v)]
    if not values:
        ax = fig.add_axes((0.02, 0.04, 0.96, lay.top(fig) - 0.08))
        ax.set_axis_off()
        lay.no_data(ax, no_value(panel))
        rendered.notes.append("no data: no legend, no threshold lines (as Grafana)")
        return rendered
    custom = _custom(panel)
    stacked = (custom.get("stacking") or {}).get("mode") in ("normal", "percent")
    fill = float(custom.get("fillOpacity") or 0) / 100
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(data.lines))]
    stamps = sorted({t for line in data.lines for t, _ in line.series.values})
    rows = []
    if stacked:
        for line in data.lines:
            lookup = dict(line.series.values)
            points = [lookup.get(t, 0.0) for t in stamps]
            rows.append([v if math.isfinite(v) else 0.0 for v in points])
        values = [sum(column) for column in zip(*rows, strict=True)] + [0.0]
        rendered.notes.append("stacked")
    steps = absolute_steps(panel, max(values))
    marks = [s.value for s in steps if s.value is not None] if shows_threshold_lines(panel) else []
    low, high = _value_range(panel, values, marks)
    labels = [label for _, label in ticks(low, high, panel.unit)]
    handles: list[Any] = [
        Patch(color=c, alpha=0.8) if stacked else Line2D([], [], color=c, linewidth=1.3)
        for c in colours
    ]
    height, shown = lay.legend(fig, handles, [line.legend for line in data.lines])
    if shown < len(data.lines):
        rendered.notes.append(f"legend shows {shown} of {len(data.lines)} series, names whole")
    left, bottom, plot_height = lay.plot_box(fig, height, labels)
    ax = fig.add_axes((left, bottom, 0.99 - left, plot_height))
    lay.time_axis(ax, window)
    ax.tick_params(labelsize=7)
    ax.grid(True, color="#E6E6E6", linewidth=0.6)
    if stacked:
        ax.stackplot([lay.x(t) for t in stamps], rows, colors=colours, alpha=0.8)
    else:
        for line, colour_ in zip(data.lines, colours, strict=True):
            times = [lay.x(t) for t, _ in line.series.values]
            points = [v for _, v in line.series.values]
            ax.plot(times, points, color=colour_, linewidth=1.3)
            if fill:
                ax.fill_between(times, points, alpha=fill, color=colour_)
    for mark in marks:
        tone = step_colour(mark, steps)
        ax.axhline(mark, color=tone, linestyle="--", linewidth=1.2)
        ax.annotate(
            format_unit(mark, panel.unit, decimals(panel)), (1.0, mark),
            xycoords=("axes fraction", "data"), fontsize=7, color=tone, ha="right", va="bottom",
        )  # fmt: skip
    if panel.steps and not shows_threshold_lines(panel) and len(panel.steps) > 1:
        rendered.notes.append(
            "threshold steps not drawn: Grafana hides them (custom.thresholdsStyle.mode is off)"
        )
    lay.value_axis(ax, low, high, panel.unit)
    return rendered


def bargauge(fig: Figure, data: PanelData, window: Window) -> Rendered:
    panel = data.panel
    name, _ = reducer(panel)
    rendered = Rendered("bargauge", notes=[f"value: {name}"])
    values = in_range_order(reduced(data))
    if not values:
        ax = fig.add_axes((0.02, 0.04, 0.96, lay.top(fig) - 0.08))
        ax.set_axis_off()
        lay.no_data(ax, no_value(panel))
        return rendered
    finite = [v for _, v in values if v is not None and math.isfinite(v)]
    steps = absolute_steps(panel, max(finite) if finite else None)
    marks = [s.value for s in steps if s.value is not None]
    low = panel.minimum if panel.minimum is not None else min(0.0, *finite) if finite else 0.0
    high = panel.maximum if panel.maximum is not None else max([*finite, *marks, 0.0]) * 1.1 or 1.0
    high = high if high > low else low + 1
    places = decimals(panel)
    shown_values = [
        "No data" if v is None else format_unit(v, panel.unit, places) for _, v in values
    ]
    width_px, _ = lay.size_px(fig)
    left = (max(lay.text_width_px(fig, label, 7) for label, _ in values) + 10) / width_px
    right = (max(lay.text_width_px(fig, text, 7) for text in shown_values) + 12) / width_px
    ax = fig.add_axes((left, 0.12, max(0.1, 1 - left - right), lay.top(fig) - 0.18))
    ax.tick_params(labelsize=7)
    positions = list(range(len(values)))[::-1]
    numbers = [v if v is not None and math.isfinite(v) else 0.0 for _, v in values]
    ax.barh(positions, numbers, color=[step_colour(v, steps) for _, v in values], height=0.7)
    ax.set_yticks(positions, [label for label, _ in values])
    ax.set_xlim(low, high)
    found = ticks(low, high, panel.unit, most=4)
    ax.xaxis.set_major_locator(FixedLocator([v for v, _ in found]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, p: dict(found).get(v, "")))
    for step in steps:
        if step.value is not None:
            ax.axvline(step.value, color=colour(step.color), linestyle="--", linewidth=1)
    for position, text in zip(positions, shown_values, strict=True):
        ax.text(
            1.0, position, f" {text}", transform=ax.get_yaxis_transform(), fontsize=7,
            va="center", ha="left", clip_on=False,
        )  # fmt: skip
    return rendered


def piechart(fig: Figure, data: PanelData, window: Window) -> Rendered:
    panel = data.panel
    name, _ = reducer(panel)
    rendered = Rendered("piechart", notes=[f"value: {name}"])
    ax = fig.add_axes((0.02, 0.04, 0.5, lay.top(fig) - 0.08))
    ax.set_aspect("equal")
    ax.set_axis_off()
    values = [(label, v) for label, v in reduced(data) if v is not None and math.isfinite(v)]
    total = sum(v for _, v in values if v > 0)
    if total <= 0:
        lay.no_data(ax, no_value(panel))
        return rendered
    shown = [(label, v) for label, v in values if v > 0]
    ax.pie(
        [v for _, v in shown],
        colors=[PALETTE[i % len(PALETTE)] for i in range(len(shown))],
        wedgeprops={"width": 0.45} if options(panel).get("pieType") == "donut" else None,
        startangle=90,
        counterclock=False,
    )
    legend = fig.add_axes((0.54, 0.04, 0.44, lay.top(fig) - 0.08))
    legend.set_axis_off()
    for index, (label, v) in enumerate(shown[:12]):
        y = 0.95 - index * 0.1
        lay.swatch(legend, (0, y - 0.03), PALETTE[index % len(PALETTE)])
        text = f"{label or '(no labels)'}  {format_unit(v, panel.unit)}  {100 * v / total:.1f}%"
        legend.text(0.08, y, text, fontsize=7, va="center")
    return rendered


def table(fig: Figure, data: PanelData, window: Window) -> Rendered:
    cells = table_cells(data)
    rendered = Rendered("table", table=cells)
    ax = fig.add_axes((0.01, 0.02, 0.98, lay.top(fig) - 0.04))
    ax.set_axis_off()
    if len(cells) == 1:
        lay.no_data(ax, no_value(data.panel))
        return rendered
    fits = max(1, int(data.panel.grid.h * lay.ROW_PX / 18) - 2)
    body = cells[1 : 1 + fits]
    if len(cells) - 1 > fits:
        rendered.notes.append(f"image shows {fits} of {len(cells) - 1} rows; the page has all")
    drawn = ax.table(cellText=body, colLabels=cells[0], loc="upper center", cellLoc="left")
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(7)
    for (row, _col), cell in drawn.get_celld().items():
        cell.set_edgecolor("#DDDDDD")
        if row == 0:
            cell.set_facecolor("#F0F0F0")
            cell.set_text_props(weight="bold")
    return rendered


def heatmap(fig: Figure, data: PanelData, window: Window) -> Rendered:
    panel = data.panel
    rendered = Rendered("heatmap")
    ax = fig.add_axes((0.14, 0.12, 0.76, lay.top(fig) - 0.18))
    lay.time_axis(ax, window)
    ax.tick_params(labelsize=7)
    if not data.lines:
        lay.no_data(ax, no_value(panel))
        return rendered
    stamps = sorted({t for line in data.lines for t, _ in line.series.values})
    index = {t: i for i, t in enumerate(stamps)}
    bucketed = all("le" in line.series.labels for line in data.lines)
    rows: dict[Any, list[float]] = {}
    for line in data.lines:
        key: Any = float(line.series.labels["le"]) if bucketed else line.legend
        row = rows.setdefault(key, [0.0] * len(stamps))
        for t, v in line.series.values:
            if math.isfinite(v):
                row[index[t]] += v
    # Buckets were de-accumulated by prepare(); here they only need their order.
    keys = sorted(rows) if bucketed else list(rows)
    found = options(panel)
    y_unit = str((found.get("yAxis") or {}).get("unit") or panel.unit)
    cell_unit = str((found.get("cellValues") or {}).get("unit") or panel.unit)
    labels = [
        (format_unit(k, y_unit) if math.isfinite(k) else "+Inf") if bucketed else str(k)
        for k in keys
    ]
    scheme = found.get("color") or {}
    cmap = str(scheme.get("scheme") or "Oranges").removeprefix("interpolate")
    cmap = cmap if cmap in matplotlib.colormaps else "Oranges"
    edges = [*(lay.x(t) for t in stamps), lay.x(stamps[-1] + window.step)]
    matrix = [[max(0.0, c) for c in rows[k]] for k in keys]
    mesh = ax.pcolormesh(edges, list(range(len(keys) + 1)), matrix, cmap=cmap, shading="flat")
    ax.set_yticks([i + 0.5 for i in range(len(keys))], labels)
    if len(keys) > 12:
        for position, tick in enumerate(ax.yaxis.get_major_ticks()):
            tick.label1.set_visible(position % math.ceil(len(keys) / 12) == 0)
    bar = fig.colorbar(mesh, ax=ax, fraction=0.04, pad=0.01)
    bar.ax.tick_params(labelsize=6)
    # The cells count in their own unit (cellValues.unit), not the buckets'.
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: format_unit(v, cell_unit)))
    rendered.notes.append(f"y axis in {y_unit or 'no unit'}, cells in {cell_unit or 'no unit'}")
    return rendered


if __name__ == "__main__":
    sys.exit(
        f"{__file__}: not a command, a helper of scripts.preview; "
        "run that one (python -m scripts.preview --help)"
    )
