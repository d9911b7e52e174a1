"""Draw one Grafana panel's data into a PNG with matplotlib, roughly as Grafana shows it.

    info = render(PanelData(panel, series), window, Path("out-preview/main-panel-2.png"))

Timeseries are lines (threshold lines when the panel shows them), stat and
gauge a big number in its threshold colour, bar gauge bars, heatmap an image
of bucket rates, table a table, pie chart a pie. Other types get a labelled
placeholder.
"""

from __future__ import annotations

import math
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

from matplotlib import colors as mcolors
from matplotlib import dates as mdates
from matplotlib.figure import Figure
from matplotlib.patches import Wedge
from matplotlib.ticker import FuncFormatter, MaxNLocator

from scripts._grafana_json import Panel, Step, Target
from scripts._promapi import Series, Window

# Pixels per grid unit: Grafana's 24 columns across about 1300 pixels, rows of 30 px.
COLUMN_PX = 56
ROW_PX = 36
DPI = 100
# Grafana's classic palette, in its order.
PALETTE = (
    "#7EB26D",
    "#EAB839",
    "#6ED0E0",
    "#EF843C",
    "#E24D42",
    "#1F78C1",
    "#BA43A9",
    "#705DA0",
    "#508642",
    "#CCA300",
    "#447EBC",
    "#C15C17",
    "#890F02",
    "#0A437C",
    "#6D1F62",
    "#584477",
)
# Grafana's named colours (the ones threshold steps use).
NAMED_COLOURS = {
    "green": "#73BF69", "dark-green": "#37872D", "semi-dark-green": "#56A64B",
    "light-green": "#96D98D", "super-light-green": "#C8F2C2",
    "red": "#F2495C", "dark-red": "#C4162A", "semi-dark-red": "#E02F44",
    "light-red": "#FF7383", "super-light-red": "#FFA6B0",
    "orange": "#FF9830", "dark-orange": "#FA6400", "semi-dark-orange": "#FF780A",
    "light-orange": "#FFB357", "super-light-orange": "#FFCB7D",
    "yellow": "#FADE2A", "dark-yellow": "#E0B400", "semi-dark-yellow": "#F2CC0C",
    "light-yellow": "#FFEE52", "super-light-yellow": "#FFF899",
    "blue": "#5794F2", "dark-blue": "#1F60C4", "semi-dark-blue": "#3274D9",
    "light-blue": "#8AB8FF", "super-light-blue": "#C0D8FF",
    "purple": "#B877D9", "dark-purple": "#8F3BB8", "semi-dark-purple": "#A352CC",
    "light-purple": "#CA95E5", "super-light-purple": "#DEB6F2",
    "text": "#464C54", "transparent": "#FFFFFF",
}  # fmt: skip
NO_DATA_GREY = "#8E8E8E"
# Human names for the units shown in the preview's page.
UNIT_NAMES = {
    "s": "seconds",
    "ms": "milliseconds",
    "µs": "microseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "percentunit": "percent (0.0-1.0)",
    "percent": "percent (0-100)",
    "reqps": "requests/sec",
    "rps": "requests/sec",
    "ops": "ops/sec",
    "opm": "ops/min",
    "iops": "I/O ops/sec",
    "bytes": "bytes (IEC)",
    "decbytes": "bytes (SI)",
    "short": "short",
}
# --- units and colours --------------------------------------------------------


def _number(value: float, decimals: int | None = None) -> str:
    if decimals is not None:
        return f"{value:.{decimals}f}"
    if value == 0:
        return "0"
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return text if "e" not in text else f"{value:.2e}"


def _scaled(value: float, steps: Sequence[tuple[float, str]], decimals: int | None) -> str:
    """``value`` in the largest of ``steps`` (factor, suffix) it reaches."""
    factor, suffix = steps[0]
    for candidate, name in steps:
        if abs(value) >= candidate:
            factor, suffix = candidate, name
    return f"{_number(value / factor, decimals)}{suffix}"


_TIME_STEPS = (
    (1e-9, " ns"),
    (1e-6, " µs"),
    (1e-3, " ms"),
    (1.0, " s"),
    (60.0, " min"),
    (3600.0, " hour"),
    (86400.0, " day"),
)
_UNIT_SECONDS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_RATES = {
    "reqps": " req/s",
    "rps": " req/s",
    "ops": " ops/s",
    "opm": " ops/min",
    "iops": " io/s",
    "cps": " c/s",
    "wps": " wr/s",
}


