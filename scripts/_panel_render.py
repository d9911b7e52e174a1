"""Draw one Grafana panel's data into a PNG with matplotlib, roughly as Grafana shows it.

    info = render(PanelData(panel, lines), window, Path("out-preview/main-panel-2.png"))

Timeseries are lines (threshold lines when the panel shows them), stat and
gauge a big number in its threshold colour, bar gauge bars, heatmap an image
of bucket rates, table a table, pie chart a pie, alert list the alerts
Prometheus reports. Other types get a labelled placeholder. The work is split
by concern: ``_units`` (values, ticks, colours), ``_panel_data`` (what Grafana
does to query results), ``_layout`` (axes and legends that fit), ``_charts``,
``_stats`` and ``_alert_list`` (the panel types).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only

from matplotlib.figure import Figure

from scripts import _alert_list, _charts, _stats
from scripts import _layout as lay
from scripts._layout import COLUMN_PX, DPI, ROW_PX
from scripts._panel_data import (
    REDUCERS,
    Line,
    PanelData,
    Rendered,
    deaccumulate,
    in_range_order,
    prepare,
    range_start,
    reducer,
    table_cells,
)
from scripts._promapi import Window
from scripts._units import (
    NAMED_COLOURS,
    NO_DATA_GREY,
    PALETTE,
    UNIT_NAMES,
    absolute_steps,
    colour,
    format_unit,
    step_colour,
    ticks,
    unit_label,
)

__all__ = [
    "COLUMN_PX", "DPI", "NAMED_COLOURS", "NO_DATA_GREY", "PALETTE", "REDUCERS", "RENDERERS",
    "ROW_PX", "UNIT_NAMES", "Line", "PanelData", "Rendered", "absolute_steps", "colour",
    "deaccumulate", "draw", "format_unit", "in_range_order", "prepare", "range_start",
    "reducer", "render", "step_colour", "table_cells", "ticks", "unit_label",
]  # fmt: skip


def _placeholder(fig: Figure, data: PanelData, window: Window) -> Rendered:
    panel = data.panel
    if panel.type == "text":
        options = panel.raw.get("options") if isinstance(panel.raw.get("options"), dict) else {}
        content = str((options or {}).get("content") or panel.raw.get("content") or "")
        lay.message(fig, f"text panel\n\n{content.strip()}", "#333333", "#F7F7F7")
        return Rendered("text")
    queries = "\n".join(t.expr for t in panel.targets[:4])
    lay.message(
        fig, f"panel type {panel.type!r} is not drawn by the preview\n\n{queries}",
        "#555555", "#F2F2F2",
    )  # fmt: skip
    return Rendered("placeholder", notes=[f"type {panel.type!r} is shown as a placeholder"])


RENDERERS: dict[str, Callable[[Figure, PanelData, Window], Rendered]] = {
    "timeseries": _charts.timeseries,
    "graph": _charts.timeseries,
    "stat": _stats.stat,
    "singlestat": _stats.stat,
    "gauge": _stats.stat,
    "bargauge": _charts.bargauge,
    "table": _charts.table,
    "heatmap": _charts.heatmap,
    "piechart": _charts.piechart,
    "alertlist": _alert_list.draw,
}


def draw(data: PanelData, window: Window) -> tuple[Figure, Rendered]:
    """The panel drawn into a figure, and what was drawn."""
    fig = lay.figure(data.panel)
    if data.error is not None:
        lay.message(fig, f"query failed\n\n{data.error}", "#C4162A", "#FDECEE")
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
            fig, rendered = draw(data, window)
            # Text is laid out while saving, so saving can fail too.
            fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
        except Exception as exc:  # a preview shows every panel, even one it cannot draw
            fig = lay.figure(data.panel)
            lay.message(fig, f"could not draw this panel: {exc!r}", "#C4162A", "#FDECEE")
            rendered = Rendered("error", notes=[f"could not draw: {exc!r}"])
            fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return rendered


if __name__ == "__main__":
    sys.exit(
        f"{__file__}: not a command, a helper of scripts.preview; "
        "run that one (python -m scripts.preview --help)"
    )
