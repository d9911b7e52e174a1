"""Figure layout for the preview: a panel's frame, its time axis, a value axis whose labels
are never cut, and a legend that never cuts a series name.

Sizes are measured with matplotlib's renderer rather than guessed, so a long
tick label ("88.6 MiB") moves the plot right and a long series name wraps.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: files only

from matplotlib import dates as mdates
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch, Rectangle

from scripts._grafana_json import Panel
from scripts._promapi import Window
from scripts._units import NO_DATA_GREY, ticks

# Pixels per grid unit: Grafana's 24 columns across about 1300 pixels, rows of 30 px.
COLUMN_PX = 56
ROW_PX = 36
DPI = 100
TITLE_PX = 26
LEGEND_FONT = 7.0
SMALLEST_FONT = 6.0
# At most this share of a panel's height goes to its legend; the rest is the plot.
LEGEND_SHARE = 0.45


def figure(panel: Panel) -> Figure:
    width = max(320, panel.grid.w * COLUMN_PX) / DPI
    height = max(160, panel.grid.h * ROW_PX) / DPI
    fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)  # a renderer to measure text with before the figure is saved
    fig.text(0.01, 0.985, panel.title or "(untitled)", fontsize=10, weight="bold", va="top")
    if panel.unit:
        fig.text(0.99, 0.985, panel.unit, fontsize=8, color="#666666", va="top", ha="right")
    return fig


def size_px(fig: Figure) -> tuple[float, float]:
    return fig.get_figwidth() * DPI, fig.get_figheight() * DPI


def top(fig: Figure) -> float:
    """Fraction of the figure below the title line."""
    return 1 - TITLE_PX / size_px(fig)[1]


def message(fig: Figure, text: str, colour_: str, box: str) -> None:
    """A rounded box filling the panel with ``text`` wrapped inside it."""
    ax = fig.add_axes((0.02, 0.04, 0.96, top(fig) - 0.06))
    ax.set_axis_off()
    ax.add_patch(
        FancyBboxPatch(
            (0, 0), 1, 1, boxstyle="round,pad=0,rounding_size=0.02", color=box,
            transform=ax.transAxes,
        )
    )  # fmt: skip
    width = max(30, int(size_px(fig)[0] / 7))
    wrapped = "\n".join(textwrap.fill(p, width) for p in text.splitlines()[:12])
    ax.text(0.5, 0.5, wrapped, ha="center", va="center", fontsize=8, color=colour_, wrap=True)


def no_data(ax: Any, text: str = "No data") -> None:
    ax.text(
        0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=12,
        color=NO_DATA_GREY,
    )  # fmt: skip


def x(timestamp: float) -> float:
    """A Unix timestamp as a matplotlib date number (days since its epoch)."""
    return float(mdates.date2num(datetime.fromtimestamp(timestamp, UTC)))


def time_axis(ax: Any, window: Window) -> None:
    ax.set_xlim(x(window.start), x(window.end))
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=UTC, minticks=3, maxticks=8))
    # Times in UTC (the page says so); no offset text, which would collide with the legend.
    if window.range < 600:
        pattern = "%H:%M:%S"
    elif window.range < 2 * 86400:
        pattern = "%H:%M"
    else:
        pattern = "%m-%d %H:%M"
    ax.xaxis.set_major_formatter(mdates.DateFormatter(pattern, tz=UTC))


def _renderer(fig: Figure) -> Any:
    canvas = fig.canvas
    assert isinstance(canvas, FigureCanvasAgg), "figure() attaches an Agg canvas"
    return canvas.get_renderer()


def text_width_px(fig: Figure, text: str, size: float) -> float:
    """How wide ``text`` is drawn at ``size`` points, in pixels."""
    probe = fig.text(0, 0, text, fontsize=size)
    width = float(probe.get_window_extent(_renderer(fig)).width)
    probe.remove()
    return width


def value_axis(ax: Any, low: float, high: float, unit: str) -> list[str]:
    """Set the y range and ticks at round values of ``unit``; return the tick labels."""
    ax.set_ylim(low, high)
    found = ticks(low, high, unit)
    ax.set_yticks([value for value, _ in found], [label for _, label in found])
    return [label for _, label in found]


def legend_layout(
    fig: Figure, names: Sequence[str], room_px: float
) -> tuple[list[str], int, float, int]:
    """Wrapped names, columns, font size and how many fit in ``room_px`` of height.

    A name is never cut: one wider than the panel wraps onto more lines. If all
    names do not fit, the legend shows the first ones whole and says how many.
    """
    width_px = size_px(fig)[0] * 0.96
    for size in (LEGEND_FONT, SMALLEST_FONT):
        handle = size * 3.2  # swatch and gap, in pixels
        char = max(1.0, text_width_px(fig, "abcdefghij" * 4, size) / 40)
        usable = max(10, int((width_px - handle) / char) - 1)
        wrapped = [
            textwrap.fill(n, usable, break_long_words=True, break_on_hyphens=False) or " "
            for n in names
        ]
        widest = max(text_width_px(fig, w, size) for w in wrapped) + handle + size
        columns = max(1, min(len(wrapped), int(width_px // widest)))
        line_px = size * 1.6
        lines_per_row = max(w.count("\n") + 1 for w in wrapped)
        rows_fit = max(1, int(room_px // (line_px * lines_per_row)))
        shown = min(len(wrapped), rows_fit * columns)
        if shown == len(wrapped) or size == SMALLEST_FONT:
            return wrapped[:shown], columns, size, shown
    raise AssertionError("unreachable")


def legend(fig: Figure, handles: Sequence[Any], names: Sequence[str]) -> tuple[float, int]:
    """Draw a legend across the panel's foot; return its height (figure fraction) and count."""
    _, height_px = size_px(fig)
    room = max(12.0, (height_px - TITLE_PX) * LEGEND_SHARE)
    wrapped, columns, size, shown = legend_layout(fig, names, room)
    drawn = fig.legend(
        list(handles[:shown]), wrapped, loc="lower left", bbox_to_anchor=(0.01, 0.005),
        ncol=columns, fontsize=size, frameon=False, handlelength=1.2, columnspacing=1.0,
        borderaxespad=0.2,
    )  # fmt: skip
    used_px = drawn.get_window_extent(_renderer(fig)).y1 + 2
    return used_px / height_px, shown


def swatch(ax: Any, xy: tuple[float, float], colour_: str, size: float = 0.05) -> None:
    ax.add_patch(Rectangle(xy, size, size * 1.2, color=colour_, transform=ax.transAxes))


def plot_box(fig: Figure, bottom: float, labels: Sequence[str]) -> tuple[float, float, float]:
    """(left, bottom, height) of a plot whose y tick ``labels`` must fit to its left."""
    width_px, height_px = size_px(fig)
    widest = max((text_width_px(fig, label, 7) for label in labels), default=0.0)
    left = (widest + 10) / width_px
    axis_px = 22  # time labels under the plot
    bottom = bottom + axis_px / height_px
    return left, bottom, max(0.1, top(fig) - 0.03 - bottom)


if __name__ == "__main__":
    sys.exit(
        f"{__file__}: not a command, a helper of scripts.preview; "
        "run that one (python -m scripts.preview --help)"
    )