def format_unit(value: float, unit: str, decimals: int | None = None) -> str:
    """``value`` as Grafana writes it for ``unit`` (its unit ids: s, percentunit, reqps...)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if unit in _UNIT_SECONDS:
        return _scaled(value * _UNIT_SECONDS[unit], _TIME_STEPS, decimals)
    if unit == "percentunit":
        return f"{_number(value * 100, decimals)}%"
    if unit == "percent":
        return f"{_number(value, decimals)}%"
    if unit in _RATES:
        return f"{_number(value, decimals)}{_RATES[unit]}"
    if unit in ("bytes", "decbytes"):
        base = 1024.0 if unit == "bytes" else 1000.0
        names = (
            (" B", " KiB", " MiB", " GiB", " TiB")
            if unit == "bytes"
            else (" B", " kB", " MB", " GB", " TB")
        )
        return _scaled(value, [(base**i, n) for i, n in enumerate(names)], decimals)
    if unit == "short":
        return _scaled(value, ((1.0, ""), (1e3, " K"), (1e6, " Mil"), (1e9, " Bil")), decimals)
    if unit.startswith("suffix:"):
        return f"{_number(value, decimals)}{unit[7:]}"
    if unit.startswith("prefix:"):
        return f"{unit[7:]}{_number(value, decimals)}"
    if unit in ("", "none"):
        return _number(value, decimals)
    return f"{_number(value, decimals)} {unit}"


def unit_label(unit: str) -> str:
    """The unit as the page shows it: ``seconds (s)``; empty for none."""
    if unit in ("", "none"):
        return ""
    name = UNIT_NAMES.get(unit)
    return f"{name} ({unit})" if name and name != unit else unit


def colour(name: str) -> str:
    """A Grafana colour name (``green``, ``dark-red``, ``#hex``, ``rgba(...)``) as hex."""
    text = name.strip()
    if text in NAMED_COLOURS:
        return NAMED_COLOURS[text]
    if text.startswith("rgb"):
        parts = [p.strip() for p in text[text.find("(") + 1 : text.rfind(")")].split(",")]
        try:
            red, green, blue = (int(float(p)) for p in parts[:3])
        except ValueError:
            return NO_DATA_GREY
        return f"#{red:02X}{green:02X}{blue:02X}"
    try:
        return str(mcolors.to_hex(text))
    except ValueError:
        return NO_DATA_GREY


def absolute_steps(panel: Panel, data_max: float | None) -> list[Step]:
    """The panel's threshold steps in the data's own scale (percentage mode converted)."""
    if panel.threshold_mode != "percentage":
        return list(panel.steps)
    low = panel.minimum if panel.minimum is not None else 0.0
    high = panel.maximum if panel.maximum is not None else data_max
    if high is None or high == low:
        return []
    return [
        Step(None if s.value is None else low + (high - low) * s.value / 100, s.color)
        for s in panel.steps
    ]


def step_colour(value: float | None, steps: Sequence[Step]) -> str:
    """The colour of the highest step at or below ``value`` (the base step below all)."""
    if value is None or math.isnan(value) or not steps:
        return NO_DATA_GREY if value is None or not steps else colour(steps[0].color)
    chosen = steps[0].color
    for step in steps:
        if step.value is None or value >= step.value:
            chosen = step.color
    return colour(chosen)


# --- reducing a series to one number --------------------------------------------


def _finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if not math.isnan(v)]


REDUCERS: dict[str, Callable[[Sequence[float]], float | None]] = {
    "lastNotNull": lambda v: _finite(v)[-1] if _finite(v) else None,
    "last": lambda v: v[-1] if v else None,
    "firstNotNull": lambda v: _finite(v)[0] if _finite(v) else None,
    "first": lambda v: v[0] if v else None,
    "mean": lambda v: sum(_finite(v)) / len(_finite(v)) if _finite(v) else None,
    "max": lambda v: max(_finite(v)) if _finite(v) else None,
    "min": lambda v: min(_finite(v)) if _finite(v) else None,
    "sum": lambda v: sum(_finite(v)) if _finite(v) else None,
    "count": lambda v: float(len(v)),
    "range": lambda v: max(_finite(v)) - min(_finite(v)) if _finite(v) else None,
    "delta": lambda v: _finite(v)[-1] - _finite(v)[0] if _finite(v) else None,
    "diff": lambda v: _finite(v)[-1] - _finite(v)[0] if _finite(v) else None,
}


