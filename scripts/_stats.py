"""Stat and gauge panels: one big number per series, coloured by its threshold step."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle, Wedge

from scripts import _layout as lay
from scripts._charts import no_value
from scripts._grafana_json import Panel, Step
from scripts._panel_data import Line, PanelData, Rendered, decimals, options, reduced, reducer
from scripts._promapi import Window
from scripts._units import absolute_steps, colour, format_unit, step_colour


def _fitting_size(fig: Figure, ax: Any, text: str) -> float:
    """The largest font size (points) at which ``text`` fits its cell, within 9-36."""
    box = ax.get_position()
    width_px = box.width * fig.get_figwidth() * lay.DPI
    height_px = box.height * fig.get_figheight() * lay.DPI
    # A bold digit is about 0.62 em wide; a point is DPI/72 pixels.
    by_width = width_px * 0.85 / (0.62 * max(1, len(text))) * 72 / lay.DPI
    by_height = height_px * 0.45 * 72 / lay.DPI
    return max(9.0, min(36.0, by_width, by_height))


def _sparkline(fig: Figure, ax: Any, line: Line, window: Window, tone: str) -> None:
    box = ax.get_position()
    spark = fig.add_axes((box.x0, box.y0, box.width, box.height * 0.35))
    spark.set_axis_off()
    values = [v for _, v in line.series.values]
    if len(values) > 1:
        times = [lay.x(t) for t, _ in line.series.values]
        spark.fill_between(times, values, color=tone, alpha=0.15, linewidth=0)
        spark.plot(times, values, color=tone, linewidth=0.8, alpha=0.6)
        spark.set_xlim(lay.x(window.start), lay.x(window.end))


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
    shown = no_value(panel) if value is None else format_unit(value, panel.unit, decimals(panel))
    ax.text(0, 0.05, shown, ha="center", va="center", fontsize=14, weight="bold", color=tone)


def stat(fig: Figure, data: PanelData, window: Window) -> Rendered:
    """A stat (or gauge) panel: a cell per series, laid out like Grafana's auto layout."""
    panel = data.panel
    name, _ = reducer(panel)
    rendered = Rendered(panel.type, notes=[f"value: {name}"])
    values = reduced(data) or [("", None)]
    found = options(panel)
    colour_mode = found.get("colorMode") or "value"
    finite = [v for _, v in values if v is not None and math.isfinite(v)]
    steps = absolute_steps(panel, max(finite) if finite else None)
    columns = min(
        len(values),
        max(1, math.ceil(math.sqrt(len(values) * panel.grid.w / max(panel.grid.h, 1) / 3))),
    )
    rows = math.ceil(len(values) / columns)
    top = lay.top(fig)
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
            ax.add_patch(Rectangle((0, 0), 1, 1, color=tone, transform=ax.transAxes))
            text_colour = "white"
        line = data.lines[index] if index < len(data.lines) else None
        if panel.type == "gauge":
            _gauge(ax, panel, value, steps, text_colour)
        else:
            if line is not None and found.get("graphMode", "area") == "area":
                _sparkline(fig, ax, line, window, tone)
            places = decimals(panel)
            shown = no_value(panel) if value is None else format_unit(value, panel.unit, places)
            ax.text(
                0.5, 0.45, shown, ha="center", va="center", weight="bold",
                fontsize=_fitting_size(fig, ax, shown), color=text_colour, transform=ax.transAxes,
            )  # fmt: skip
        if label and len(values) > 1:
            ax.text(
                0.5, 0.95, label, ha="center", va="top", fontsize=7, color="#444444",
                transform=ax.transAxes,
            )  # fmt: skip
    return rendered


if __name__ == "__main__":
    sys.exit(
        f"{__file__}: not a command, a helper of scripts.preview; "
        "run that one (python -m scripts.preview --help)"
    )
