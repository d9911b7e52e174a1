"""promtool unit tests for every alert and recording rule, generated from the config.

Each alert gets one promtool test file per profile with two cases: it fires
above its threshold once ``for`` has passed (and not before), with exact
labels and annotations, and it stays silent below its threshold.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from genonaut_monitoring import alerts, config
from genonaut_monitoring.alerts.model import duration, seconds
from tests.conftest import require_tool
from tests.rules import cases, golang

PROFILES = {"default": config.CONFIG, "test": config.TEST_CONFIG}
ALERT_NAMES = [a.name for a in alerts.all_alerts(config.CONFIG)]
# Where the rules under test come from: the rule files, or the groups inside the
# Kubernetes target's PrometheusRules (where every alert also carries a namespace label).
SOURCES = ("files", "kubernetes")


@functools.cache
def rule_files(profile: str, source: str = "files") -> dict[str, bytes]:
    cfg = PROFILES[profile]
    if source == "kubernetes":
        from genonaut_monitoring import builder, kubernetes

        return kubernetes.rule_files(builder.render(cfg, "kubernetes"))
    return alerts.rule_outputs(cfg, alerts.dashboard_panel_ids(cfg))


def source_labels(cfg: config.Config, source: str) -> dict[str, str]:
    """Labels the rule source adds to every alert."""
    return {"namespace": cfg.kubernetes.namespace} if source == "kubernetes" else {}


def generated_rules(profile: str, source: str = "files") -> dict[str, dict[str, Any]]:
    """Every alerting rule as written to the rule files, by alert name."""
    rules = {}
    for content in rule_files(profile, source).values():
        for group in yaml.safe_load(content)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules[rule["alert"]] = rule
    return rules


def write_rules(folder: Path, profile: str, source: str = "files") -> list[str]:
    paths = []
    for relative, content in rule_files(profile, source).items():
        target = folder / "rules" / Path(relative).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        paths.append(f"rules/{target.name}")
    return sorted(paths)


def run_promtool(folder: Path, test: dict[str, Any]) -> None:
    promtool = require_tool("promtool")
    path = folder / "test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"promtool test rules {path}:\n{result.stdout}{result.stderr}"


def exp_alert(
    rule: dict[str, Any], cfg: config.Config, expected: cases.Expected, source: str = "files"
) -> dict:
    labels = {
        **expected.labels,
        "severity": rule["labels"]["severity"],
        **source_labels(cfg, source),
    }
    notes = rule["annotations"]
    fmt = notes["value"].split("|")[1].strip(" }")
    return {
        "exp_labels": labels,
        "exp_annotations": {
            "summary": notes["summary"],
            "description": golang.render(notes["description"], labels, expected.value),
            "value": golang.FUNCTIONS[fmt](expected.value),
            "runbook_url": f"{cfg.runbook_base_url}#{rule['alert'].lower()}",
            "dashboard_url": notes["dashboard_url"],
        },
    }


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_alert_fires_above_threshold_after_for_and_stays_silent_below(
    alert: str, profile: str, source: str, tmp_path: Path
) -> None:
    cfg = PROFILES[profile]
    rule = generated_rules(profile, source)[alert]
    step = seconds(cfg.intervals.evaluation_interval)
    hold = seconds(rule["for"])
    # rate() divides by the whole window, so a rate alert may only cross its threshold once
    # the window has filled: fire_at leaves a full window, then `for`, then margin.
    fire_at = seconds(cfg.intervals.rate_window) + hold + 2 * step
    case = cases.case(cfg, alert, fire_at)
    interval = cfg.intervals.evaluation_interval
    fires_checks: list[dict[str, Any]] = []
    if hold > step:
        fires_checks.append(
            {"eval_time": duration(hold - step), "alertname": alert, "exp_alerts": []}
        )
    fires_checks.append(
        {
            "eval_time": duration(fire_at),
            "alertname": alert,
            "exp_alerts": [exp_alert(rule, cfg, e, source) for e in case.fires.expected],
        }
    )
    tests = [
        {
            "name": f"{alert} fires after {rule['for']} when {case.fires.what}, and not before.",
            "interval": interval,
            "input_series": case.fires.series,
            "alert_rule_test": fires_checks,
        }
    ]
    if case.quiet is not None:
        tests.append(
            {
                "name": f"{alert} stays silent when {case.quiet.what}.",
                "interval": interval,
                "input_series": case.quiet.series,
                "alert_rule_test": [
                    {"eval_time": duration(t), "alertname": alert, "exp_alerts": []}
                    for t in (fire_at, fire_at + hold + step)
                ],
            }
        )
    rule_paths = write_rules(tmp_path, profile, source)
    run_promtool(
        tmp_path, {"rule_files": rule_paths, "evaluation_interval": interval, "tests": tests}
    )


def test_every_alert_has_a_case() -> None:
    assert sorted(cases.BUILDERS) == sorted(ALERT_NAMES)


def _bucket_samples(
    spec_name: str, labels: dict[str, str], bucket: tuple[float, float], per_second: float
) -> list[dict[str, Any]]:
    """Expected bucket rates: 10 observations per step, all inside ``bucket``."""
    from genonaut_monitoring.exporters import catalogue

    spec = next(s for s in catalogue.CATALOGUE if s.name == spec_name)
    edges = [*(spec.buckets or ()), float("inf")]
    return [
        {
            "labels": cases.labels_text({**labels, "le": cases.le_text(le)}),
            "value": per_second if le >= bucket[1] else 0.0,
        }
        for le in edges
    ]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_recording_rules_compute_rates_ratios_and_quantiles(
    profile: str, source: str, tmp_path: Path
) -> None:
    from genonaut_monitoring.alerts import recording as r
    from genonaut_monitoring.exporters import catalogue as c

    cfg = PROFILES[profile]
    step = seconds(cfg.intervals.evaluation_interval)
    at = seconds(cfg.intervals.rate_window) + 2 * step
    job, t = cfg.jobs[0], cfg.thresholds
    built = {
        name: cases.case(cfg, name, at)
        for name in (
            "ApiHighErrorRate",
            "ApiHighLatency",
            "PaginationSlowQueries",
            "PaginationDeepOffsetSlow",
            "DatabaseSlowQueries",
            "DatabaseQueryErrors",
            "DatabasePoolNearExhaustion",
        )
    }
    series = [s for case in built.values() for s in case.fires.series]
    errors = built["ApiHighErrorRate"].fires.expected[0].value * 100
    content = "/api/v1/content"
    item = "/api/v1/content/{item_id}"
    deep = c.offset_ranges_from(t.deep_offset_min)[0]
    http_hot = cases.bucket_above(c.HTTP_REQUEST_DURATION, t.latency_p95_seconds)
    page_hot = cases.bucket_above(c.PAGINATION_QUERY_DURATION, t.pagination_query_p95_seconds)
    deep_hot = cases.bucket_above(c.PAGINATION_REQUEST_DURATION, t.deep_offset_p95_seconds)
    db_hot = cases.bucket_above(c.DB_QUERY_DURATION, t.db_query_p95_seconds)
    select = {"job": job, "operation": "select", "table": "content_items"}
    per_second = 1.0
    expected: dict[str, list[dict[str, Any]]] = {
        r.http_requests_rate(cfg): [
            {"labels": cases.labels_text({"job": job, "route": content, "status": "200"}),
             "value": 100 - errors},
            {"labels": cases.labels_text({"job": job, "route": content, "status": "500"}),
             "value": errors},
        ],
        r.http_error_ratio(cfg): [
            {"labels": cases.labels_text({"job": job}), "value": errors / 100}
        ],
        r.http_duration_buckets(cfg): _bucket_samples(
            c.HTTP_REQUEST_DURATION.name, {"job": job, "route": item}, http_hot, per_second
        ),
        r.http_duration_p95(cfg): [
            {"labels": cases.labels_text({"job": job, "route": item}),
             "value": cases.p95(http_hot)}
        ],
        r.pagination_query_buckets(cfg): _bucket_samples(
            c.PAGINATION_QUERY_DURATION.name,
            {"job": job, "route": content, "mode": "offset"},
            page_hot,
            per_second,
        ),
        r.pagination_query_p95(cfg): [
            {"labels": cases.labels_text({"job": job, "route": content, "mode": "offset"}),
             "value": cases.p95(page_hot)}
        ],
        r.pagination_offset_buckets(cfg): _bucket_samples(
            c.PAGINATION_REQUEST_DURATION.name,
            {"job": job, "route": content, "offset_range": deep},
            deep_hot,
            per_second,
        ),
        r.pagination_offset_p95(cfg): [
            {"labels": cases.labels_text({"job": job, "route": content, "offset_range": deep}),
             "value": cases.p95(deep_hot)}
        ],
        r.db_duration_buckets(cfg): _bucket_samples(
            c.DB_QUERY_DURATION.name, select, db_hot, per_second
        ),
        r.db_duration_p95(cfg): [
            {"labels": cases.labels_text(select), "value": cases.p95(db_hot)}
        ],
        r.db_slow_queries_rate(cfg): [
            {"labels": cases.labels_text({"job": job, "operation": "insert", "table": "tags"}),
             "value": cases.binary_above(t.slow_queries_per_second)}
        ],
        r.db_errors_rate(cfg): [
            {"labels": cases.labels_text(select),
             "value": built["DatabaseQueryErrors"].fires.expected[0].value}
        ],
        r.pool_saturation(cfg): [
            {"labels": cases.labels_text(cases.target(pool="default")), "value": 1.0}
        ],
    }  # fmt: skip
    assert sorted(expected) == sorted(alerts.recorded_series(cfg)), "a recording rule is untested"
    tests = [
        {
            "name": "Recording rules hold the rates, ratios and p95s of known traffic.",
            "interval": cfg.intervals.evaluation_interval,
            "input_series": series,
            "promql_expr_test": [
                {
                    "expr": name,
                    "eval_time": duration(at),
                    "exp_samples": [
                        {"labels": name + s["labels"], "value": s["value"]} for s in samples
                    ],
                }
                for name, samples in sorted(expected.items())
            ],
        }
    ]
    run_promtool(
        tmp_path,
        {
            "rule_files": write_rules(tmp_path, profile, source),
            "evaluation_interval": cfg.intervals.evaluation_interval,
            "tests": tests,
        },
    )


# --- the definitions themselves -------------------------------------------------------

DEFAULT_SUMMARIES = {
    "ApiHighErrorRate": "More than 5% of API requests fail with a 5xx status.",
    "ApiHighLatency": "API p95 response time is above 1s.",
    "PaginationSlowQueries": "Pagination page queries take longer than 500ms at p95.",
    "PaginationDeepOffsetSlow": "Pages at offsets of 10,000 or more take longer than 1s at p95.",
    "DatabaseSlowQueries": (
        "Database statements are slow: p95 above 250ms or more than 0.1 slow statements per second."
    ),
    "DatabaseQueryErrors": "Database statements fail at more than 0 errors per second.",
    "DatabasePoolNearExhaustion": (
        "A connection pool has more than 90% of its connections checked out."
    ),
    "DatabasePoolCheckoutTimeouts": "Requests time out waiting for a free database connection.",
    "ApiTargetDown": "Prometheus cannot scrape one of the API targets.",
    "ApiTargetMissing": "Prometheus has no scrape target for the API.",
    "Watchdog": "The alerting pipeline is working: this alert always fires.",
}
DEFAULT_SEVERITY_AND_FOR = {
    "ApiHighErrorRate": ("critical", "2m"),
    "ApiHighLatency": ("warning", "5m"),
    "PaginationSlowQueries": ("warning", "5m"),
    "PaginationDeepOffsetSlow": ("warning", "10m"),
    "DatabaseSlowQueries": ("warning", "5m"),
    "DatabaseQueryErrors": ("warning", "2m"),
    "DatabasePoolNearExhaustion": ("warning", "5m"),
    "DatabasePoolCheckoutTimeouts": ("critical", "1m"),
    "ApiTargetDown": ("critical", "1m"),
    "ApiTargetMissing": ("critical", "1m"),
    "Watchdog": ("info", "0s"),
}


def test_summaries_state_the_configured_thresholds() -> None:
    rules = generated_rules("default")
    assert {name: r["annotations"]["summary"] for name, r in rules.items()} == DEFAULT_SUMMARIES
    assert {n: (r["labels"]["severity"], r["for"]) for n, r in rules.items()} == (
        DEFAULT_SEVERITY_AND_FOR
    )


def test_a_threshold_change_in_config_reaches_expression_and_summary() -> None:
    from dataclasses import replace

    cfg = replace(
        config.CONFIG,
        thresholds=replace(config.CONFIG.thresholds, error_ratio=0.02, deep_offset_min=1000),
    )
    found = {a.name: a for a in alerts.all_alerts(cfg)}
    assert found["ApiHighErrorRate"].expr.endswith("> 0.02")
    assert found["ApiHighErrorRate"].summary == (
        "More than 2% of API requests fail with a 5xx status."
    )
    assert 'offset_range=~"1001-10000|10001-100000|100001\\\\+"' in (
        found["PaginationDeepOffsetSlow"].expr
    )


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_links_point_at_the_runbook_section_and_an_existing_panel(profile: str) -> None:
    cfg = PROFILES[profile]
    ids = alerts.dashboard_panel_ids(cfg)
    runbook = alerts.RUNBOOK.read_text()
    defined = {alert.name: alert for alert in alerts.all_alerts(cfg)}
    for name, rule in generated_rules(profile).items():
        notes = rule["annotations"]
        assert notes["runbook_url"] == f"{cfg.runbook_base_url}#{name.lower()}"
        assert f"\n## {name}\n" in runbook
        base, _, panel = notes["dashboard_url"].partition("/?viewPanel=")
        uid = base.removeprefix(f"{cfg.grafana.url}/d/")
        target = defined[name].panel
        assert target is not None and target.title is not None, name
        assert uid == cfg.grafana.dashboard_uids[target.dashboard], name
        # The id is the one of the panel the alert names, not just any panel of that board.
        titles = {pid: title for (u, title), pid in ids.items() if u == uid}
        assert titles[int(panel)] == target.title, name


def test_a_missing_panel_fails_the_build_naming_the_alert() -> None:
    from genonaut_monitoring import builder as build

    ids = {
        key: pid
        for key, pid in alerts.dashboard_panel_ids(config.CONFIG).items()
        if key[1] != "Error rate"
    }
    with pytest.raises(build.BuildError) as caught:
        alerts.rule_outputs(config.CONFIG, ids)
    assert caught.value.problems == [
        "prometheus/rules/http.yml: alert ApiHighErrorRate: dashboard genonaut-main has no "
        "panel titled 'Error rate'; rename the panel back or point the alert at one of: "
        + ", ".join(sorted(t for (u, t) in ids if u == "genonaut-main"))
    ]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_definitions_keep_the_house_rules_and_the_metric_contract(profile: str) -> None:
    assert alerts.definition_problems(PROFILES[profile]) == []


def test_a_metric_outside_the_catalogue_is_reported_with_the_alert_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from genonaut_monitoring.alerts import http
    from genonaut_monitoring.alerts.model import Alert

    broken = Alert(
        "ApiBroken", "http_requests_totl > 1", "1m", "warning", "Broken.", "{{ $value }}"
    )
    original = http.alerts
    monkeypatch.setattr(http, "alerts", lambda cfg: [*original(cfg), broken])
    problems = alerts.definition_problems(config.CONFIG)
    assert (
        "alert ApiBroken (prometheus/rules/http.yml): metric 'http_requests_totl' is not in the "
        "catalogue (exporters/catalogue.py) nor produced by a recording rule"
    ) in problems
    assert "alert ApiBroken: RUNBOOK.md has no '## ApiBroken' section" in problems


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
    assert sorted(first) == [
        "alertmanager/alertmanager.yml",
        "alertmanager/templates/genonaut.tmpl",
        "grafana/provisioning/alerting/contact-points.yaml",
        "grafana/provisioning/alerting/policies.yaml",
        "grafana/provisioning/alerting/templates.yaml",
        "prometheus/rules/database.yml",
        "prometheus/rules/http.yml",
        "prometheus/rules/meta.yml",
        "prometheus/rules/pagination.yml",
        "prometheus/rules/recording.yml",
    ]
    assert all(content.endswith(b"\n") for content in first.values())


def test_recording_rules_carry_a_comment_with_their_reason() -> None:
    text = rule_files("default")["prometheus/rules/recording.yml"].decode()
    lines = text.splitlines()
    records = [i for i, line in enumerate(lines) if line.lstrip().startswith("- record:")]
    assert len(records) == len(alerts.recorded_series(config.CONFIG))
    assert all(lines[i - 1].lstrip().startswith("# ") for i in records)


def test_error_ratio_reads_zero_before_the_first_error(tmp_path: Path) -> None:
    from genonaut_monitoring.alerts import recording

    cfg = config.TEST_CONFIG
    step = seconds(cfg.intervals.evaluation_interval)
    at = seconds(cfg.intervals.rate_window) + 2 * step
    ok = cases.target(method="GET", route="/api/v1/content", status="200")
    run_promtool(
        tmp_path,
        {
            "rule_files": write_rules(tmp_path, "test"),
            "evaluation_interval": cfg.intervals.evaluation_interval,
            "tests": [
                {
                    "name": "The error ratio is 0, not absent, while no request has failed.",
                    "interval": cfg.intervals.evaluation_interval,
                    "input_series": [cases.counter("http_requests_total", ok, 5 * step, 30)],
                    "promql_expr_test": [
                        {
                            "expr": recording.http_error_ratio(cfg),
                            "eval_time": duration(at),
                            "exp_samples": [
                                {
                                    "labels": recording.http_error_ratio(cfg)
                                    + cases.labels_text({"job": cfg.jobs[0]}),
                                    "value": 0,
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    )


def test_validate_runs_promtool_and_amtool_and_names_the_broken_file(tmp_path: Path) -> None:
    from genonaut_monitoring import builder as build

    require_tool("promtool")
    require_tool("amtool")
    cfg = config.TEST_CONFIG
    build.write_tree(tmp_path, alerts.outputs(cfg))
    assert alerts.validate(tmp_path, cfg) == []
    http = tmp_path / "prometheus/rules/http.yml"
    http.write_text(http.read_text().replace("> 0.05", "> > 0.05"))
    am = tmp_path / "alertmanager/alertmanager.yml"
    am.write_text(am.read_text().replace("receiver: slack\n", "receiver: nobody\n", 1))
    problems = alerts.validate(tmp_path, cfg)
    assert len(problems) == 2
    assert problems[0].startswith(
        "prometheus/rules/http.yml (alerts ApiHighErrorRate, ApiHighLatency): promtool check "
        "rules --lint=all --lint-fatal"
    )
    assert '"ApiHighErrorRate": could not parse expression' in problems[0]
    assert problems[1].startswith("alertmanager/alertmanager.yml: amtool check-config")
    assert 'undefined receiver "nobody"' in problems[1]