def reducer(panel: Panel) -> tuple[str, Callable[[Sequence[float]], float | None]]:
    """The panel's reduce calculation (options.reduceOptions.calcs), default lastNotNull."""
    options = panel.raw.get("options")
    calcs: Any = None
    if isinstance(options, dict):
        calcs = (options.get("reduceOptions") or {}).get("calcs") or (
            options.get("fieldOptions") or {}
        ).get("calcs")
    name = calcs[0] if isinstance(calcs, list) and calcs else "lastNotNull"
    return (name, REDUCERS[name]) if name in REDUCERS else ("lastNotNull", REDUCERS["lastNotNull"])


# --- input and output --------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One series of a panel, with the target it came from and its legend."""

    target: Target
    series: Series
    legend: str


@dataclass(frozen=True)
class PanelData:
    """A panel with its query results, or the error that stopped them."""

    panel: Panel
    lines: tuple[Line, ...] = ()
    error: str | None = None


@dataclass
class Rendered:
    """What was drawn: how (``kind``), the table cells for the page, and notes."""

    kind: str
    table: list[list[str]] | None = None
    notes: list[str] = field(default_factory=list)


def _figure(panel: Panel) -> Figure:
    width = max(320, panel.grid.w * COLUMN_PX) / DPI
    height = max(160, panel.grid.h * ROW_PX) / DPI
    fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    fig.text(0.01, 0.985, panel.title or "(untitled)", fontsize=10, weight="bold", va="top")
    if panel.unit:
        fig.text(0.99, 0.985, panel.unit, fontsize=8, color="#666666", va="top", ha="right")
    return fig


def _top(panel: Panel) -> float:
    """Fraction of the figure below the title line."""
    return 1 - 26 / (max(160, panel.grid.h * ROW_PX))


def _message(fig: Figure, panel: Panel, text: str, colour_: str, box: str) -> None:
    ax = fig.add_axes((0.02, 0.04, 0.96, _top(panel) - 0.06))
    ax.set_axis_off()
    ax.add_patch(
        matplotlib.patches.FancyBboxPatch(
            (0, 0),
            1,
            1,
            boxstyle="round,pad=0,rounding_size=0.02",
            color=box,
            transform=ax.transAxes,
        )
    )
    width = max(30, int(panel.grid.w * COLUMN_PX / 7))
    wrapped = "\n".join(textwrap.fill(p, width) for p in text.splitlines()[:12])
    ax.text(0.5, 0.5, wrapped, ha="center", va="center", fontsize=8, color=colour_, wrap=True)


def _x(timestamp: float) -> float:
    """A Unix timestamp as a matplotlib date number (days since its epoch)."""
    return float(mdates.date2num(datetime.fromtimestamp(timestamp, UTC)))


def _times(series: Series) -> list[float]:
    return [_x(t) for t, _ in series.values]


def _time_axis(ax: Any, window: Window) -> None:
    ax.set_xlim(_x(window.start), _x(window.end))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=UTC, maxticks=8))
    # Times in UTC (the page says so); no offset text, which would collide with the legend.
    if window.range < 600:
        pattern = "%H:%M:%S"
    elif window.range < 2 * 86400:
        pattern = "%H:%M"
    else:
        pattern = "%m-%d %H:%M"
    ax.xaxis.set_major_formatter(mdates.DateFormatter(pattern, tz=UTC))


def _decimals(panel: Panel) -> int | None:
    defaults = (panel.raw.get("fieldConfig") or {}).get("defaults") or {}
    value = defaults.get("decimals")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _no_data(ax: Any) -> None:
    ax.text(
        0.5,
        0.5,
        "No data",
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=12,
        color=NO_DATA_GREY,
    )


def _shows_threshold_lines(panel: Panel) -> bool:
    """Whether Grafana draws the threshold steps on this time series panel."""
    custom = ((panel.raw.get("fieldConfig") or {}).get("defaults") or {}).get("custom") or {}
    mode = (custom.get("thresholdsStyle") or {}).get("mode") or "off"
    return mode != "off"


# --- panel types --------------------------------------------------------------------


