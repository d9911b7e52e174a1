"""Alerts and panels agree: one window, percentiles at bucket boundaries, no literal ``le``."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

import pytest

from genonaut_monitoring import alerts, config, dashboards
from genonaut_monitoring.alerts import consistency
from genonaut_monitoring.alerts.model import Alert, Panel
from genonaut_monitoring.exporters import catalogue, contract

CFG = config.CONFIG


def boards(cfg: config.Config = CFG) -> dict[str, dict[str, Any]]:
    return {data["uid"]: data for data in dashboards.render(cfg).values()}


def test_the_shipped_alerts_and_dashboards_agree() -> None:
    for profile in config.PROFILES.values():
        found = alerts.all_alerts(profile)
        assert consistency.alert_problems(profile, found) == []
        assert consistency.panel_problems(profile, found, boards(profile)) == []


def _windowed(rule: str, recorded: dict[str, str]) -> bool:
    """Whether a recording rule reads a rate window, itself or through another rule."""
    expr = recorded[rule]
    return "[" in expr or any(
        f"{other}{{" in expr or f"{other})" in expr
        for other in recorded
        if other != rule and _windowed(other, recorded)
    )


def test_every_windowed_alert_is_drawn_by_its_panel_from_its_own_recording_rule() -> None:
    recorded = consistency.recorded_exprs(CFG)
    drawn = boards()
    checked = []
    for alert in alerts.all_alerts(CFG):
        rules = {name for name, _ in consistency._selected(alert.expr)} & set(recorded)
        if not rules:
            continue
        assert alert.panel is not None and alert.panel.title is not None, alert.name
        uid = CFG.grafana.dashboard_uids[alert.panel.dashboard]
        (panel,) = [p for p in drawn[uid]["panels"] if p["title"] == alert.panel.title]
        exprs = " ".join(t["expr"] for t in panel["targets"])
        assert any(f"{rule}{{" in exprs for rule in rules), (alert.name, rules, exprs)
        windowed = any(_windowed(rule, recorded) for rule in rules)
        window = consistency.WINDOW_MARK + ("the last 5m" if windowed else "the last scrape")
        assert window in panel["description"], alert.name
        checked.append(alert.name)
    assert len(checked) >= 8, checked


def test_a_panel_drawing_another_window_than_its_alert_is_refused() -> None:
    drawn = boards()
    main = drawn[CFG.grafana.dashboard_uids["main"]]
    (error_rate,) = [p for p in main["panels"] if p["title"] == "Error rate"]
    error_rate["targets"] = [
        {"expr": 'sum(rate(http_requests_total{job="$job"}[$__rate_interval]))', "refId": "A"}
    ]
    problems = consistency.panel_problems(CFG, alerts.all_alerts(CFG), drawn)
    assert problems == [
        "alert ApiHighErrorRate: its panel 'Error rate' on dashboard 'genonaut-main' draws "
        "http_requests_total, not what the alert reads (job:http_requests_5xx:ratio_rate5m); "
        "draw the alert's recording rule so the line and the alert show the same window"
    ]


def test_an_alert_reading_a_window_of_its_own_is_refused() -> None:
    own = Alert(
        "OwnWindow",
        'sum(rate(http_requests_total{status=~"5.."}[5m])) > 1',
        "1m",
        "warning",
        "Too many errors.",
        "{{ $value }} errors.",
        panel=Panel("main", "Error rate"),
    )
    (problem,) = consistency.alert_problems(CFG, [own])
    assert problem.startswith("alert OwnWindow: reads http_requests_total over a window")


def test_a_panel_without_its_window_in_the_description_is_refused() -> None:
    drawn = boards()
    database = drawn[CFG.grafana.dashboard_uids["database"]]
    (rate,) = [p for p in database["panels"] if p["title"] == "Query rate by operation and table"]
    rate["description"] = "Statements per second."
    assert consistency.panel_problems(CFG, alerts.all_alerts(CFG), drawn) == [
        "dashboard 'genonaut-database', panel 'Query rate by operation and table': the "
        "description does not say which window it shows; end it with one of the window "
        "sentences in dashboards/common.py"
    ]


@pytest.mark.parametrize(
    ("field", "value", "metric"),
    [
        ("latency_p95_seconds", 1.2, "http_request_duration_seconds"),
        ("pagination_query_p95_seconds", 0.4, "pagination_query_duration_seconds"),
        ("deep_offset_p95_seconds", 3.0, "pagination_request_duration_seconds"),
        ("db_query_p95_seconds", 0.3, "database_query_duration_seconds"),
    ],
)
def test_a_threshold_that_is_no_bucket_boundary_fails_naming_threshold_and_metric(
    field: str, value: float, metric: str
) -> None:
    cfg = replace(CFG, thresholds=replace(CFG.thresholds, **{field: value}))  # type: ignore[arg-type]
    found = alerts.all_alerts(cfg)
    problems = consistency.alert_problems(cfg, found) + consistency.panel_problems(
        cfg, found, boards(cfg)
    )
    expected = f"threshold {value:g} is compared with a quantile of {metric}, but it is not"
    assert problems and all(expected in p for p in problems), problems
    assert any(p.startswith("alert ") for p in problems)
    assert any(p.startswith("dashboard ") for p in problems)


def test_every_threshold_compared_with_a_quantile_is_a_boundary() -> None:
    recorded = consistency.recorded_exprs(CFG)
    compared = [
        (spec.name, threshold)
        for alert in alerts.all_alerts(CFG)
        for spec, threshold in contract.quantile_comparisons(alert.expr, recorded)
    ]
    t = CFG.thresholds
    assert sorted(compared) == sorted(
        [
            ("database_query_duration_seconds", t.db_query_p95_seconds),
            ("http_request_duration_seconds", t.latency_p95_seconds),
            ("pagination_query_duration_seconds", t.pagination_query_p95_seconds),
            ("pagination_request_duration_seconds", t.deep_offset_p95_seconds),
        ]
    )
    for name, threshold in compared:
        (spec,) = [s for s in catalogue.CATALOGUE if s.name == name]
        assert threshold in (spec.buckets or ())


def test_duration_buckets_are_at_most_one_point_six_apart_between_50ms_and_5s() -> None:
    assert contract.bucket_problems() == []
    checked = 0
    for spec in catalogue.CATALOGUE:
        if spec.kind == "histogram" and spec.name.endswith("_seconds"):
            edges = [e for e in spec.buckets or () if 0.05 <= e <= 5]
            assert edges[0] == 0.05 and edges[-1] == 5, spec.name
            assert max(b / a for a, b in itertools.pairwise(edges)) <= 1.6, spec.name
            checked += 1
    assert checked == 4
    coarse = replace(catalogue.HTTP_REQUEST_DURATION, buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
    problems = contract.bucket_problems((coarse,))
    assert problems[0] == (
        "http_request_duration_seconds: buckets 0.05 and 0.1 are 2.00x apart; between 0.05s "
        "and 5s no two adjacent boundaries may be more than 1.6x apart (exporters/catalogue.py)"
    )


def test_a_constant_latency_of_one_and_a_half_seconds_reads_within_ten_percent() -> None:
    """histogram_quantile()'s arithmetic on the catalogue's buckets (the e2e test runs it live)."""
    edges = catalogue.HTTP_REQUEST_DURATION.buckets or ()
    for latency in (1.5, 1.5015, 1.55):
        upper = next(e for e in edges if e >= latency)
        lower = max(e for e in edges if e < latency)
        p95 = lower + (upper - lower) * 0.95
        assert math.isclose(p95, 1.5825) and abs(p95 - 1.5) / 1.5 <= 0.1


@pytest.mark.parametrize("label", ["le", "quantile"])
def test_no_expression_may_match_le_or_quantile_literally(label: str) -> None:
    expr = f'sum(rate(http_request_duration_seconds_bucket{{{label}="1"}}[5m]))'
    problems = [str(p) for p in catalogue.check_expression(expr)]
    assert any("Prometheus 3 normalises" in p and repr(label) in p for p in problems), problems


@pytest.mark.parametrize(
    ("matcher", "refused"),
    [
        ('le="1"', True),
        ('le="1.0"', True),
        ('le=~"1\\\\.0"', True),
        ('le="0.25"', False),  # one spelling only: Prometheus 3 keeps it as it is
        ('le=~"1\\\\.0|1"', False),  # every spelling of 1
        ('le="+Inf"', False),
    ],
)
def test_an_le_matcher_must_select_every_spelling_of_its_bound(matcher: str, refused: bool) -> None:
    expr = f"sum(rate(http_request_duration_seconds_bucket{{{matcher}}}[5m]))"
    problems = [str(p) for p in catalogue.check_expression(expr)]
    assert any("Prometheus 3 normalises" in p for p in problems) is refused, problems
