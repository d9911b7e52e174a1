"""Routing: every alert reaches exactly its intended receivers, in Alertmanager and Grafana.

The expectations are written out here, not derived from alerts.routing, so a
change to the routing table has to change this file too.
"""

from __future__ import annotations

import functools
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from genonaut_monitoring import alerts, config
from genonaut_monitoring.alerts import gotemplate, grafana, meta, unittests
from tests.conftest import require_tool

# Severity -> receivers, in the order Alertmanager's routes reach them.
INTENDED = {"critical": "email,slack", "warning": "slack", "info": "slack"}
WATCHDOG_RECEIVER = "watchdog"
ALERTS = alerts.by_name(config.CONFIG)


def intended(name: str, severity: str) -> str:
    return WATCHDOG_RECEIVER if name == meta.WATCHDOG else INTENDED[severity]


@functools.cache
def alertmanager_yml(profile: str) -> bytes:
    return alerts.outputs(config.profile(profile))["alertmanager/alertmanager.yml"]


def routes_test(tmp_path: Path, profile: str, receivers: str, labels: dict[str, str]) -> str:
    """Run amtool's route test with --verify.receivers; return what it printed."""
    amtool = require_tool("amtool")
    path = tmp_path / "alertmanager.yml"
    path.write_bytes(alertmanager_yml(profile))
    result = subprocess.run(
        [
            amtool, "config", "routes", "test", f"--config.file={path}",
            f"--verify.receivers={receivers}",
            *(f"{k}={v}" for k, v in sorted(labels.items())),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, (
        f"{labels} should reach {receivers}:\n{result.stdout}{result.stderr}"
    )
    return result.stdout.strip()


@pytest.mark.parametrize("profile", ["default", "test"])
@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_alert_reaches_exactly_its_receivers(name: str, profile: str, tmp_path: Path) -> None:
    """Every alert its cases expect, with all its labels, reaches its severity's receivers."""
    alert = ALERTS[name]
    expected = intended(name, alert.severity)
    assert alert.cases is not None
    for expect in alert.cases.fires.alerts:
        labels = {"alertname": name, **unittests.firing_labels(alert, expect)}
        assert routes_test(tmp_path, profile, expected, labels) == expected


def test_an_unknown_severity_still_reaches_slack(tmp_path: Path) -> None:
    labels = {"alertname": "SomethingNew", "severity": "page-me"}
    assert routes_test(tmp_path, "default", "slack", labels) == "slack"


def test_alertmanager_config_takes_timing_from_config_and_no_secret() -> None:
    cfg = config.TEST_CONFIG
    data = yaml.safe_load(alertmanager_yml("test"))
    route = data["route"]
    assert route["group_by"] == ["alertname", "job"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        cfg.intervals.group_wait,
        cfg.intervals.group_interval,
        cfg.intervals.repeat_interval,
    )
    assert data["global"]["resolve_timeout"] == cfg.intervals.resolve_timeout
    assert data["templates"] == ["templates/*.tmpl"]
    slack = data["receivers"][0]["slack_configs"][0]
    assert slack["api_url_file"] == cfg.notifications.slack_api_url_file
    assert "api_url" not in slack and slack["send_resolved"] is True
    assert data["receivers"][1]["email_configs"][0]["send_resolved"] is True
    assert data["receivers"][2] == {"name": "watchdog"}  # no heartbeat URL: a null receiver
    assert data["inhibit_rules"] == [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["alertname", "job"],
        },
        {
            "source_matchers": ['alertname="ApiTargetDown"'],
            "target_matchers": ['alertname!~"ApiTargetDown|Watchdog"'],
            "equal": ["job", "instance"],
        },
        {
            "source_matchers": ['alertname="SloErrorBudgetFastBurn"'],
            "target_matchers": ['alertname="SloErrorBudgetSlowBurn"'],
            "equal": ["job", "slo"],
        },
    ]


def test_smtp_credentials_and_heartbeat_come_from_config(tmp_path: Path) -> None:
    cfg = replace(
        config.CONFIG,
        notifications=replace(
            config.CONFIG.notifications,
            smtp_auth_username="alerts",
            smtp_password_file="/run/secrets/smtp_password",
            watchdog_url="http://127.0.0.1:9/heartbeat",
        ),
    )
    text = alerts.outputs(cfg)["alertmanager/alertmanager.yml"]
    data = yaml.safe_load(text)
    assert data["global"]["smtp_auth_username"] == "alerts"
    assert data["global"]["smtp_auth_password_file"] == "/run/secrets/smtp_password"
    assert "smtp_auth_password:" not in text.decode()
    assert data["receivers"][2] == {
        "name": "watchdog",
        "webhook_configs": [{"send_resolved": False, "url": "http://127.0.0.1:9/heartbeat"}],
    }
    path = tmp_path / "alertmanager.yml"
    path.write_bytes(text)
    amtool = require_tool("amtool")
    checked = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_username_without_a_password_file_is_a_build_problem() -> None:
    cfg = replace(
        config.CONFIG,
        notifications=replace(config.CONFIG.notifications, smtp_auth_username="alerts"),
    )
    assert alerts.definition_problems(cfg) == [
        "config.Notifications: smtp_auth_username is set but smtp_password_file is empty; "
        "name the file Alertmanager reads the SMTP password from"
    ]


# --- Grafana's notification policies mirror Alertmanager's routes -----------------------


def grafana_file(name: str, cfg: config.Config = config.CONFIG) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        alerts.outputs(cfg)[f"grafana/provisioning/alerting/{name}"]
    )
    assert data["apiVersion"] == 1
    return data


