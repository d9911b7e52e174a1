"""The alert definitions themselves: house rules, links, thresholds from config, build errors.

Everything here is read from the definitions (``alerts.all_alerts``), never
from a list of the shipped alerts, so adding an alert needs no edit here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from genonaut_monitoring import alerts, config
from genonaut_monitoring import builder as build
from genonaut_monitoring.alerts import http
from genonaut_monitoring.alerts.cases import Cases, Expect, Gauge, Scenario, target
from genonaut_monitoring.alerts.model import Alert
from tests.conftest import require_tool
from tests.promtool import PROFILES, generated_rules, rule_files

NUMERIC_THRESHOLDS = [
    f.name
    for f in dataclasses.fields(config.Thresholds)
    if isinstance(getattr(config.CONFIG.thresholds, f.name), (int, float))
]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_rule_files_say_what_the_definitions_say(profile: str) -> None:
    cfg = PROFILES[profile]
    rules = generated_rules(profile)
    assert sorted(rules) == sorted(alerts.by_name(cfg))
    for name, alert in alerts.by_name(cfg).items():
        rule = rules[name]
        assert rule["expr"] == alert.expr, name
        assert rule["for"] == alert.for_, name
        assert rule["labels"] == {**alert.labels, "severity": alert.severity}, name
        assert rule["annotations"]["summary"] == alert.summary, name
        assert rule["annotations"]["description"] == alert.description, name


def _changed(value: float) -> float:
    """Another valid value for a threshold: ten times a count, half a ratio or a time."""
    if isinstance(value, int):
        return value * 10
    return value / 2 if value else 0.25


@pytest.mark.parametrize("key", NUMERIC_THRESHOLDS)
def test_an_alert_that_reads_a_threshold_quotes_it_in_its_summary(key: str) -> None:
    """Change one threshold: exactly the alerts whose expression changes re-word their summary."""
    before = alerts.by_name(config.CONFIG)
    changed: dict[str, Any] = {key: _changed(getattr(config.CONFIG.thresholds, key))}
    cfg = replace(config.CONFIG, thresholds=replace(config.CONFIG.thresholds, **changed))
    after = alerts.by_name(cfg)
    for name, alert in before.items():
        reads = alert.expr != after[name].expr
        quotes = alert.summary != after[name].summary
        assert reads == quotes, f"{name}: changing thresholds.{key} changes its " + (
            "expression but not its summary" if reads else "summary but not its expression"
        )


@pytest.mark.parametrize("key", [f.name for f in dataclasses.fields(config.AlertDurations)])
def test_every_for_duration_in_config_belongs_to_an_alert(key: str) -> None:
    cfg = replace(config.CONFIG, durations=replace(config.CONFIG.durations, **{key: "17m"}))
    changed = [a.name for a in alerts.all_alerts(cfg) if a.for_ == "17m"]
    assert changed, f"config.AlertDurations.{key} is the `for` of no alert"


def test_a_threshold_change_in_config_reaches_the_offset_matcher_escaped() -> None:
    cfg = replace(config.CONFIG, thresholds=replace(config.CONFIG.thresholds, deep_offset_min=1000))
    deep = alerts.by_name(cfg)["PaginationDeepOffsetSlow"]
    assert 'offset_range=~"1001-10000|10001-100000|100001\\\\+"' in deep.expr


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_links_point_at_the_runbook_section_and_an_existing_panel(profile: str) -> None:
    cfg = PROFILES[profile]
    ids = alerts.dashboard_panel_ids(cfg)
    runbook = alerts.RUNBOOK.read_text()
    defined = alerts.by_name(cfg)
    for name, rule in generated_rules(profile).items():
        notes = rule["annotations"]
        assert notes["runbook_url"] == f"{cfg.runbook_base_url}#{name.lower()}"
        assert f"\n## {name}\n" in runbook
        base, _, panel = notes["dashboard_url"].partition("/?viewPanel=")
        uid = base.removeprefix(f"{cfg.grafana.url}/d/")
        target_panel = defined[name].panel
        assert target_panel is not None and target_panel.title is not None, name
        assert uid == cfg.grafana.dashboard_uids[target_panel.dashboard], name
        # The id is the one of the panel the alert names, not just any panel of that board.
        titles = {pid: title for (u, title), pid in ids.items() if u == uid}
        assert titles[int(panel)] == target_panel.title, name


def test_a_missing_panel_fails_the_build_naming_the_alert() -> None:
    cfg = config.CONFIG
    alert = alerts.all_alerts(cfg)[0]
    assert alert.panel is not None and alert.panel.title is not None
    uid = cfg.grafana.dashboard_uids[alert.panel.dashboard]
    ids = {
        k: v for k, v in alerts.dashboard_panel_ids(cfg).items() if k != (uid, alert.panel.title)
    }
    with pytest.raises(build.BuildError) as caught:
        alerts.rule_outputs(cfg, ids)
    path = alerts.rule_path(alerts.group_of(cfg)[alert.name])
    assert caught.value.problems == [
        f"{path}: alert {alert.name}: dashboard {uid} has no panel titled {alert.panel.title!r}; "
        "rename the panel back or point the alert at one of: "
        + ", ".join(sorted(t for (u, t) in ids if u == uid))
    ]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_definitions_keep_the_house_rules_and_the_metric_contract(profile: str) -> None:
    assert alerts.definition_problems(PROFILES[profile]) == []


def _add_to_http(monkeypatch: pytest.MonkeyPatch, alert: Alert) -> None:
    original = http.alerts
    monkeypatch.setattr(http, "alerts", lambda cfg: [*original(cfg), alert])


def test_a_metric_outside_the_catalogue_is_reported_with_the_alert_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quiet = Scenario("up", [Gauge("up", target(config.CONFIG), 1)])
    broken = Alert(
        "ApiBroken",
        "http_requests_totl > 1",
        "1m",
        "warning",
        "Broken.",
        "{{ $value }}",
        cases=Cases(fires=Scenario("down", [], [Expect({}, 1)]), quiet=[quiet]),
    )
    _add_to_http(monkeypatch, broken)
    problems = alerts.definition_problems(config.CONFIG)
    assert (
        "alert ApiBroken (prometheus/rules/http.yml): metric 'http_requests_totl' is not in the "
        "catalogue (exporters/catalogue.py), nor recorded from another exporter "
        "(exporters/*.json), nor produced by a recording rule"
    ) in problems
    assert "alert ApiBroken: RUNBOOK.md has no '## ApiBroken' section" in problems


def test_an_alert_without_promtool_cases_is_a_build_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    uncovered = Alert("ApiUncovered", "up == 0", "1m", "warning", "Uncovered.", "{{ $value }}")
    _add_to_http(monkeypatch, uncovered)
    expected = (
        "alert ApiUncovered: no promtool cases; give it cases=Cases(fires=Scenario(...), "
        "quiet=[Scenario(...)]) with the series that make it fire and stay silent "
        "(alerts/cases.py)"
    )
    assert expected in alerts.definition_problems(config.CONFIG)
    with pytest.raises(build.BuildError) as caught:
        build.build(config.CONFIG, tmp_path / "out")
    assert expected in caught.value.problems
    assert not (tmp_path / "out").exists()


def test_cases_that_cannot_test_anything_are_build_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = target(config.CONFIG)
    vague = Alert(
        "ApiVague",
        "up == 0",
        "1m",
        "warning",
        "Vague.",
        "{{ $labels.route }} is {{ $value }}.",
        cases=Cases(
            fires=Scenario(
                "every scrape fails", [Gauge("up", {**api, "rout": "/"}, 0)], [Expect(api, 0)]
            )
        ),
    )
    _add_to_http(monkeypatch, vague)
    problems = [p for p in alerts.definition_problems(config.CONFIG) if "ApiVague" in p]
    assert problems == [
        "alert ApiVague: cases.quiet is empty; add a scenario below the threshold where it stays "
        "silent",
        'alert ApiVague: case series up{instance="localhost:8000", job="genonaut-api", '
        "rout=\"/\"}: labels ['rout'] are not labels of up (it has ['instance', 'job'])",
        "alert ApiVague: description: {{ $labels.route }}: the alert has no label 'route' (it "
        "has instance, job, severity); Prometheus would print <no value>",
        "alert ApiVague: RUNBOOK.md has no '## ApiVague' section",
    ]


def test_recording_rule_names_state_the_window_they_hold() -> None:
    default = alerts.recorded_series(config.CONFIG)
    short = alerts.recorded_series(config.TEST_CONFIG)
    assert "job:http_requests_5xx:ratio_rate5m" in default
    assert "job:http_requests_5xx:ratio_rate10s" in short
    assert default["job_route:http_request_duration_seconds:p95_rate5m"] == {"job", "route"}
    assert all(name.count(":") == 2 for name in default)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_outputs_are_deterministic_and_end_with_a_newline(profile: str) -> None:
    cfg = PROFILES[profile]
    first, second = alerts.outputs(cfg), alerts.outputs(cfg)
    assert first == second
    assert sorted(first) == sorted(
        {
            "alertmanager/alertmanager.yml",
            "alertmanager/templates/genonaut.tmpl",
            "grafana/provisioning/alerting/contact-points.yaml",
            "grafana/provisioning/alerting/policies.yaml",
            "grafana/provisioning/alerting/templates.yaml",
            *(alerts.rule_path(group) for group in alerts.groups(cfg)),
        }
    )
    assert all(content.endswith(b"\n") for content in first.values())


def test_recording_rules_carry_a_comment_with_their_reason() -> None:
    found = 0
    for text in rule_files("default").values():
        lines = text.decode().splitlines()
        records = [i for i, line in enumerate(lines) if line.lstrip().startswith("- record:")]
        assert all(lines[i - 1].lstrip().startswith("# ") for i in records)
        found += len(records)
    groups = alerts.groups(config.CONFIG)
    assert found == sum(len(group.records) for group in groups)


def test_validate_runs_promtool_and_amtool_and_names_the_broken_file(tmp_path: Path) -> None:
    require_tool("promtool")
    require_tool("amtool")
    cfg = config.TEST_CONFIG
    build.write_tree(tmp_path, build.render(cfg))
    assert alerts.validate(tmp_path, cfg) == []
    group = next(g for g in alerts.groups(cfg) if g.alerts)
    path = tmp_path / alerts.rule_path(group)
    data = yaml.safe_load(path.read_text())
    broken = next(rule for rule in data["groups"][0]["rules"] if "alert" in rule)
    broken["expr"] = "sum(rate(up[5m]) >"
    path.write_text(yaml.safe_dump(data))
    am = tmp_path / "alertmanager/alertmanager.yml"
    am.write_text(am.read_text().replace("receiver: slack\n", "receiver: nobody\n", 1))
    problems = alerts.validate(tmp_path, cfg)
    assert len(problems) == 2
    names = ", ".join(a.name for a in group.alerts)
    assert problems[0].startswith(
        f"{alerts.rule_path(group)} (alerts {names}): promtool check rules --lint=all --lint-fatal"
    )
    assert f'"{broken["alert"]}": could not parse expression' in problems[0]
    assert problems[1].startswith("alertmanager/alertmanager.yml: amtool check-config")
    assert 'undefined receiver "nobody"' in problems[1]
