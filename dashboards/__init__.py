"""Grafana dashboards as code: one module per dashboard, each exposing ``dashboard(cfg)``.

``build.py`` calls :func:`outputs` to render ``grafana/dashboards/<uid>.json``
and :func:`validate` to check the staged files against the metric catalogue,
the grid, the provisioned datasources and the defined variables.

    >>> from genonaut_monitoring import config, dashboards
    >>> sorted(dashboards.outputs(config.CONFIG))[0]
    'grafana/dashboards/genonaut-database.json'
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attr
import grafanalib.core as g
from grafanalib._gen import DashboardEncoder

from genonaut_monitoring import config
from genonaut_monitoring.dashboards import database, main, pagination, postgres, slo
from genonaut_monitoring.dashboards.checks import (
    check_dashboards,
    load_datasources,
    uncovered_metrics,
)
from genonaut_monitoring.dashboards.model import complete_dashboard

Builder = Callable[[config.Config], g.Dashboard]

# Dashboard key (also the key of cfg.grafana.dashboard_uids) -> its builder.
# Tests swap entries here to feed the validation a broken dashboard.
DASHBOARDS: dict[str, Builder] = {
    "main": main.dashboard,
    "pagination": pagination.dashboard,
    "database": database.dashboard,
    "postgres": postgres.dashboard,
    "slo": slo.dashboard,
}

DASHBOARD_DIR = "grafana/dashboards"


def apply_defaults(dashboard: g.Dashboard, key: str, cfg: config.Config) -> g.Dashboard:
    """Stamp the house settings: title prefix, uid, tags, refresh, time zone, time range,
    links, panel ids."""
    tags = [*cfg.grafana.tags, key]
    links = [
        # Every generated dashboard carries the first house tag: this lists the others.
        g.DashboardLink(
            title=f"{cfg.grafana.title} dashboards",
            type="dashboards",
            tags=[cfg.grafana.tags[0]],
            asDropdown=False,
            includeVars=True,
            keepTime=True,
            icon="dashboard",
        )
    ]
    stamped = attr.evolve(
        dashboard,
        title=f"{cfg.grafana.title}: {dashboard.title}",
        uid=cfg.grafana.dashboard_uids[key],
        tags=tags,
        refresh=cfg.grafana.refresh,
        timezone=cfg.grafana.timezone,
        time=g.Time(cfg.grafana.time_from, "now"),
        links=links + list(dashboard.links),
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR,
        editable=True,
    )
    return stamped.auto_panel_ids()


# grafanalib fields that describe pre-8.0 panels and rows; Grafana 10 ignores them.
# maxDataPoints goes too: grafanalib pins it at 100, which coarsens every graph's step;
# without it Grafana picks one point per pixel column.
_LEGACY_KEYS = frozenset(
    {
        "span",
        "height",
        "minSpan",
        "error",
        "editable",
        "cacheTimeout",
        "hideTimeOverride",
        "maxDataPoints",
    }
)
# Also dropped: "__inputs" (only for dashboards exported to share, empty here).
_LEGACY_DASHBOARD_KEYS = frozenset({"rows", "style", "sharedCrosshair", "hideControls", "__inputs"})


def _clean(node: Any, legacy: frozenset[str] = _LEGACY_KEYS) -> Any:
    """Drop nulls and legacy keys; keep a threshold step's ``value: null`` (= -Infinity)."""
    if isinstance(node, dict):
        is_step = set(node) == {"color", "value"}
        return {
            key: _clean(value)
            for key, value in node.items()
            if (value is not None or is_step) and key not in legacy
        }
    if isinstance(node, list):
        return [_clean(item) for item in node]
    return node


def to_data(dashboard: g.Dashboard) -> dict[str, Any]:
    """The dashboard as plain JSON data in Grafana 11.6's current shape (``model``).

    grafanalib writes schemaVersion 12, no pluginVersion, nulls and pre-8.0 fields;
    here they are stripped and the dashboard completed at the current schema, so
    Grafana runs no migration on load (see ``dashboards/model.py`` for why).
    """
    raw = json.loads(json.dumps(dashboard.to_json_data(), cls=DashboardEncoder))
    data = {k: v for k, v in raw.items() if k not in _LEGACY_DASHBOARD_KEYS}
    cleaned: dict[str, Any] = _clean(data, frozenset())
    cleaned["panels"] = [_clean(panel) for panel in cleaned.get("panels", [])]
    # The time picker's fixed list of ranges was removed in Grafana 7.
    cleaned.get("timepicker", {}).pop("time_options", None)
    return complete_dashboard(cleaned)


def dump(data: dict[str, Any]) -> bytes:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def render(cfg: config.Config) -> dict[str, dict[str, Any]]:
    """Every dashboard as JSON data, keyed by its key in ``DASHBOARDS``."""
    from genonaut_monitoring.builder import BuildError

    rendered: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for key, builder in DASHBOARDS.items():
        if key not in cfg.grafana.dashboard_uids:
            problems.append(
                f"dashboard {key!r}: no uid in config.Grafana.dashboard_uids; add one "
                "(at most 40 characters, never changed once published)"
            )
            continue
        try:
            dashboard = apply_defaults(builder(cfg), key, cfg)
        except (ValueError, TypeError) as exc:
            problems.append(f"dashboard {key!r} ({builder.__module__}): {exc}")
            continue
        data = to_data(dashboard)
        for other, seen in rendered.items():
            if seen.get("uid") == data.get("uid"):
                problems.append(
                    f"dashboard {key!r}: uid {data.get('uid')!r} is also the uid of {other!r}; "
                    "uids must be unique (config.Grafana.dashboard_uids)"
                )
        rendered[key] = data
    if problems:
        raise BuildError(problems)
    return rendered


def outputs(cfg: config.Config) -> dict[str, bytes]:
    """``{"grafana/dashboards/<uid>.json": bytes}`` for every dashboard."""
    return {
        f"{DASHBOARD_DIR}/{data.get('uid', key)}.json": dump(data)
        for key, data in render(cfg).items()
    }


def validate(folder: Path, cfg: config.Config) -> list[str]:
    """Check the staged dashboards; return every problem, each naming dashboard and panel.

    Also the metric contract's other half: every metric the exporters emit is charted
    here or read by an alert (directly or through a recording rule).
    """
    from genonaut_monitoring import alerts

    files, problems = {}, []
    for path in sorted((folder / DASHBOARD_DIR).glob("*.json")):
        try:
            files[path.name] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            problems.append(f"{DASHBOARD_DIR}/{path.name}: not JSON: {exc}")
    datasources = load_datasources(folder, cfg)
    problems += check_dashboards(files, datasources, alerts.recorded_series(cfg))
    queries = [
        str(target.get("expr", ""))
        for board in files.values()
        for panel in board.get("panels", [])
        for target in panel.get("targets", [])
    ]
    rules = [rule for group in alerts.groups(cfg) for rule in group.rules]
    recorded = {rule.name: rule.expr for rule in rules if not isinstance(rule, alerts.Alert)}
    alerting = [rule.expr for rule in rules if isinstance(rule, alerts.Alert)]
    problems += uncovered_metrics([*queries, *alerting], recorded)
    return problems