def _timeseries(fig: Figure, data: PanelData, window: Window) -> Rendered:
    panel = data.panel
    rendered = Rendered("timeseries")
    ax = fig.add_axes((0.09, 0.2 if data.lines else 0.12, 0.89, _top(panel) - 0.27))
    _time_axis(ax, window)
    ax.tick_params(labelsize=7)
    ax.grid(True, color="#E6E6E6", linewidth=0.6)
    decimals = _decimals(panel)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: format_unit(v, panel.unit, decimals)))
    custom = ((panel.raw.get("fieldConfig") or {}).get("defaults") or {}).get("custom") or {}
    stacked = (custom.get("stacking") or {}).get("mode") in ("normal", "percent")
    fill = float(custom.get("fillOpacity") or 0) / 100
    all_values = [v for line in data.lines for _, v in line.series.values if math.isfinite(v)]
    if not all_values:
        _no_data(ax)
    if stacked and data.lines:
        stamps = sorted({t for line in data.lines for t, _ in line.series.values})
        rows = []
        for line in data.lines:
            lookup = dict(line.series.values)
            rows.append(
                [lookup.get(t, 0.0) if math.isfinite(lookup.get(t, 0.0)) else 0.0 for t in stamps]
            )
        ax.stackplot(
            [_x(t) for t in stamps],
            rows,
            colors=[PALETTE[i % len(PALETTE)] for i in range(len(rows))],
            labels=[line.legend for line in data.lines],
            alpha=0.8,
        )
        rendered.notes.append("stacked")
    else:
        for index, line in enumerate(data.lines):
            colour_ = PALETTE[index % len(PALETTE)]
            values = [v for _, v in line.series.values]
            ax.plot(_times(line.series), values, color=colour_, linewidth=1.3, label=line.legend)
            if fill:
                ax.fill_between(_times(line.series), values, alpha=fill, color=colour_)
    if panel.steps:
        steps = absolute_steps(panel, max(all_values) if all_values else None)
        numeric = [s for s in steps if s.value is not None]
        if _shows_threshold_lines(panel):
            for step in numeric:
                assert step.value is not None
                ax.axhline(step.value, color=colour(step.color), linestyle="--", linewidth=1.2)
                ax.annotate(
                    format_unit(step.value, panel.unit, decimals),
                    (1.0, step.value),
                    xycoords=("axes fraction", "data"),
                    fontsize=7,
                    color=colour(step.color),
                    ha="right",
                    va="bottom",
                )
            low, high = ax.get_ylim()
            marks = [s.value for s in numeric if s.value is not None]
            if marks:
                # Keep every threshold line in view, so the distance to it shows.
                ax.set_ylim(min(low, *marks), max(high, max(marks) * 1.05))
        elif numeric:
            rendered.notes.append(
                "threshold steps not drawn: Grafana hides them (custom.thresholdsStyle.mode is off)"
            )
    if data.lines:
        shown = 8
        handles, labels = ax.get_legend_handles_labels()
        if len(handles) > shown:
            rendered.notes.append(f"legend shows {shown} of {len(handles)} series")
        ax.legend(
            handles[:shown],
            labels[:shown],
            loc="upper left",
            bbox_to_anchor=(0, -0.12),
            ncol=min(4, max(1, panel.grid.w // 6)),
            fontsize=7,
            frameon=False,
        )
    return rendered


def _reduced(data: PanelData) -> list[tuple[str, float | None]]:
    _name, reduce = reducer(data.panel)
    return [(line.legend, reduce([v for _, v in line.series.values])) for line in data.lines]


def _stat(fig: Figure, data: PanelData, window: Window) -> Rendered:
    panel = data.panel
    rendered = Rendered(panel.type)
    name, _ = reducer(panel)
    rendered.notes.append(f"value: {name}")
    values = _reduced(data) or [("", None)]
    options = panel.raw.get("options") if isinstance(panel.raw.get("options"), dict) else {}
    colour_mode = (options or {}).get("colorMode") or "value"
    finite = [v for _, v in values if v is not None and math.isfinite(v)]
    steps = absolute_steps(panel, max(finite) if finite else None)
    columns = min(
        len(values),
        max(1, math.ceil(math.sqrt(len(values) * panel.grid.w / max(panel.grid.h, 1) / 3))),
    )
    rows = math.ceil(len(values) / columns)
    top = _top(panel)
    no_value = str(
        ((panel.raw.get("fieldConfig") or {}).get("defaults") or {}).get("noValue") or "No data"
    )
    for index, (label, value) in enumerate(values):
        col, row = index % columns, index // columns
        left, width = col / columns, 1 / columns
        height = (top - 0.02) / rows
        bottom = top - (row + 1) * height
        ax = fig.add_axes((left + 0.01, bottom + 0.01, width - 0.02, height - 0.02))
        ax.set_axis_off()
        tone = step_colour(value, steps)
        text_colour = tone
        if colour_mode == "background" and value is not None:
            ax.add_patch(
                matplotlib.patches.Rectangle((0, 0), 1, 1, color=tone, transform=ax.transAxes)
            )
            text_colour = "white"
        line = data.lines[index] if index < len(data.lines) else None
        if panel.type == "gauge":
            _gauge(ax, panel, value, steps, text_colour)
        else:
            if line is not None and (options or {}).get("graphMode", "area") == "area":
                _sparkline(fig, ax, line, window, tone)
            shown = no_value if value is None else format_unit(value, panel.unit, _decimals(panel))
            ax.text(
                0.5,
                0.45,
                shown,
                ha="center",
                va="center",
                weight="bold",
                fontsize=_fitting_size(fig, ax, shown),
                color=text_colour,
                transform=ax.transAxes,
            )
        if label and len(values) > 1:
            ax.text(
                0.5,
                0.95,
                label,
                ha="center",
                va="top",
                fontsize=7,
                color="#444444",
                transform=ax.transAxes,
            )
    return rendered


def _fitting_size(fig: Figure, ax: Any, text: str) -> float:
    """The largest font size (points) at which ``text`` fits its cell, within 9-36."""
    box = ax.get_position()
    width_px = box.width * fig.get_figwidth() * DPI
    height_px = box.height * fig.get_figheight() * DPI
    # A bold digit is about 0.62 em wide; a point is DPI/72 pixels.
    by_width = width_px * 0.85 / (0.62 * max(1, len(text))) * 72 / DPI
    by_height = height_px * 0.45 * 72 / DPI
    return max(9.0, min(36.0, by_width, by_height))


def _sparkline(fig: Figure, ax: Any, line: Line, window: Window, tone: str) -> None:
    box = ax.get_position()
    spark = fig.add_axes((box.x0, box.y0, box.width, box.height * 0.35))
    spark.set_axis_off()
    values = [v for _, v in line.series.values]
    if len(values) > 1:
        times = _times(line.series)
        spark.fill_between(times, values, color=tone, alpha=0.15, linewidth=0)
        spark.plot(times, values, color=tone, linewidth=0.8, alpha=0.6)
        spark.set_xlim(_x(window.start), _x(window.end))


def _gauge(ax: Any, panel: Panel, value: float | None, steps: Sequence[Step], tone: str) -> None:
    low = panel.minimum if panel.minimum is not None else 0.0
    default_high = 1.0 if panel.unit == "percentunit" else 100.0
    high = panel.maximum if panel.maximum is not None else default_high
    span = (high - low) or 1.0

    def angle(v: float) -> float:
        return 180.0 * (1 - min(1.0, max(0.0, (v - low) / span)))

    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-0.35, 1.1)
    ax.set_aspect("equal")
    bounds = [low] + [s.value for s in steps[1:] if s.value is not None] + [high]
    for index, step in enumerate(steps):
        if index + 1 >= len(bounds):
            break
        start, end = bounds[index], bounds[index + 1]
        ax.add_patch(
            Wedge((0, 0), 1.0, angle(end), angle(start), width=0.07, color=colour(step.color))
        )
    ax.add_patch(Wedge((0, 0), 0.9, 0, 180, width=0.28, color="#EEEEEE"))
    if value is not None and math.isfinite(value):
        ax.add_patch(Wedge((0, 0), 0.9, angle(value), 180, width=0.28, color=tone))
    shown = "No data" if value is None else format_unit(value, panel.unit, _decimals(panel))
    ax.text(0, 0.05, shown, ha="center", va="center", fontsize=14, weight="bold", color=tone)


def _bargauge(fig: Figure, data: PanelData, window: Window) -> Rendered:
    panel = data.panel
    name, _ = reducer(panel)
    rendered = Rendered("bargauge", notes=[f"value: {name}"])
    values = _reduced(data)
    # Room on the left for series names and on the right for the values.
    ax = fig.add_axes((0.24, 0.12, 0.6, _top(panel) - 0.18))
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.tick_params(labelsize=7)
    if not values:
        ax.set_axis_off()
        _no_data(ax)
        return rendered
    finite = [v for _, v in values if v is not None and math.isfinite(v)]
    steps = absolute_steps(panel, max(finite) if finite else None)
    marks = [s.value for s in steps if s.value is not None]
    low = panel.minimum if panel.minimum is not None else min(0.0, *finite) if finite else 0.0
    high = panel.maximum if panel.maximum is not None else max([*finite, *marks, 0.0]) * 1.1 or 1.0
    labels = [label for label, _ in values]
    numbers = [v if v is not None and math.isfinite(v) else 0.0 for _, v in values]
    tones = [step_colour(v, steps) for _, v in values]
    positions = list(range(len(values)))[::-1]
    ax.barh(positions, numbers, color=tones, height=0.7)
    ax.set_yticks(positions, labels)
    ax.set_xlim(low, high if high > low else low + 1)
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _p: format_unit(v, panel.unit, _decimals(panel)))
    )
    for step in steps:
        if step.value is not None:
            ax.axvline(step.value, color=colour(step.color), linestyle="--", linewidth=1)
    for position, (_label, value) in zip(positions, values, strict=True):
        shown = "No data" if value is None else format_unit(value, panel.unit, _decimals(panel))
        ax.text(
            1.0,
            position,
            f" {shown}",
            transform=ax.get_yaxis_transform(),
            fontsize=7,
            va="center",
            ha="left",
            clip_on=False,
        )
    return rendered