def _matches(matcher: list[str], labels: dict[str, str]) -> bool:
    name, op, value = matcher
    actual = labels.get(name, "")
    if op == "=":
        return actual == value
    if op == "=~":
        return re.fullmatch(value, actual) is not None
    raise AssertionError(f"matcher operator {op!r} not expected in the policy tree")


def grafana_receivers(policy: dict[str, Any], labels: dict[str, str]) -> list[str]:
    """Grafana's (= Alertmanager's) routing: first match wins unless it says continue."""
    found = []
    for route in policy.get("routes", []):
        if all(_matches(m, labels) for m in route.get("object_matchers", [])):
            found.extend(grafana_receivers(route, labels) or [route["receiver"]])
            if not route.get("continue", False):
                break
    return found


@pytest.mark.parametrize("severity", sorted(INTENDED))
def test_grafana_policies_route_like_alertmanager(severity: str) -> None:
    policy = grafana_file("policies.yaml")["policies"][0]
    cfg = config.CONFIG
    assert policy["receiver"] == "slack"
    assert policy["group_by"] == ["alertname", "job"]
    assert policy["group_wait"] == cfg.intervals.group_wait
    labels = {"alertname": "GrafanaRule", "severity": severity}
    assert ",".join(grafana_receivers(policy, labels)) == INTENDED[severity]


def test_grafana_contact_points_reference_secrets_and_escape_go_templates() -> None:
    points = {p["name"]: p for p in grafana_file("contact-points.yaml")["contactPoints"]}
    assert sorted(points) == ["email", "slack"]  # no heartbeat URL: no watchdog point
    policy = grafana_file("policies.yaml")["policies"][0]
    used = {policy["receiver"], *(r["receiver"] for r in policy["routes"])}
    assert used <= set(points)
    slack = points["slack"]["receivers"][0]
    assert slack["type"] == "slack"
    assert slack["settings"]["url"] == "$__env{SLACK_WEBHOOK_URL}"
    assert slack["settings"]["title"] == '{{ template "genonaut.grafana.title" . }}'
    email = points["email"]["receivers"][0]
    assert email["settings"]["addresses"] == config.CONFIG.notifications.email_to
    # Provisioning expands $VAR in settings: a Go-template $ must arrive doubled.
    assert grafana.literal("{{ $labels.job }} costs $5") == "{{ $$labels.job }} costs $$5"


