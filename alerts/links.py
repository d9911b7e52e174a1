"""The URLs every alert carries: its runbook section and the dashboard panel that shows it.

Panel ids come from the generated dashboards (``dashboards.outputs``), found by
dashboard uid and panel title, so a renamed or deleted panel fails the build
instead of leaving a dead link.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from genonaut_monitoring import config
from genonaut_monitoring.alerts.model import Alert, Panel

# (dashboard uid, panel title) -> panel id
PanelIds = Mapping[tuple[str, str], int]


def runbook_url(cfg: config.Config, alert: Alert) -> str:
    return f"{cfg.runbook_base_url}#{alert.anchor}"


def _panels(panels: list[dict[str, object]]) -> list[dict[str, object]]:
    """Panels including those nested in collapsed rows."""
    found = []
    for panel in panels:
        found.append(panel)
        nested = panel.get("panels")
        if isinstance(nested, list):
            found.extend(_panels(nested))
    return found


def panel_ids(dashboard_files: Mapping[str, bytes]) -> dict[tuple[str, str], int]:
    """Every titled panel of every generated dashboard JSON, by (uid, title)."""
    ids: dict[tuple[str, str], int] = {}
    for path, content in sorted(dashboard_files.items()):
        if not path.endswith(".json"):
            continue
        board = json.loads(content)
        if not isinstance(board, dict) or "uid" not in board:
            continue
        for panel in _panels(list(board.get("panels") or [])):
            title, pid = panel.get("title"), panel.get("id")
            if isinstance(title, str) and isinstance(pid, int):
                ids[(str(board["uid"]), title)] = pid
    return ids


def dashboard_url(cfg: config.Config, alert: Alert, ids: PanelIds) -> str:
    """``{grafana}/d/{uid}/?viewPanel={id}``; ValueError names the alert and the missing panel.

    The bare id rather than Grafana 11's ``panel-<id>`` key: scenes-based dashboards look a
    numeric ``viewPanel`` up as ``panel-<id>`` too, and Grafana 10 understands only the id.
    """
    panel = alert.panel or Panel("main")
    uid = cfg.grafana.dashboard_uids.get(panel.dashboard)
    if uid is None:
        raise ValueError(
            f"alert {alert.name}: dashboard {panel.dashboard!r} is not in "
            f"config.Grafana.dashboard_uids ({', '.join(sorted(cfg.grafana.dashboard_uids))})"
        )
    base = f"{cfg.grafana.url}/d/{uid}/"
    if panel.title is None:
        return base
    pid = ids.get((uid, panel.title))
    if pid is None:
        titles = sorted(t for u, t in ids if u == uid)
        raise ValueError(
            f"alert {alert.name}: dashboard {uid} has no panel titled {panel.title!r}; "
            f"rename the panel back or point the alert at one of: {', '.join(titles) or 'none'}"
        )
    return f"{base}?viewPanel={pid}"


def annotations_for(cfg: config.Config, alert: Alert, ids: PanelIds) -> dict[str, str]:
    """The alert's annotations with runbook_url and dashboard_url stamped on."""
    return {
        "summary": alert.summary,
        "description": alert.description,
        "value": f"{{{{ $value | {alert.value_format} }}}}",
        "runbook_url": runbook_url(cfg, alert),
        "dashboard_url": dashboard_url(cfg, alert, ids),
    }