def _piechart(fig: Figure, data: PanelData, window: Window) -> Rendered:
    panel = data.panel
    name, _ = reducer(panel)
    rendered = Rendered("piechart", notes=[f"value: {name}"])
    ax = fig.add_axes((0.02, 0.04, 0.5, _top(panel) - 0.08))
    ax.set_aspect("equal")
    ax.set_axis_off()
    values = [(label, v) for label, v in _reduced(data) if v is not None and math.isfinite(v)]
    total = sum(v for _, v in values if v > 0)
    if total <= 0:
        _no_data(ax)
        return rendered
    options = panel.raw.get("options") if isinstance(panel.raw.get("options"), dict) else {}
    donut = (options or {}).get("pieType") == "donut"
    shown = [(label, v) for label, v in values if v > 0]
    ax.pie(
        [v for _, v in shown],
        colors=[PALETTE[i % len(PALETTE)] for i in range(len(shown))],
        wedgeprops={"width": 0.45} if donut else None,
        startangle=90,
        counterclock=False,
    )
    legend = fig.add_axes((0.54, 0.04, 0.44, _top(panel) - 0.08))
    legend.set_axis_off()
    for index, (label, v) in enumerate(shown[:12]):
        y = 0.95 - index * 0.1
        legend.add_patch(
            matplotlib.patches.Rectangle(
                (0, y - 0.03), 0.05, 0.06, color=PALETTE[index % len(PALETTE)]
            )
        )
        text = f"{label or '(no labels)'}  {format_unit(v, panel.unit)}  {100 * v / total:.1f}%"
        legend.text(0.08, y, text, fontsize=7, va="center")
    return rendered


