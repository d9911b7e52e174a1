"""The Grafana version the dashboards are written for, and what that version expects.

Grafana runs its dashboard migrations from a file's ``schemaVersion`` up to its
own on every load, and a panel's plugin migrations whenever the panel's
``pluginVersion`` differs from the running plugin. grafanalib writes
``schemaVersion: 12`` and no ``pluginVersion``, so Grafana 11.6 would rewrite
every dashboard on load: the step for versions below 14 sets ``graphTooltip``
from the legacy ``sharedCrosshair`` (turning the shared crosshair off), and the
single-stat handler pins ``percentunit`` stats to min 0/max 1. Written at the
version Grafana 11.6 writes itself, with the plugin version stamped, nothing is
migrated: what the build writes is what Grafana shows.

No migration then fills in what a newer schema requires, so the defaults pass
completes each panel with the options Grafana 11.6's own types require and
grafanalib does not write (``PANEL_DEFAULTS``, values from the plugins'
``defaultOptions`` in ``@grafana/schema@11.6.0``). Keys a panel sets win.

    >>> complete_panel({"type": "stat", "options": {"colorMode": "background"}})["options"]
    {'colorMode': 'background', 'percentChangeColorMode': 'standard', 'showPercentChange': False, 'wideLayout': True}
"""  # noqa: E501

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

GRAFANA_VERSION = "11.6.0"
# DashboardMigrator's latest step in Grafana 11.6 (v41: timepicker.time_options removed);
# also defaultDashboard.schemaVersion in @grafana/schema@11.6.0.
SCHEMA_VERSION = 41
# Core plugins report Grafana's own version; equal to it, no plugin migration runs.
PLUGIN_VERSION = GRAFANA_VERSION

# What Grafana 11.6 writes on every dashboard that grafanalib does not.
DASHBOARD_DEFAULTS: dict[str, Any] = {
    "annotations": {
        # The built-in "Annotations & Alerts" query Grafana adds to every dashboard it saves.
        "list": [
            {
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            }
        ]
    },
    "fiscalYearStartMonth": 0,
    "liveNow": False,
    "weekStart": "",
}

_LEGEND = {"showLegend": True}
_SINGLE_STAT = {"orientation": "auto"}

# Plugin id -> options Grafana 11.6's types require, with Grafana's default values.
PANEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "timeseries": {"legend": _LEGEND},
    "stat": {
        **_SINGLE_STAT,
        "percentChangeColorMode": "standard",
        "showPercentChange": False,
        "wideLayout": True,
    },
    "gauge": {**_SINGLE_STAT, "minVizHeight": 75, "minVizWidth": 75, "sizing": "auto"},
    "bargauge": {
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": False},
        "maxVizHeight": 300,
        "minVizHeight": 16,
        "minVizWidth": 8,
        "namePlacement": "auto",
        "sizing": "auto",
    },
    "table": {"cellHeight": "sm", "frameIndex": 0, "showHeader": True},
    "heatmap": {
        "color": {"exponent": 0.5, "fill": "dark-orange", "reverse": False},
        "exemplars": {"color": "rgba(255,0,255,0.7)"},
        "showValue": "auto",
    },
    "piechart": {
        **_SINGLE_STAT,
        "displayLabels": [],
        "legend": {"calcs": [], **_LEGEND},
        "tooltip": {"mode": "single", "sort": "none"},
    },
}
# Plugin id -> field config (custom) the types require.
FIELD_DEFAULTS: dict[str, dict[str, Any]] = {
    "table": {"inspect": False},
}


def merge_missing(target: dict[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Add every key of ``defaults`` that ``target`` lacks, recursing into mappings."""
    for key, value in defaults.items():
        if key not in target:
            target[key] = copy.deepcopy(value)
        elif isinstance(target[key], dict) and isinstance(value, Mapping):
            merge_missing(target[key], value)
    return target


def complete_panel(panel: dict[str, Any]) -> dict[str, Any]:
    """Stamp ``pluginVersion`` and add the options and field config its plugin requires."""
    kind = panel.get("type")
    if kind == "row":
        return panel
    panel["pluginVersion"] = PLUGIN_VERSION
    if kind in PANEL_DEFAULTS:
        merge_missing(panel.setdefault("options", {}), PANEL_DEFAULTS[kind])
    if kind in FIELD_DEFAULTS:
        defaults = panel.setdefault("fieldConfig", {}).setdefault("defaults", {})
        merge_missing(defaults.setdefault("custom", {}), FIELD_DEFAULTS[kind])
    return panel


def complete_dashboard(data: dict[str, Any]) -> dict[str, Any]:
    """The dashboard at ``SCHEMA_VERSION``, with what Grafana writes and every panel completed."""
    data["schemaVersion"] = SCHEMA_VERSION
    annotations = data.get("annotations") or {}
    if not annotations.get("list"):
        data.pop("annotations", None)
    merge_missing(data, DASHBOARD_DEFAULTS)
    for panel in data.get("panels", []):
        complete_panel(panel)
        for inner in panel.get("panels", []):  # a collapsed row keeps its panels
            complete_panel(inner)
    return data
