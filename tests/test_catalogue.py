"""The metric catalogue: names, bounded label helpers and the PromQL contract check."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from genonaut_monitoring.exporters import catalogue
from genonaut_monitoring.exporters.catalogue import check_expression


def test_every_name_follows_prometheus_conventions() -> None:
    for spec in catalogue.CATALOGUE:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", spec.name), spec.name
        assert spec.name.endswith("_total") == (spec.kind == "counter"), spec.name
        assert not re.search(r"_(milliseconds|ms|kilobytes|percent)$", spec.name), spec.name
        assert spec.help.endswith("."), spec.name
        if spec.kind == "histogram":
            assert spec.buckets == tuple(sorted(spec.buckets or ())), spec.name


def test_names_are_unique_across_series() -> None:
    names = [name for spec in catalogue.CATALOGUE for name in spec.series]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("offset", "label"),
    [(0, "0"), (1, "1-100"), (100, "1-100"), (101, "101-1000"), (10_000, "1001-10000"),
     (10_001, "10001-100000"), (100_001, "100001+"), (-5, "0")],
)  # fmt: skip
def test_offset_range_folds_offsets_into_bounded_labels(offset: int, label: str) -> None:
    assert catalogue.offset_range(offset) == label


@pytest.mark.parametrize(
    ("size", "label"),
    [(1, "1-10"), (10, "1-10"), (11, "11-25"), (50, "26-50"), (100, "51-100"), (500, "251+")],
)
def test_page_size_class_folds_sizes_into_bounded_labels(size: int, label: str) -> None:
    assert catalogue.page_size_class(size) == label


def test_offset_ranges_from_lists_only_ranges_entirely_at_or_beyond_the_minimum() -> None:
    assert catalogue.offset_ranges_from(10_000) == ["10001-100000", "100001+"]
    assert catalogue.offset_ranges_from(0) == [label for _, label in catalogue.OFFSET_RANGES]


def test_metrics_registers_every_catalogue_entry_under_its_exposition_name() -> None:
    registry = CollectorRegistry()
    metrics = catalogue.Metrics(registry)
    metrics[catalogue.HTTP_REQUESTS].labels("GET", "/x", "200").inc(3)
    metrics[catalogue.DB_QUERY_DURATION].labels("SELECT", "items").observe(0.002)
    assert (
        registry.get_sample_value(
            "http_requests_total", {"method": "GET", "route": "/x", "status": "200"}
        )
        == 3
    )
    assert (
        registry.get_sample_value(
            "database_query_duration_seconds_bucket",
            {"operation": "SELECT", "table": "items", "le": "0.0025"},
        )
        == 1
    )
    text = generate_latest(registry).decode()
    for spec in catalogue.CATALOGUE:
        assert f"# TYPE {spec.name} {spec.kind}" in text


SOUND = [
    "histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket"
    '{job="genonaut-api"}[5m])))',
    'sum by (route) (rate(http_requests_total{status=~"5.."}[5m]))'
    " / on (route) sum by (route) (rate(http_requests_total[5m]))",
    "up == 0",
    "process_resident_memory_bytes",
    "topk(5, sum by (offset_range) (increase(pagination_request_duration_seconds_count[1h])))",
    'label_replace(up, "port", "$1", "instance", ".*:(.*)")',
]


@pytest.mark.parametrize("expr", SOUND)
def test_sound_expressions_pass(expr: str) -> None:
    assert check_expression(expr) == []


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("sum(rate(x_total[5m])", "does not parse"),
        ("rate(nope_total[5m])", "metric 'nope_total' is not in the catalogue"),
        ('rate(http_requests_total{foo="1"}[5m])', "has no label 'foo'"),
        ("sum by (bar) (rate(http_requests_total[5m]))", "groups by 'bar'"),
        ("http_requests_total", "used outside rate()/increase()"),
        ("sum(http_request_duration_seconds_count)", "used outside rate()/increase()"),
        (
            "histogram_quantile(0.9, sum by (route) "
            "(rate(http_request_duration_seconds_bucket[5m])))",
            "must keep 'le'",
        ),
        ("histogram_quantile(0.9, rate(http_requests_total[5m]))", "needs a *_bucket series"),
        ("rate(http_requests_total[5m]) / on (zz) up", "on(zz)"),
    ],
)
def test_contract_violations_are_named(expr: str, message: str) -> None:
    problems = [str(p) for p in check_expression(expr)]
    assert any(message in p for p in problems), problems


def test_recording_rules_extend_the_contract() -> None:
    extra = {"route:http_requests:rate": frozenset({"route"})}
    assert check_expression("sum by (route) (route:http_requests:rate)", extra) == []
    problems = check_expression('route:http_requests:rate{status="500"}', extra)
    assert [str(p) for p in problems] == [
        "metric 'route:http_requests:rate' has no label 'status' (it has: instance, job, route)"
    ]