def test_grafana_gets_its_own_templates_defining_every_one_its_contact_points_use() -> None:
    templates = grafana_file("templates.yaml")["templates"]
    assert [(t["name"], t["orgId"]) for t in templates] == [("genonaut-notifications", 1)]
    text = templates[0]["template"]
    source = (grafana.TEMPLATES / "notifications.tmpl").read_text()
    defined = gotemplate.defines(text)
    for block in defined.values():
        assert block.text in source  # word for word from Grafana's own file
    points = grafana_file("contact-points.yaml")["contactPoints"]
    used = {
        name
        for point in points
        for receiver in point["receivers"]
        for value in receiver["settings"].values()
        if isinstance(value, str)
        for name in re.findall(r'template "([^"]+)"', value)
    }
    assert used and used <= set(defined), used - set(defined)
    # Alertmanager's templates stay Alertmanager's: no name is defined by both.
    alertmanager = alerts.outputs(config.CONFIG)["alertmanager/templates/genonaut.tmpl"].decode()
    assert set(defined).isdisjoint(gotemplate.defines(alertmanager))


def test_grafana_watchdog_route_exists_only_with_a_heartbeat_url() -> None:
    cfg = replace(
        config.CONFIG,
        notifications=replace(config.CONFIG.notifications, watchdog_url="http://hb.local/x$y"),
    )
    points = {p["name"]: p for p in grafana_file("contact-points.yaml", cfg)["contactPoints"]}
    assert points["watchdog"]["receivers"][0]["settings"]["url"] == "http://hb.local/x$$y"
    policy = grafana_file("policies.yaml", cfg)["policies"][0]
    assert grafana_receivers(policy, {"alertname": "Watchdog", "severity": "info"}) == ["watchdog"]


# --- inhibition, in a real Alertmanager ---------------------------------------------------


def _post_alerts(url: str, alerts_: list[dict[str, str]]) -> None:
    import requests

    body = [
        {"labels": labels, "annotations": {"summary": "test."}, "startsAt": "2020-01-01T00:00:00Z"}
        for labels in alerts_
    ]
    response = requests.post(f"{url}/api/v2/alerts", json=body, timeout=5)
    assert response.status_code == 200, response.text


def _inhibited(url: str) -> dict[tuple[str, str, str], bool]:
    import requests

    found = requests.get(f"{url}/api/v2/alerts", timeout=5).json()
    return {
        (a["labels"]["alertname"], a["labels"]["severity"], a["labels"].get("instance", "")): bool(
            a["status"]["inhibitedBy"]
        )
        for a in found
    }


@pytest.mark.e2e
def test_alertmanager_inhibits_symptoms_of_a_down_target_and_warnings_under_criticals(
    tmp_path: Path,
) -> None:
    require_tool("prometheus-alertmanager")
    from genonaut_monitoring.stack import Stack

    job = "genonaut-api"
    down = {"job": job, "instance": "10.0.0.1:8000", "pool": "default"}
    up = {"job": job, "instance": "10.0.0.2:8000", "pool": "default"}
    with Stack(tmp_path, components={"alertmanager", "slack", "smtp"}) as stack:
        _post_alerts(
            stack.alertmanager_url,
            [
                {"alertname": "ApiTargetDown", "severity": "critical", "job": job,
                 "instance": down["instance"]},
                {"alertname": "DatabasePoolNearExhaustion", "severity": "warning", **down},
                {"alertname": "DatabasePoolNearExhaustion", "severity": "warning", **up},
                {"alertname": "ApiHighErrorRate", "severity": "critical", "job": job},
                {"alertname": "ApiHighErrorRate", "severity": "warning", "job": job},
                {"alertname": "Watchdog", "severity": "info"},
            ],
        )  # fmt: skip
        expected = {
            ("ApiTargetDown", "critical", down["instance"]): False,
            # Same job and instance as the down target: a symptom, held back.
            ("DatabasePoolNearExhaustion", "warning", down["instance"]): True,
            # Another instance of the job still deserves attention.
            ("DatabasePoolNearExhaustion", "warning", up["instance"]): False,
            ("ApiHighErrorRate", "critical", ""): False,
            ("ApiHighErrorRate", "warning", ""): True,
            ("Watchdog", "info", ""): False,
        }
        # Inhibition is computed as alerts arrive; poll until all six are listed.
        stack.wait_for(lambda: len(_inhibited(stack.alertmanager_url)) == 6, 10, "six alerts")
        assert _inhibited(stack.alertmanager_url) == expected