def table_cells(data: PanelData) -> list[list[str]]:
    """Rows of a table panel: one per label set, a value column per query (last value)."""
    panel = data.panel
    refs = list(dict.fromkeys(line.target.ref_id for line in data.lines))
    names = {line.series.labels.get("__name__") for line in data.lines}
    keep_name = len(names) > 1
    columns = sorted(
        {k for line in data.lines for k in line.series.labels if k != "__name__" or keep_name}
    )
    value_columns = ["Value"] if len(refs) <= 1 else [f"Value #{r}" for r in refs]
    merged: dict[tuple[str, ...], dict[str, float | None]] = {}
    for line in data.lines:
        key = tuple(line.series.labels.get(c, "") for c in columns)
        value = REDUCERS["lastNotNull"]([v for _, v in line.series.values])
        column = "Value" if len(refs) <= 1 else f"Value #{line.target.ref_id}"
        merged.setdefault(key, {})[column] = value
    header = [*columns, *value_columns]
    rows = sorted(merged.items())
    # Grafana's table sorts by options.sortBy (a column's display name); so does the preview.
    for sort in reversed(panel.raw.get("options", {}).get("sortBy") or []):
        name = sort.get("displayName")
        if name in value_columns:
            present = [r for r in rows if r[1].get(name) is not None]
            absent = [r for r in rows if r[1].get(name) is None]
            present.sort(key=lambda r: r[1][name] or 0.0, reverse=bool(sort.get("desc")))
            rows = present + absent
        elif name in columns:
            index = columns.index(name)
            rows.sort(key=lambda r: r[0][index], reverse=bool(sort.get("desc")))

    def shown(value: float | None) -> str:
        return "" if value is None else format_unit(value, panel.unit, _decimals(panel))

    body = [[*key, *(shown(cells.get(c)) for c in value_columns)] for key, cells in rows]
    return [header, *body]


