"""Checks on generated dashboard JSON: the metric contract, the grid, datasources, variables.

Each problem is one sentence naming the dashboard file, the panel title, the
offending expression or value, and what to do about it.

    >>> check_dashboards({"x.json": {"uid": "x", "schemaVersion": 41, "panels": []}}, {}, {})
    []
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from genonaut_monitoring import config
from genonaut_monitoring.dashboards.common import GRID_WIDTH
from genonaut_monitoring.dashboards.model import PLUGIN_VERSION, SCHEMA_VERSION
from genonaut_monitoring.exporters import catalogue

MAX_UID_LENGTH = 40

# Modern panel plugins; the Angular ones (graph, singlestat, the old piechart...)
# are disabled in Grafana 11 and removed in 12.
PANEL_TYPES = frozenset(
    {
        "timeseries",
        "stat",
        "gauge",
        "bargauge",
        "table",
        "heatmap",
        "histogram",
        "piechart",
        "barchart",
        "state-timeline",
        "text",
        "alertlist",
    }
)
# Panels that show no query results, so need no unit or datasource.
NO_DATA_PANELS = frozenset({"text", "alertlist"})

# Grafana's built-in variables, and what stands in for them when checking PromQL.
BUILTIN_VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__interval_ms": "60000",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__from": "0",
    "__to": "0",
    "__dashboard": "d",
    "__all": ".*",
}
# $name, ${name}, ${name:format}, [[name]]
_VARIABLE = re.compile(
    r"\$\{([A-Za-z_]\w*)(?::[^}]*)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)(?::[^\]]*)?\]\]"
)
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$", re.S)
# A range given as a literal duration ([5m]) rather than a Grafana interval variable.
_LITERAL_RANGE = re.compile(r"\[\s*(\d+[smhdwy][^\]:]*)\]")


def variables_in(text: str) -> list[str]:
    """Names of the Grafana variables ``text`` refers to."""
    return [next(filter(None, m.groups())) for m in _VARIABLE.finditer(text)]


def substitute(expr: str) -> str:
    """PromQL with Grafana variables replaced by values that parse (durations, plain words)."""

    def value(match: re.Match[str]) -> str:
        name = next(filter(None, match.groups()))
        return BUILTIN_VARIABLES.get(name, "value")

    return _VARIABLE.sub(value, expr)


def load_datasources(folder: Path, cfg: config.Config) -> dict[str, str]:
    """Provisioned datasource uid -> type, read from the staged datasources.yaml.

    An unreadable file gives none: provision.validate reports it by name.
    """
    from genonaut_monitoring.provision import PROVISIONING_TEMPLATES

    path = folder / PROVISIONING_TEMPLATES["grafana/datasources.yaml.j2"]
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    listed = data.get("datasources") if isinstance(data, dict) else None
    return {str(ds.get("uid")): str(ds.get("type")) for ds in listed or [] if isinstance(ds, dict)}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


class _Checker:
    """Checks one dashboard; collects problems."""

    def __init__(
        self,
        filename: str,
        data: dict[str, Any],
        datasources: Mapping[str, str],
        recorded: Mapping[str, frozenset[str]],
    ) -> None:
        self.where = f"dashboard {data.get('uid', '?')!r} ({filename})"
        self.data = data
        self.datasources = datasources
        self.recorded = recorded
        self.problems: list[str] = []
        self.variables = {
            v.get("name"): v for v in data.get("templating", {}).get("list", []) if v.get("name")
        }

    def problem(self, panel: str | None, text: str) -> None:
        place = f"{self.where}, panel {panel!r}" if panel is not None else self.where
        self.problems.append(f"{place}: {text}")

    def run(self) -> list[str]:
        self.check_uid()
        self.check_schema()
        for variable in self.variables.values():
            self.check_variable(variable)
        panels = self.data.get("panels", [])
        self.check_ids_and_titles(panels)
        self.check_grid(panels)
        for panel in panels:
            self.check_panel(panel)
        self.check_variables_defined(None, self.data.get("links", []))
        return self.problems

    # --- dashboard-wide -------------------------------------------------------

    def check_uid(self) -> None:
        uid = self.data.get("uid")
        if not isinstance(uid, str) or not uid:
            self.problem(None, "has no uid; set one in config.Grafana.dashboard_uids")
        elif len(uid) > MAX_UID_LENGTH or not re.fullmatch(r"[A-Za-z0-9_-]+", uid):
            self.problem(
                None,
                f"uid {uid!r} must be at most {MAX_UID_LENGTH} characters of letters, "
                "digits, '-' and '_'",
            )

    def check_schema(self) -> None:
        # Anything older is migrated on every load (and loses graphTooltip below 14).
        version = self.data.get("schemaVersion")
        if version != SCHEMA_VERSION:
            self.problem(
                None,
                f"schemaVersion is {version!r}, not {SCHEMA_VERSION}: Grafana would migrate it "
                "on every load; leave it to the defaults pass (dashboards/model.py)",
            )
        for panel in self.data.get("panels", []):
            if panel.get("type") != "row" and panel.get("pluginVersion") != PLUGIN_VERSION:
                self.problem(
                    panel.get("title", ""),
                    f"pluginVersion is {panel.get('pluginVersion')!r}, not {PLUGIN_VERSION!r}: "
                    "Grafana would re-run the plugin's migrations on every load",
                )

    def check_ids_and_titles(self, panels: list[dict[str, Any]]) -> None:
        seen_ids: dict[Any, str] = {}
        seen_titles: set[str] = set()
        for panel in panels:
            title = panel.get("title", "")
            pid = panel.get("id")
            if not isinstance(pid, int):
                self.problem(title, "has no integer id; the defaults pass assigns them")
            elif pid in seen_ids:
                self.problem(title, f"reuses panel id {pid} of panel {seen_ids[pid]!r}")
            else:
                seen_ids[pid] = title
            if not title:
                self.problem(title, "has no title")
            elif title in seen_titles:
                self.problem(title, "has the same title as another panel; titles are unique")
            seen_titles.add(title)

    def check_grid(self, panels: list[dict[str, Any]]) -> None:
        boxes: list[tuple[str, tuple[int, int, int, int]]] = []
        for panel in panels:
            title = panel.get("title", "")
            pos = panel.get("gridPos")
            if not isinstance(pos, dict) or not all(
                isinstance(pos.get(k), int) for k in ("x", "y", "w", "h")
            ):
                self.problem(
                    title, "has no gridPos with integer x, y, w, h; place it with layout()"
                )
                continue
            x, y, w, h = pos["x"], pos["y"], pos["w"], pos["h"]
            if x < 0 or y < 0 or w < 1 or h < 1 or x + w > GRID_WIDTH:
                self.problem(
                    title,
                    f"gridPos x={x} w={w} y={y} h={h} leaves the {GRID_WIDTH}-column grid; "
                    "narrow the row",
                )
            for other, (ox, oy, ow, oh) in boxes:
                if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                    self.problem(
                        title,
                        f"overlaps panel {other!r} (gridPos x={x} y={y} w={w} h={h} vs "
                        f"x={ox} y={oy} w={ow} h={oh}); place panels with layout()",
                    )
            boxes.append((title, (x, y, w, h)))

    # --- variables ----------------------------------------------------------------

    def check_variable(self, variable: dict[str, Any]) -> None:
        name = variable["name"]
        where = f"variable ${name}"
        if variable.get("type") == "datasource":
            if variable.get("query") not in set(self.datasources.values()):
                self.problem(
                    None,
                    f"{where} lists datasources of type {variable.get('query')!r}, but none "
                    f"is provisioned (provisioned: {dict(sorted(self.datasources.items()))})",
                )
            return
        self.check_datasource(None, variable.get("datasource"), where)
        self.check_variables_defined(None, variable.get("query", ""), where)
        if variable.get("type") != "query":
            return
        query = str(variable.get("query", ""))
        match = _LABEL_VALUES.match(query.strip())
        if not match:
            self.problem(None, f"{where}: query {query!r} is not label_values(selector, label)")
            return
        label, selected = match["label"], match["selector"]
        if selected is None:
            return
        # present_over_time() makes any metric kind legal; count by checks the label exists.
        probe = f"count by ({label}) (present_over_time({substitute(selected)}[1m]))"
        for found in catalogue.check_expression(probe, extra_series=self.recorded):
            self.problem(None, f"{where}: query {query!r}: {found}")

    def check_variables_defined(self, panel: str | None, node: Any, where: str = "") -> None:
        for text in _strings(node):
            for name in variables_in(text):
                if name not in self.variables and name not in BUILTIN_VARIABLES:
                    prefix = f"{where}: " if where else ""
                    self.problem(
                        panel,
                        f"{prefix}uses ${name}, which is not a template variable of this "
                        f"dashboard (defined: {', '.join(sorted(self.variables)) or 'none'})",
                    )

    # --- panels ---------------------------------------------------------------------

    def check_datasource(self, panel: str | None, ref: Any, where: str) -> None:
        if ref is None:
            self.problem(panel, f"{where} has no datasource; refer to ${{datasource}}")
            return
        if not isinstance(ref, dict) or "uid" not in ref:
            self.problem(panel, f"{where}: datasource {ref!r} must be {{type, uid}}")
            return
        uid, kind = str(ref["uid"]), ref.get("type")
        names = variables_in(uid)
        if names:
            variable = self.variables.get(names[0])
            if variable is None or variable.get("type") != "datasource":
                self.problem(panel, f"{where}: datasource {uid!r} is not a datasource variable")
            elif kind is not None and variable.get("query") != kind:
                self.problem(
                    panel,
                    f"{where}: datasource variable {uid!r} lists {variable.get('query')!r} "
                    f"datasources, not {kind!r}",
                )
            return
        if uid not in self.datasources:
            self.problem(
                panel,
                f"{where}: datasource uid {uid!r} is not provisioned "
                f"(provisioned: {', '.join(sorted(self.datasources)) or 'none'}); "
                "use ${datasource} or a uid from config.Grafana",
            )
        elif kind is not None and self.datasources[uid] != kind:
            self.problem(
                panel, f"{where}: datasource {uid!r} is a {self.datasources[uid]!r}, not {kind!r}"
            )

    def check_panel(self, panel: dict[str, Any]) -> None:
        title = panel.get("title", "")
        kind = panel.get("type")
        if kind not in PANEL_TYPES:
            self.problem(
                title,
                f"type {kind!r} is a legacy or unknown panel; use one of "
                f"{', '.join(sorted(PANEL_TYPES))}",
            )
        if not str(panel.get("description", "")).strip():
            self.problem(title, "has no description; say what a developer is looking at")
        self.check_variables_defined(title, panel)
        if kind in NO_DATA_PANELS:
            return
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        if not defaults.get("unit"):
            self.problem(title, "has no unit (fieldConfig.defaults.unit)")
        steps = defaults.get("thresholds", {}).get("steps")
        if not isinstance(steps, list) or not steps:
            self.problem(title, "has no threshold steps; pass steps from config.Thresholds")
        self.check_datasource(title, panel.get("datasource"), "the panel")
        targets = panel.get("targets", [])
        if not targets:
            self.problem(title, "has no queries")
        for target in targets:
            self.check_datasource(title, target.get("datasource"), f"query {target.get('refId')}")
            self.check_expr(title, str(target.get("expr", "")))

    def check_expr(self, title: str, expr: str) -> None:
        flat = " ".join(expr.split())
        for literal in _LITERAL_RANGE.findall(expr):
            self.problem(
                title,
                f"expression {flat!r}: range [{literal}] is hard-coded; use [$__rate_interval] "
                "(or [$__range] for totals over the time range)",
            )
        for found in catalogue.check_expression(substitute(expr), extra_series=self.recorded):
            self.problem(title, f"expression {flat!r}: {found}")


def check_dashboards(
    files: Mapping[str, dict[str, Any]],
    datasources: Mapping[str, str],
    recorded: Mapping[str, frozenset[str]],
) -> list[str]:
    """Every problem in a set of dashboards (file name -> JSON data)."""
    problems: list[str] = []
    uids: dict[str, str] = {}
    for filename, data in sorted(files.items()):
        uid = data.get("uid")
        if isinstance(uid, str):
            if uid in uids:
                problems.append(
                    f"dashboard {uid!r} ({filename}): uid is also used by {uids[uid]}; "
                    "uids must be unique (config.Grafana.dashboard_uids)"
                )
            uids[uid] = filename
            if filename != f"{uid}.json":
                problems.append(f"dashboard {uid!r} ({filename}): file must be named {uid}.json")
        problems += _Checker(filename, data, datasources, recorded).run()
    return problems


# --- the catalogue is charted or alerted on -----------------------------------------


def selected_series(expr: str) -> set[str]:
    """Series names ``expr`` selects; Grafana variables are substituted first."""
    import promql_parser as pp

    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, pp.VectorSelector) and node.name:
            names.add(node.name)

    try:
        pp.walk(pp.parse(substitute(expr)), visit)
    except ValueError:
        return set()  # check_expression reports it, with the place
    return names


def uncovered_metrics(exprs: Iterable[str], recording_rules: Mapping[str, str]) -> list[str]:
    """A problem for each catalogue metric no expression selects, even through a rule.

    ``exprs`` are every panel query and alert expression; ``recording_rules`` maps a
    recorded series to its expression, so an alert on a recording rule counts for the
    metrics the rule reads. A metric nobody charts or alerts on is exported for nothing.
    """
    seen: set[str] = set()
    todo = [name for expr in exprs for name in selected_series(expr)]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            if name in recording_rules:
                todo.extend(selected_series(recording_rules[name]))
    used = {found[0].name for name in seen if (found := catalogue.lookup(name))}
    return [
        f"metric {spec.name!r} (exporters/catalogue.py) is exported but no dashboard panel "
        "charts it and no alert reads it: chart it (dashboards/), alert on it (alerts/), "
        "or stop exporting it"
        for spec in catalogue.CATALOGUE
        if spec.name not in used
    ]
