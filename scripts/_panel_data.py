"""A panel's query results made ready to draw, as Grafana prepares them.

Grafana de-accumulates histogram buckets of ``format: heatmap`` targets, names
each series by the panel's display-name overrides, reduces series to one number
for stats and bars, and builds tables with the ``organize`` transformation.

    data, notes = prepare(PanelData(panel, lines))
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scripts._grafana_json import Panel, Target
from scripts._promapi import Series
from scripts._units import format_unit


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


def defaults(panel: Panel) -> Mapping[str, Any]:
    """The panel's ``fieldConfig.defaults``."""
    return (panel.raw.get("fieldConfig") or {}).get("defaults") or {}


def options(panel: Panel) -> Mapping[str, Any]:
    found = panel.raw.get("options")
    return found if isinstance(found, dict) else {}


def decimals(panel: Panel) -> int | None:
    value = defaults(panel).get("decimals")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


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
    found = options(panel)
    calcs = (found.get("reduceOptions") or {}).get("calcs") or (
        found.get("fieldOptions") or {}
    ).get("calcs")
    name = calcs[0] if isinstance(calcs, list) and calcs else "lastNotNull"
    return (name, REDUCERS[name]) if name in REDUCERS else ("lastNotNull", REDUCERS["lastNotNull"])


def reduced(data: PanelData) -> list[tuple[str, float | None]]:
    _name, reduce = reducer(data.panel)
    return [(line.legend, reduce([v for _, v in line.series.values])) for line in data.lines]


# --- names and order ------------------------------------------------------------------


def display_names(panel: Panel) -> list[tuple[Callable[[str], bool], str]]:
    """The panel's displayName overrides: (does a series name match, the name to show)."""
    found: list[tuple[Callable[[str], bool], str]] = []
    for override in (panel.raw.get("fieldConfig") or {}).get("overrides") or []:
        matcher = override.get("matcher") or {}
        names = [p.get("value") for p in override.get("properties") or []]
        names = [n for n in names if isinstance(n, str)]
        option = str(matcher.get("options", ""))
        if not names or matcher.get("id") not in ("byName", "byRegexp"):
            continue
        found.append((_matcher(str(matcher["id"]), option), names[-1]))
    return found


def _matcher(kind: str, option: str) -> Callable[[str], bool]:
    """Grafana's field matchers by name: the exact name, or a regex searched in it."""
    if kind == "byName":
        return lambda name: name == option
    pattern = re.compile(option.strip("/"))
    return lambda name: pattern.search(name) is not None


def rename(panel: Panel, lines: Sequence[Line]) -> list[Line]:
    """Each line under the display name the panel's overrides give it (the last that matches)."""
    rules = display_names(panel)
    renamed = []
    for line in lines:
        name = line.legend
        for matches, shown in rules:
            if matches(line.legend):
                name = shown
        renamed.append(Line(line.target, line.series, name))
    return renamed


_RANGE = re.compile(r"^(\d[\d,]*)(?:\s*-\s*\d[\d,]*|\+)?$")


def range_start(label: str) -> float | None:
    """The lower bound of a range label (``0``, ``1-100``, ``100001+``); None if not one."""
    match = _RANGE.match(label.strip())
    return float(match.group(1).replace(",", "")) if match else None


def in_range_order(items: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Items whose labels are all ranges, by lower bound (never as text); others as they are."""
    starts = [range_start(label) for label, _ in items]
    if not items or any(start is None for start in starts):
        return list(items)
    order = sorted(range(len(items)), key=lambda i: starts[i] or 0.0)
    return [items[i] for i in order]


# --- histograms -------------------------------------------------------------------------


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
    """What Grafana does to query results before drawing: de-accumulate heatmap targets
    (named by ``le`` until the overrides rename them), then apply display names."""
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
    if display_names(data.panel) and data.panel.type != "heatmap":
        lines = rename(data.panel, lines)
        notes.append("series named by the panel's display-name overrides")
    return PanelData(data.panel, tuple(lines), data.error), list(dict.fromkeys(notes))


# --- tables -------------------------------------------------------------------------------


def _organize(panel: Panel) -> tuple[set[str], dict[str, str]]:
    """Columns the ``organize`` transformations hide, and the names they give."""
    hidden: set[str] = set()
    names: dict[str, str] = {}
    for step in panel.raw.get("transformations") or []:
        if isinstance(step, dict) and step.get("id") == "organize":
            found = step.get("options") or {}
            hidden |= {k for k, v in (found.get("excludeByName") or {}).items() if v}
            names.update({k: str(v) for k, v in (found.get("renameByName") or {}).items() if v})
    return hidden, names


def table_cells(data: PanelData) -> list[list[str]]:
    """Rows of a table panel: one per label set, a value column per query (last value).

    Columns are hidden and renamed by the panel's ``organize`` transformation, and
    rows sorted by ``options.sortBy`` (a column's shown name), as in Grafana.
    """
    panel = data.panel
    refs = list(dict.fromkeys(line.target.ref_id for line in data.lines))
    names = {line.series.labels.get("__name__") for line in data.lines}
    keep_name = len(names) > 1
    hidden, renamed = _organize(panel)
    columns = sorted(
        {k for line in data.lines for k in line.series.labels if k != "__name__" or keep_name}
        - hidden
    )
    value_columns = ["Value"] if len(refs) <= 1 else [f"Value #{r}" for r in refs]
    merged: dict[tuple[str, ...], dict[str, float | None]] = {}
    for line in data.lines:
        key = tuple(line.series.labels.get(c, "") for c in columns)
        value = REDUCERS["lastNotNull"]([v for _, v in line.series.values])
        column = "Value" if len(refs) <= 1 else f"Value #{line.target.ref_id}"
        merged.setdefault(key, {})[column] = value
    shown_columns = [renamed.get(c, c) for c in columns]
    shown_values = [renamed.get(c, c) for c in value_columns]
    rows = sorted(merged.items())
    for sort in reversed(options(panel).get("sortBy") or []):
        name = sort.get("displayName")
        if name in shown_values:
            column = value_columns[shown_values.index(name)]
            present = [r for r in rows if r[1].get(column) is not None]
            absent = [r for r in rows if r[1].get(column) is None]
            present.sort(key=lambda r: r[1][column] or 0.0, reverse=bool(sort.get("desc")))
            rows = present + absent
        elif name in shown_columns:
            index = shown_columns.index(name)
            rows.sort(key=lambda r: r[0][index], reverse=bool(sort.get("desc")))

    def shown(value: float | None) -> str:
        return "" if value is None else format_unit(value, panel.unit, decimals(panel))

    body = [[*key, *(shown(cells.get(c)) for c in value_columns)] for key, cells in rows]
    return [[*shown_columns, *shown_values], *body]


if __name__ == "__main__":
    sys.exit(
        f"{__file__}: not a command, a helper of scripts.preview; "
        "run that one (python -m scripts.preview --help)"
    )
