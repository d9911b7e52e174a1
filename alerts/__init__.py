"""Alerts as code: Prometheus alert and recording rules, Alertmanager and Grafana routing.

    >>> from genonaut_monitoring import alerts, config
    >>> files = alerts.outputs(config.CONFIG)        # {"prometheus/rules/http.yml": b"...", ...}
    >>> alerts.recorded_series(config.CONFIG)["job:http_requests_5xx:ratio_rate5m"]
    frozenset({'job'})

Rules live one module per area (``http``, ``pagination``, ``database``,
``meta``, ``postgres``), recording rules in ``recording``; thresholds, ``for`` durations and
windows come from ``config``; metric names from ``exporters.catalogue``.

An alert is one definition in its area's module (expression, threshold, ``for``,
severity, texts, panel, promtool cases) plus its RUNBOOK.md section; the build
refuses an alert without either, and the tests read every alert from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from genonaut_monitoring import PACKAGE_DIR, config
from genonaut_monitoring.alerts import (
    alertmanager,
    consistency,
    database,
    grafana,
    http,
    links,
    meta,
    pagination,
    postgres,
    recording,
    slo,
    unittests,
)
from genonaut_monitoring.alerts.model import Alert, Group, Record
from genonaut_monitoring.alerts.render import rule_file
from genonaut_monitoring.exporters import catalogue

RUNBOOK = PACKAGE_DIR / "RUNBOOK.md"
RULES_DIR = "prometheus/rules"


def groups(cfg: config.Config) -> list[Group]:
    """Every rule group; recording rules first, since the alerts read them."""
    found = [
        recording.group(cfg),
        http.group(cfg),
        pagination.group(cfg),
        database.group(cfg),
        meta.group(cfg),
        *([slo.group(cfg)] if cfg.slos else []),
    ]
    if cfg.postgres.targets:
        # Without an exporter to scrape, PostgresExporterMissing would fire for ever.
        found.append(postgres.group(cfg))
    return found


def all_alerts(cfg: config.Config) -> list[Alert]:
    return [alert for group in groups(cfg) for alert in group.alerts]


def by_name(cfg: config.Config) -> dict[str, Alert]:
    """Every alert definition, by alert name."""
    return {alert.name: alert for alert in all_alerts(cfg)}


def group_of(cfg: config.Config) -> dict[str, Group]:
    """The group each alert belongs to, by alert name."""
    return {alert.name: group for group in groups(cfg) for alert in group.alerts}


def recorded_series(cfg: config.Config) -> dict[str, frozenset[str]]:
    """Recording-rule name -> the labels its series keep (for catalogue.check_expression)."""
    found: dict[str, frozenset[str]] = {}
    for group in groups(cfg):
        for record in group.records:
            found[record.name] = found.get(record.name, frozenset()) | record.keeps
    return found


def rule_path(group: Group) -> str:
    return f"{RULES_DIR}/{group.area}.yml"


def dashboard_panel_ids(cfg: config.Config) -> dict[tuple[str, str], int]:
    """Panel ids of the generated dashboards, by (dashboard uid, panel title)."""
    from genonaut_monitoring import dashboards

    return links.panel_ids(dashboards.outputs(cfg))


def rule_outputs(cfg: config.Config, ids: Mapping[tuple[str, str], int]) -> dict[str, bytes]:
    """The Prometheus rule files; BuildError names each alert whose links cannot be made."""
    from genonaut_monitoring.builder import BuildError

    files, problems = {}, []
    for group in groups(cfg):
        try:
            files[rule_path(group)] = rule_file(cfg, group, ids).encode()
        except ValueError as exc:
            problems.append(f"{rule_path(group)}: {exc}")
    if problems:
        raise BuildError(problems)
    return files


def outputs(cfg: config.Config) -> dict[str, bytes]:
    """Rule files, alertmanager.yml with its templates, and Grafana alerting provisioning."""
    return {
        **rule_outputs(cfg, dashboard_panel_ids(cfg)),
        **alertmanager.outputs(cfg),
        **grafana.outputs(cfg),
    }


def definition_problems(cfg: config.Config) -> list[str]:
    """House rules and the metric contract, checked on the definitions themselves."""
    problems: list[str] = slo.problems(cfg)
    extra = recorded_series(cfg)
    seen: set[object] = set()
    runbook = RUNBOOK.read_text() if RUNBOOK.exists() else ""
    for group in groups(cfg):
        for rule in group.rules:
            problems.extend(rule.problems())
            kind = "alert" if isinstance(rule, Alert) else "recording rule"
            identity = rule.identity if isinstance(rule, Record) else rule.name
            if identity in seen:
                problems.append(f"{kind} {rule.name}: defined twice")
            seen.add(identity)
            for problem in catalogue.check_expression(rule.expr, extra):
                problems.append(f"{kind} {rule.name} ({rule_path(group)}): {problem}")
            if isinstance(rule, Alert):
                problems.extend(unittests.annotation_problems(cfg, rule))
                if f"\n## {rule.name}\n" not in runbook:
                    problems.append(
                        f"alert {rule.name}: RUNBOOK.md has no '## {rule.name}' section"
                    )
    problems += consistency.alert_problems(cfg, all_alerts(cfg))
    return problems + alertmanager.problems(cfg)


def validate(folder: Path, cfg: config.Config) -> list[str]:
    """Problems in the staged output: definitions, promtool lint, amtool check-config, and
    every notification rendered (alerts/previews.py)."""
    from genonaut_monitoring.builder import run_tool

    problems = definition_problems(cfg)
    problems += consistency.panel_problems(cfg, all_alerts(cfg), _staged_dashboards(folder))
    for group in groups(cfg):
        path = folder / rule_path(group)
        problems.extend(
            run_tool(
                ["promtool", "check", "rules", "--lint=all", "--lint-fatal", str(path)],
                f"{rule_path(group)} (alerts {', '.join(a.name for a in group.alerts) or 'none'})",
            )
        )
    checked = run_tool(
        ["amtool", "check-config", str(folder / "alertmanager" / "alertmanager.yml")],
        "alertmanager/alertmanager.yml",
    )
    problems.extend(checked)
    if not checked:
        # Every alert's notification to every receiver, rendered through the built templates.
        from genonaut_monitoring.alerts import previews

        problems.extend(previews.validate(folder, cfg))
    return problems


def _staged_dashboards(folder: Path) -> dict[str, dict[str, object]]:
    """The staged dashboards by uid (unreadable ones are the dashboards part's to report)."""
    import json

    boards = {}
    for path in sorted((folder / "grafana" / "dashboards").glob("*.json")):
        try:
            board = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(board, dict) and isinstance(board.get("uid"), str):
            boards[board["uid"]] = board
    return boards


__all__ = [
    "Alert",
    "Group",
    "Record",
    "all_alerts",
    "by_name",
    "groups",
    "outputs",
    "recorded_series",
]
