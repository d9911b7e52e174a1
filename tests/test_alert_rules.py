"""promtool unit tests for every alert and recording rule, generated from the definitions.

Each alert is tested with the cases in its own definition (alerts/cases.py),
once per profile and per rule source (the rule files, and the groups inside the
Kubernetes target's PrometheusRules): it fires once ``for`` has passed (and
not before), with exact labels and annotations, and it stays silent in each
quiet scenario.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from genonaut_monitoring import alerts, config
from genonaut_monitoring.alerts import cases, unittests
from genonaut_monitoring.alerts.model import duration, seconds
from genonaut_monitoring.alerts.recording import QUANTILE
from tests.promtool import PROFILES, SOURCES, run_promtool, source_labels, write_rules

ALERT_NAMES = [a.name for a in alerts.all_alerts(config.CONFIG)]


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("alert", ALERT_NAMES)
def test_alert_fires_above_threshold_after_for_and_stays_silent_below(
    alert: str, profile: str, source: str, tmp_path: Path
) -> None:
    cfg = PROFILES[profile]
    document = unittests.promtool_file(
        cfg,
        alerts.by_name(cfg)[alert],
        alerts.dashboard_panel_ids(cfg),
        write_rules(tmp_path, profile, source),
        source_labels(cfg, source),
    )
    run_promtool(tmp_path, document)


def test_every_alert_is_tested_firing_and_silent() -> None:
    """The generated tests check each alert firing, not before its ``for``, and silent."""
    cfg = config.CONFIG
    ids = alerts.dashboard_panel_ids(cfg)
    for alert in alerts.all_alerts(cfg):
        tests = unittests.promtool_tests(cfg, alert, ids)
        firing = [c for c in tests[0]["alert_rule_test"] if c["exp_alerts"]]
        assert len(firing) == 1 and firing[0]["alertname"] == alert.name, alert.name
        silent = [c for t in tests[1:] for c in t["alert_rule_test"]]
        if alert.cases is not None and alert.cases.fires.series:
            assert silent and not any(c["exp_alerts"] for c in silent), alert.name
        assert all(t["name"].startswith(alert.name) and t["name"].endswith(".") for t in tests)


def _restarts(alert: alerts.Alert) -> list[tuple[cases.Scenario, cases.Restarted]]:
    """The quiet scenarios of ``alert`` in which a counter restarts, with that counter."""
    quiet = unittests.cases_of(alert).quiet
    return [(q, s) for q in quiet for s in q.series if isinstance(s, cases.Restarted)]


RESTARTING = [a.name for a in alerts.all_alerts(config.CONFIG) if _restarts(a)]


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("alert", RESTARTING)
def test_a_restart_case_puts_the_reset_in_the_window_of_both_quiet_evaluations(
    alert: str, profile: str, tmp_path: Path
) -> None:
    """A rule firing on any change of the counter fires at both times the quiet case checks:
    the case can tell a rule that takes a reset for counting from one that does not."""
    cfg = PROFILES[profile]
    definition = alerts.by_name(cfg)[alert]
    step, hold = seconds(cfg.intervals.evaluation_interval), seconds(definition.for_)
    at = unittests.fire_time(cfg, definition)
    rules, tests = [], []
    for n, (scenario, restarted) in enumerate(_restarts(definition)):
        name = f"{alert}Changes{n}"
        window = cfg.intervals.rate_window
        rules.append({"alert": name, "expr": f"changes({restarted.name}[{window}]) > 0"})
        tests.append(
            {
                "name": f"{alert} {scenario.what}: changes() sees the reset.",
                "interval": cfg.intervals.evaluation_interval,
                "input_series": unittests._input(cfg, definition, scenario),
                "alert_rule_test": [
                    {
                        "eval_time": duration(t),
                        "alertname": name,
                        "exp_alerts": [{"exp_labels": dict(restarted.labels)}],
                    }
                    # The times promtool_tests() checks a quiet scenario at.
                    for t in (at, at + hold + step)
                ],
            }
        )
    (tmp_path / "changes.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "changes", "rules": rules}]})
    )
    run_promtool(
        tmp_path,
        {
            "rule_files": ["changes.yml"],
            "evaluation_interval": cfg.intervals.evaluation_interval,
            "tests": tests,
        },
    )


def _bucket_samples(
    spec: Any, labels: dict[str, str], bucket: tuple[float, float], per_second: float
) -> list[dict[str, Any]]:
    """Expected bucket rates: ``per_second`` observations a second, all inside ``bucket``."""
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
    # The firing series of these alerts' cases are known traffic for every recording rule.
    fires = {
        name: alerts.by_name(cfg)[name].cases.fires  # type: ignore[union-attr]
        for name in (
            "ApiHighErrorRate",
            "ApiHighLatency",
            "PaginationSlowQueries",
            "PaginationDeepOffsetSlow",
            "DatabaseSlowQueries",
            "DatabaseQueryErrors",
            "DatabasePoolNearExhaustion",
            "DatabasePoolCheckoutTimeouts",
            "MetricsWritesDropped",
            "MetricsSamplesFolded",
            *(["PostgresDeadlocks"] if cfg.postgres.targets else []),
        )
    }
    statements = cases.target(cfg, operation="select", table="content_items")
    # Statements run and fail at known rates (no alert case feeds these two).
    known = cases.Scenario(
        "statements run and fail",
        [
            cases.Counter(c.DB_QUERY_DURATION.name + "_count", statements, 4),
            cases.Counter(c.DB_QUERY_ERRORS.name, statements, 2),
        ],
    )
    series = [
        s
        for scenario in [*fires.values(), known]
        for s in unittests.input_series(cfg, scenario, at)
    ]
    errors = fires["ApiHighErrorRate"].alerts[0].value * 100
    content = "/api/v1/content"
    item = "/api/v1/content/{item_id}"
    deep = c.offset_ranges_from(t.deep_offset_min)[0]
    http_hot = cases.bucket_above(c.HTTP_REQUEST_DURATION, t.latency_p95_seconds)
    page_hot = cases.bucket_above(c.PAGINATION_QUERY_DURATION, t.pagination_query_p95_seconds)
    deep_hot = cases.bucket_above(c.PAGINATION_REQUEST_DURATION, t.deep_offset_p95_seconds)
    db_hot = cases.bucket_above(c.DB_QUERY_DURATION, t.db_query_p95_seconds)
    select = {"job": job, "operation": "select", "table": "content_items"}
    per_second = 1.0

    def p95(bucket: tuple[float, float]) -> float:
        return cases.quantile_in(bucket, QUANTILE)

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
            c.HTTP_REQUEST_DURATION, {"job": job, "route": item}, http_hot, per_second
        ),
        r.http_duration_p95(cfg): [
            {"labels": cases.labels_text({"job": job, "route": item}), "value": p95(http_hot)}
        ],
        r.pagination_query_buckets(cfg): _bucket_samples(
            c.PAGINATION_QUERY_DURATION,
            {"job": job, "route": content, "mode": "offset"},
            page_hot,
            per_second,
        ),
        r.pagination_query_p95(cfg): [
            {"labels": cases.labels_text({"job": job, "route": content, "mode": "offset"}),
             "value": p95(page_hot)}
        ],
        r.pagination_offset_buckets(cfg): _bucket_samples(
            c.PAGINATION_REQUEST_DURATION,
            {"job": job, "route": content, "offset_range": deep},
            deep_hot,
            per_second,
        ),
        r.pagination_offset_p95(cfg): [
            {"labels": cases.labels_text({"job": job, "route": content, "offset_range": deep}),
             "value": p95(deep_hot)}
        ],
        r.db_duration_buckets(cfg): _bucket_samples(
            c.DB_QUERY_DURATION, select, db_hot, per_second
        ),
        r.db_duration_p95(cfg): [{"labels": cases.labels_text(select), "value": p95(db_hot)}],
        r.db_slow_queries_rate(cfg): [
            {"labels": cases.labels_text({"job": job, "operation": "insert", "table": "tags"}),
             "value": cases.binary_above(t.slow_queries_per_second)}
        ],
        r.db_queries_rate(cfg): [{"labels": cases.labels_text(select), "value": 4.0}],
        r.db_errors_rate(cfg): [{"labels": cases.labels_text(select), "value": 2.0}],
        r.db_faults_rate(cfg): [
            {"labels": cases.labels_text({"job": job, **labels}), "value": value}
            for labels, value in (
                ({"kind": "connection", "pool": "postgresql:genonaut"},
                 fires["DatabaseQueryErrors"].alerts[0].value),
                ({"kind": "statement", "pool": "postgresql:genonaut"}, 0.0),
            )
        ],
        r.checkout_timeouts_increase(cfg): [
            {"labels": cases.labels_text(cases.target(cfg, pool="default")),
             "value": fires["DatabasePoolCheckoutTimeouts"].alerts[0].value}
        ],
        r.writes_dropped_increase(cfg): [
            {"labels": cases.labels_text(cases.target(cfg, reason=reason)),
             "value": dropped.value if reason == dropped.labels["reason"] else 0.0}
            for dropped in fires["MetricsWritesDropped"].alerts
            for reason in c.WRITE_DROP_REASONS
        ],
        r.folded_samples_increase(cfg): [
            {"labels": cases.labels_text({"job": job, "metric": metric}),
             "value": folded.value if metric == folded.labels["metric"] else 0.0}
            for folded in fires["MetricsSamplesFolded"].alerts
            for metric in (c.HTTP_REQUESTS.name, c.HTTP_REQUEST_DURATION.name)
        ],
        r.pg_deadlocks_increase(cfg): [
            {"labels": cases.labels_text(deadlock.labels), "value": deadlock.value}
            for deadlock in fires["PostgresDeadlocks"].alerts
        ] + [
            # The other database of the case has none.
            {"labels": cases.labels_text({**fires["PostgresDeadlocks"].alerts[0].labels,
                                          "datname": "template1"}), "value": 0.0}
        ] if cfg.postgres.targets else [],
        r.pool_saturation(cfg): [
            {"labels": cases.labels_text(cases.target(cfg, pool="default")), "value": 1.0}
        ],
    }  # fmt: skip
    # The SLO rules' own values are checked in tests/test_slo.py.
    shared = {rule.name for rule in r.rules(cfg)}
    assert sorted(expected) == sorted(shared), "a recording rule is untested"
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


def test_error_ratio_reads_zero_before_the_first_error(tmp_path: Path) -> None:
    from genonaut_monitoring.alerts import recording

    cfg = config.TEST_CONFIG
    step = seconds(cfg.intervals.evaluation_interval)
    at = seconds(cfg.intervals.rate_window) + 2 * step
    ok = cases.Counter(
        "http_requests_total",
        cases.target(cfg, method="GET", route="/api/v1/content", status="200"),
        5,
    )
    quiet = cases.Scenario("every request succeeds", [ok])
    run_promtool(
        tmp_path,
        {
            "rule_files": write_rules(tmp_path, "test"),
            "evaluation_interval": cfg.intervals.evaluation_interval,
            "tests": [
                {
                    "name": "The error ratio is 0, not absent, while no request has failed.",
                    "interval": cfg.intervals.evaluation_interval,
                    "input_series": unittests.input_series(cfg, quiet, at),
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
