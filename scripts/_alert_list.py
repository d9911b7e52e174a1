"""The alert list panel, drawn from the alerts Prometheus reports.

Prometheus writes every pending and firing alert as an ``ALERTS`` series (and
when it became active as ``ALERTS_FOR_STATE``), so the list at the end of the
preview's window is two instant queries. The panel's options filter and order
it as Grafana's alert list does: ``stateFilter``, ``alertName``,
``alertInstanceLabelFilter``, ``sortOrder`` and ``maxItems``.

    lines = fetch(prom, window)                 # ALERTS and ALERTS_FOR_STATE at window.end
    rendered = draw(fig, PanelData(panel, tuple(lines)), window)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from scripts import _layout as lay
from scripts._grafana_json import Target
from scripts._panel_data import Line, PanelData, Rendered, options
from scripts._promapi import Prometheus, Window
from scripts._units import NAMED_COLOURS, NO_DATA_GREY

ALERTS = Target("A", "ALERTS", format="table", instant=True)
ACTIVE_SINCE = Target("B", "ALERTS_FOR_STATE", format="table", instant=True)
STATE_COLOURS = {"firing": NAMED_COLOURS["red"], "pending": NAMED_COLOURS["orange"]}
# Grafana's sortOrder values.
ALPHABETICAL, ALPHABETICAL_DESC, IMPORTANCE, TIME_ASC, TIME_DESC = 1, 2, 3, 4, 5
_IMPORTANCE = {"firing": 0, "pending": 1}
_HIDDEN_LABELS = ("__name__", "alertname", "alertstate")


@dataclass(frozen=True)
class Instance:
    """One alert instance: rule name, state, its other labels, and since when it is active."""

    name: str
    state: str
    labels: Mapping[str, str]
    since: float | None = None

    def label_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))


def fetch(prom: Prometheus, window: Window) -> list[Line]:
    """The alerts Prometheus reports at the end of ``window``, as the panel's lines."""
    lines: list[Line] = []
    for target in (ALERTS, ACTIVE_SINCE):
        lines.extend(Line(target, s, "") for s in prom.query(target.expr, window.end))
    return lines


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in labels.items() if k not in _HIDDEN_LABELS))


def instances(lines: Iterable[Line]) -> list[Instance]:
    """Alert instances from ``ALERTS`` lines, with their start from ``ALERTS_FOR_STATE``."""
    lines = list(lines)
    since = {
        (line.series.labels.get("alertname", ""), _key(line.series.labels)): line.series.values[-1][
            1
        ]
        for line in lines
        if line.target.expr == ACTIVE_SINCE.expr and line.series.values
    }
    found = []
    for line in lines:
        labels = line.series.labels
        if line.target.expr != ALERTS.expr or "alertname" not in labels:
            continue
        name, key = labels["alertname"], _key(labels)
        state = labels.get("alertstate", "")
        found.append(Instance(name, state, dict(key), since.get((name, key))))
    return found


_MATCHER = re.compile(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"?([^",}]*)"?\s*')


def _label_filter(text: str) -> list[tuple[str, str, str]]:
    """``{severity="critical", job=~"api.*"}`` (braces optional) as (label, op, value)."""
    body = text.strip().removeprefix("{").removesuffix("}")
    found = (_MATCHER.fullmatch(part) for part in body.split(","))
    return [(m[1], m[2], m[3]) for m in found if m is not None]


def _matches(labels: Mapping[str, str], label: str, op: str, value: str) -> bool:
    actual = labels.get(label, "")
    if op in ("=~", "!~"):
        hit = re.fullmatch(value, actual) is not None
        return hit if op == "=~" else not hit
    return (actual == value) if op == "=" else (actual != value)


def select(found: list[Instance], settings: Mapping[str, Any]) -> list[Instance]:
    """The instances the panel shows, in its order."""
    states = settings.get("stateFilter") or {}
    if any(states.values()):
        found = [i for i in found if states.get(i.state)]
    name = str(settings.get("alertName") or "").lower()
    if name:
        found = [i for i in found if name in i.name.lower()]
    for label, op, value in _label_filter(str(settings.get("alertInstanceLabelFilter") or "")):
        found = [i for i in found if _matches({**i.labels, "alertname": i.name}, label, op, value)]
    order = settings.get("sortOrder") or ALPHABETICAL
    if order == ALPHABETICAL_DESC:
        found.sort(key=lambda i: (i.name, i.label_text()), reverse=True)
    elif order == IMPORTANCE:
        found.sort(key=lambda i: (_IMPORTANCE.get(i.state, 9), i.name, i.label_text()))
    elif order in (TIME_ASC, TIME_DESC):
        found.sort(key=lambda i: (i.since or 0.0, i.name), reverse=order == TIME_DESC)
    else:
        found.sort(key=lambda i: (i.name, i.label_text()))
    limit = settings.get("maxItems")
    return found[: int(limit)] if isinstance(limit, int) and limit > 0 else found


def age(seconds: float) -> str:
    """How long an alert has been active, to two units: ``2m 5s``, ``1h``, ``3d 4h``."""
    left = round(max(0.0, seconds))
    parts: list[tuple[int, str]] = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        count, left = divmod(left, size)
        if count or parts:
            parts.append((count, unit))
    shown = [f"{count}{unit}" for count, unit in parts[:2] if count]
    return " ".join(shown) or "0s"


def draw(fig: Figure, data: PanelData, window: Window) -> Rendered:
    shown = select(instances(data.lines), options(data.panel))
    table = [["State", "Alert", "Labels", "Active for"]]
    for item in shown:
        active = "" if item.since is None else age(window.end - item.since)
        table.append([item.state, item.name, item.label_text(), active])
    rendered = Rendered("alertlist", table=table, notes=[f"{len(shown)} alerts at window end"])
    ax = fig.add_axes((0.02, 0.02, 0.96, lay.top(fig) - 0.04))
    ax.set_axis_off()
    if not shown:
        lay.no_data(ax, "No alerts")
        return rendered
    rows = max(1, int((lay.size_px(fig)[1] - lay.TITLE_PX) / 30))
    for index, (item, cells) in enumerate(zip(shown[:rows], table[1:], strict=False)):
        y = 1 - (index + 0.5) / rows
        tone = STATE_COLOURS.get(item.state, NO_DATA_GREY)
        ax.add_patch(Rectangle((0, y - 0.35 / rows), 0.012, 0.7 / rows, color=tone))
        ax.text(0.025, y, item.name, fontsize=8, weight="bold", va="bottom")
        detail = f"{item.state} for {cells[3]}" if cells[3] else item.state
        ax.text(0.025, y, f"{detail} · {cells[2]}", fontsize=6.5, color="#555555", va="top")
    if len(shown) > rows:
        rendered.notes.append(f"image shows {rows} of {len(shown)} alerts; the page has all")
    return rendered


if __name__ == "__main__":
    sys.exit(
        f"{__file__}: not a command, a helper of scripts.preview; "
        "run that one (python -m scripts.preview --help)"
    )
