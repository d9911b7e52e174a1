"""Alerts and panels that agree: one series, one window, percentiles read at bucket boundaries.

Checked on the definitions and on the staged dashboards; each problem names the
alert or the dashboard and panel, and what to do:

- an alert reads any rate window only through recording rules, and the panel
  it links to draws one of them: the line a developer opens from the
  notification is the alert's own value over the alert's own window;
- every data panel's description says which window it shows (``Window: ...``);
- a quantile that an alert or a panel's threshold compares with a number is a
  quantile of a histogram that has that number as a bucket boundary;
- duration histograms have boundaries close enough for quantiles to be read.

    >>> problems(config.CONFIG, {})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from genonaut_monitoring import config
from genonaut_monitoring.alerts import links, recording
from genonaut_monitoring.alerts.model import Alert
from genonaut_monitoring.exporters import contract

# Panels without queries, so without a window.
_NO_DATA = frozenset({"text", "alertlist", "row"})
WINDOW_MARK = "Window: "


def recorded_exprs(cfg: config.Config) -> dict[str, str]:
    """Recording-rule name -> its expression."""
    return {record.name: record.expr for record in recording.rules(cfg)}


def _selected(expr: str) -> Iterator[tuple[str, bool]]:
    """``(metric name, selected with a range)`` of every selector in ``expr``."""
    import promql_parser as pp

    for node, _ in contract._walk(pp.parse(expr)):
        if isinstance(node, pp.MatrixSelector) and node.vector_selector.name:
            yield node.vector_selector.name, True
        elif isinstance(node, pp.VectorSelector) and node.name:
            yield node.name, False


def _windowed(name: str, recorded: Mapping[str, str], depth: int = 0) -> bool:
    """Whether recording rule ``name`` reads a window, itself or through another rule."""
    expr = recorded.get(name)
    if expr is None or depth > 10:
        return False
    return any(ranged or _windowed(other, recorded, depth + 1) for other, ranged in _selected(expr))


def alert_problems(cfg: config.Config, alerts: list[Alert]) -> list[str]:
    """Quantile thresholds on bucket boundaries, windows only through recording rules."""
    recorded = recorded_exprs(cfg)
    problems = []
    for alert in alerts:
        for spec, threshold in contract.quantile_comparisons(alert.expr, recorded):
            problem = contract.threshold_problem(spec, threshold)
            if problem is not None:
                problems.append(f"alert {alert.name}: {problem}")
        ranged = sorted({name for name, ranged in _selected(alert.expr) if ranged})
        if ranged:
            problems.append(
                f"alert {alert.name}: reads {', '.join(ranged)} over a window in its own "
                "expression; put that in a recording rule (alerts/recording.py) and have the "
                "alert and its panel read the rule, so both show the same window"
            )
    return problems + contract.bucket_problems()


def _panels(board: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    yield from links._panels(list(board.get("panels") or []))


def _exprs(panel: Mapping[str, Any]) -> list[str]:
    """The panel's queries that parse (the dashboards part reports the others)."""
    import promql_parser as pp

    from genonaut_monitoring.dashboards.checks import substitute

    found = []
    for target in panel.get("targets") or []:
        expr = substitute(str(target.get("expr", "")))
        try:
            pp.parse(expr)
        except ValueError:
            continue
        found.append(expr)
    return found


def panel_problems(
    cfg: config.Config, alerts: list[Alert], boards: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Problems of the staged dashboards (uid -> JSON) with the alerts that link to them."""
    recorded = recorded_exprs(cfg)
    problems = []
    for uid, board in sorted(boards.items()):
        for panel in _panels(board):
            if panel.get("type") in _NO_DATA:
                continue
            where = f"dashboard {uid!r}, panel {panel.get('title')!r}"
            if WINDOW_MARK not in str(panel.get("description", "")):
                problems.append(
                    f"{where}: the description does not say which window it shows; end it "
                    "with one of the window sentences in dashboards/common.py"
                )
            steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {})
            limits = [s["value"] for s in steps.get("steps", []) if s.get("value") is not None]
            for expr in _exprs(panel):
                for spec in sorted(contract.quantile_specs(expr, recorded), key=lambda s: s.name):
                    for limit in limits:
                        problem = contract.threshold_problem(spec, float(limit))
                        if problem is not None:
                            problems.append(f"{where}: {problem}")
    for alert in alerts:
        problems.extend(_linked_panel_problems(cfg, alert, boards, recorded))
    return list(dict.fromkeys(problems))


def _linked_panel_problems(
    cfg: config.Config,
    alert: Alert,
    boards: Mapping[str, Mapping[str, Any]],
    recorded: Mapping[str, str],
) -> list[str]:
    if alert.panel is None or alert.panel.title is None:
        return []
    uid = cfg.grafana.dashboard_uids.get(alert.panel.dashboard, "")
    board = boards.get(uid)
    if board is None:
        return []  # links.dashboard_url reports a missing dashboard or panel
    panel = next((p for p in _panels(board) if p.get("title") == alert.panel.title), None)
    read = {name for name, _ in _selected(alert.expr)}
    wanted = {name for name in read if _windowed(name, recorded)}
    if panel is None or panel.get("type") in _NO_DATA or not wanted:
        # An alert list shows the alert itself; an alert on a level (up == 0, a gauge)
        # has no window for its panel to disagree with.
        return []
    drawn = {name for expr in _exprs(panel) for name, _ in _selected(expr)}
    if wanted & drawn:
        return []
    return [
        f"alert {alert.name}: its panel {alert.panel.title!r} on dashboard {uid!r} draws "
        f"{', '.join(sorted(drawn)) or 'nothing'}, not what the alert reads "
        f"({', '.join(sorted(wanted))}); draw the alert's recording rule so the line and the "
        "alert show the same window"
    ]