def _table(fig: Figure, data: PanelData, window: Window) -> Rendered:
    cells = table_cells(data)
    rendered = Rendered("table", table=cells)
    ax = fig.add_axes((0.01, 0.02, 0.98, _top(data.panel) - 0.04))
    ax.set_axis_off()
    if len(cells) == 1:
        _no_data(ax)
        return rendered
    fits = max(1, int(data.panel.grid.h * ROW_PX / 18) - 2)
    body = cells[1 : 1 + fits]
    if len(cells) - 1 > fits:
        rendered.notes.append(f"image shows {fits} of {len(cells) - 1} rows; the page has all")
    table = ax.table(cellText=body, colLabels=cells[0], loc="upper center", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    for (row, _col), cell in table.get_celld().items():
        cell.set_edgecolor("#DDDDDD")
        if row == 0:
            cell.set_facecolor("#F0F0F0")
            cell.set_text_props(weight="bold")
    return rendered


def _bucket_bound(labels: Mapping[str, str]) -> float:
    # float() reads Prometheus' "+Inf" too.
    return float(labels["le"])


def deaccumulate(lines: Sequence[Line]) -> list[Line]:
    """Histogram buckets sorted by ``le``, each holding only its own share, as Grafana does.

    Prometheus buckets are cumulative (``le="0.5"`` counts everything up to
    0.5 s); a target with ``format: heatmap`` is shown bucket by bucket.
    Series that differ in labels other than ``le`` are treated separately.
    """
    groups: dict[tuple[tuple[str, str], ...], list[Line]] = {}
    for line in lines:
        rest = tuple(sorted((k, v) for k, v in line.series.labels.items() if k != "le"))
        groups.setdefault(rest, []).append(line)
    result = []
    for group in groups.values():
        previous: dict[float, float] = {}
        for line in sorted(group, key=lambda item: _bucket_bound(item.series.labels)):
            own = [(t, v - previous.get(t, 0.0)) for t, v in line.series.values]
            previous = dict(line.series.values)
            result.append(Line(line.target, Series(line.series.labels, own), line.legend))
    return result


def prepare(data: PanelData) -> tuple[PanelData, list[str]]:
    """Apply what Grafana does to query results before drawing: de-accumulate heatmap targets."""
    lines: list[Line] = []
    notes: list[str] = []
    refs = list(dict.fromkeys(line.target.ref_id for line in data.lines))
    for ref in refs:
        group = [line for line in data.lines if line.target.ref_id == ref]
        as_histogram = group[0].target.format == "heatmap" or data.panel.type == "heatmap"
        if as_histogram and all("le" in line.series.labels for line in group):
            group = deaccumulate(group)
            notes.append("bucket rates, de-accumulated from cumulative le buckets")
        lines.extend(group)
    return PanelData(data.panel, tuple(lines), data.error), list(dict.fromkeys(notes))


def _heatmap(fig: Figure, data: PanelData, window: Window) -> Rendered:
    panel = data.panel
    rendered = Rendered("heatmap")
    ax = fig.add_axes((0.14, 0.12, 0.76, _top(panel) - 0.18))
    _time_axis(ax, window)
    ax.tick_params(labelsize=7)
    if not data.lines:
        _no_data(ax)
        return rendered
    stamps = sorted({t for line in data.lines for t, _ in line.series.values})
    index = {t: i for i, t in enumerate(stamps)}
    bucketed = all("le" in line.series.labels for line in data.lines)
    rows: dict[Any, list[float]] = {}
    for line in data.lines:
        key: Any = _bucket_bound(line.series.labels) if bucketed else line.legend
        row = rows.setdefault(key, [0.0] * len(stamps))
        for t, v in line.series.values:
            if math.isfinite(v):
                row[index[t]] += v
    # Buckets were de-accumulated by prepare(); here they only need their order.
    keys = sorted(rows) if bucketed else list(rows)
    matrix = [rows[k] for k in keys]
    if bucketed:
        labels = [format_unit(k, panel.unit) if math.isfinite(k) else "+Inf" for k in keys]
    else:
        labels = [str(k) for k in keys]
    scheme = (
        (panel.raw.get("options") or {}) if isinstance(panel.raw.get("options"), dict) else {}
    ).get("color") or {}
    if not scheme:
        scheme = panel.raw.get("color") if isinstance(panel.raw.get("color"), dict) else {}
    cmap = str((scheme or {}).get("scheme") or (scheme or {}).get("colorScheme") or "Oranges")
    cmap = cmap.removeprefix("interpolate")
    if cmap not in matplotlib.colormaps:
        cmap = "Oranges"
    edges_t = [*(_x(t) for t in stamps), _x(stamps[-1] + window.step)]
    mesh = ax.pcolormesh(
        edges_t,
        list(range(len(keys) + 1)),
        [[max(0.0, c) for c in r] for r in matrix],
        cmap=cmap,
        shading="flat",
    )
    ax.set_yticks([i + 0.5 for i in range(len(keys))], labels)
    if len(keys) > 12:
        for position, tick in enumerate(ax.yaxis.get_major_ticks()):
            tick.label1.set_visible(position % math.ceil(len(keys) / 12) == 0)
    colorbar = fig.colorbar(mesh, ax=ax, fraction=0.04, pad=0.01)
    colorbar.ax.tick_params(labelsize=6)
    return rendered


def _placeholder(fig: Figure, data: PanelData, window: Window) -> Rendered:
    panel = data.panel
    if panel.type == "text":
        options = panel.raw.get("options") if isinstance(panel.raw.get("options"), dict) else {}
        content = str((options or {}).get("content") or panel.raw.get("content") or "")
        _message(fig, panel, f"text panel\n\n{content.strip()}", "#333333", "#F7F7F7")
        return Rendered("text")
    queries = "\n".join(t.expr for t in panel.targets[:4])
    _message(
        fig,
        panel,
        f"panel type {panel.type!r} is not drawn by the preview\n\n{queries}",
        "#555555",
        "#F2F2F2",
    )
    return Rendered("placeholder", notes=[f"type {panel.type!r} is shown as a placeholder"])


RENDERERS: dict[str, Callable[[Figure, PanelData, Window], Rendered]] = {
    "timeseries": _timeseries,
    "graph": _timeseries,
    "stat": _stat,
    "singlestat": _stat,
    "gauge": _stat,
    "bargauge": _bargauge,
    "table": _table,
    "heatmap": _heatmap,
    "piechart": _piechart,
}


def _draw(data: PanelData, window: Window) -> tuple[Figure, Rendered]:
    fig = _figure(data.panel)
    if data.error is not None:
        _message(fig, data.panel, f"query failed\n\n{data.error}", "#C4162A", "#FDECEE")
        return fig, Rendered("error", notes=[data.error])
    prepared, notes = prepare(data)
    rendered = RENDERERS.get(data.panel.type, _placeholder)(fig, prepared, window)
    rendered.notes[:0] = notes
    return fig, rendered


def render(data: PanelData, window: Window, path: Path) -> Rendered:
    """Draw ``data`` into the PNG at ``path``; a failure to draw becomes an error image."""
    # Titles, legends and queries are plain text: a "$" in them is not TeX.
    with matplotlib.rc_context({"text.parse_math": False}):
        try:
            fig, rendered = _draw(data, window)
            # Text is laid out while saving, so saving can fail too.
            fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
        except Exception as exc:  # a preview shows every panel, even one it cannot draw
            fig = _figure(data.panel)
            _message(fig, data.panel, f"could not draw this panel: {exc!r}", "#C4162A", "#FDECEE")
            rendered = Rendered("error", notes=[f"could not draw: {exc!r}"])
            fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return rendered


if __name__ == "__main__":
    sys.exit(
        f"{__file__}: not a command, a helper of scripts.preview; "
        "run one of those (python -m scripts.NAME --help)"
    )
