"""scripts/performance_test.py run as a subprocess against the real demo API, tiny bounds."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from genonaut_monitoring.stack import Stack
from tests.conftest import ROOT, free_port

SEED_ROWS = 3_000


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("perf")
    env = {"DEMO_SEED_ROWS": str(SEED_ROWS), "DEMO_FAULTS": "1"}
    with Stack(workdir, components={"api"}, api_env=env) as stack:
        yield stack.api_url


def perf(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.performance_test", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def run_with_outputs(tmp_path: Path, *args: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Run the script with --json and --csv; return both outputs."""
    json_path, csv_path = tmp_path / "perf.json", tmp_path / "perf.csv"
    result = perf(*args, "--quiet", "--json", str(json_path), "--csv", str(csv_path))
    assert result.returncode == 0, result.stderr
    assert f"wrote {json_path}" in result.stdout
    assert f"wrote {csv_path}" in result.stdout
    with csv_path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    report: dict[str, Any] = json.loads(json_path.read_text())
    return report, rows


def groups(report: dict[str, Any]) -> dict[tuple[str, str, str, str], tuple[int, int]]:
    return {
        (g["scenario"], g["mode"], g["offset_range"], g["page_size_class"]): (
            g["count"],
            g["errors"],
        )
        for g in report["groups"]
    }


def pagination_counts(api_url: str) -> Counter[tuple[str, str, str]]:
    """The API's own count of page queries per (mode, offset_range, page_size_class).

    One per successful paginated request: the demo runs one page query for each.
    """
    text = requests.get(f"{api_url}/metrics", timeout=10).text
    counts: Counter[tuple[str, str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "pagination_query_duration_seconds_count":
                labels = sample.labels
                key = (labels["mode"], labels["offset_range"], labels["page_size_class"])
                counts[key] += int(sample.value)
    return counts


def test_offset_and_page_size_sweeps_report_each_bucket_with_its_count(
    api_url: str, tmp_path: Path
) -> None:
    before = pagination_counts(api_url)
    report, rows = run_with_outputs(
        tmp_path,
        "--url", api_url,
        "--scenario", "offset,size",
        "--offsets", "0,100,1000,2500",
        "--page-size", "20",
        "--page-sizes", "5,25,100",
        "--requests", "3",
        "--concurrency", "3",
    )  # fmt: skip
    assert groups(report) == {
        ("offset", "offset", "0", "11-25"): (3, 0),
        ("offset", "offset", "1-100", "11-25"): (3, 0),
        ("offset", "offset", "101-1000", "11-25"): (3, 0),
        ("offset", "offset", "1001-10000", "11-25"): (3, 0),
        ("size", "offset", "0", "1-10"): (3, 0),
        ("size", "offset", "0", "11-25"): (3, 0),
        ("size", "offset", "0", "51-100"): (3, 0),
    }
    run = report["run"]
    assert (run["planned"], run["sent"], run["errors"], run["stopped_early"]) == (21, 21, 0, False)
    assert sum(g["count"] for g in report["groups"]) == run["sent"]
    assert [(m["mode"], m["count"], m["errors"]) for m in report["modes"]] == [("offset", 21, 0)]
    for g in report["groups"]:
        assert 0 < g["p50_ms"] <= g["p95_ms"] <= g["p99_ms"] <= g["max_ms"]

    # The CSV holds the same groups, as text.
    assert [
        (r["scenario"], r["mode"], r["offset_range"], r["page_size_class"], r["count"], r["errors"])
        for r in rows
    ] == [
        (g["scenario"], g["mode"], g["offset_range"], g["page_size_class"], str(g["count"]), "0")
        for g in report["groups"]
    ]
    assert list(rows[0]) == [
        "scenario", "mode", "offset_range", "page_size_class", "count", "errors",
        "p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms",
    ]  # fmt: skip

    # The API's own metrics put the same requests in the same buckets.
    after = pagination_counts(api_url)
    assert after - before == Counter(
        {
            ("offset", "0", "11-25"): 6,
            ("offset", "1-100", "11-25"): 3,
            ("offset", "101-1000", "11-25"): 3,
            ("offset", "1001-10000", "11-25"): 3,
            ("offset", "0", "1-10"): 3,
            ("offset", "0", "51-100"): 3,
        }
    )


def test_cursor_walks_are_compared_with_the_same_pages_by_offset(
    api_url: str, tmp_path: Path
) -> None:
    before = pagination_counts(api_url)
    report, rows = run_with_outputs(
        tmp_path,
        "--url", api_url,
        "--scenario", "cursor",
        "--walk-pages", "3",
        "--walk-page-size", "10",
        "--requests", "2",
        "--concurrency", "2",
    )  # fmt: skip
    # Pages 1-3 of 10 items are offsets 0, 10 and 20.
    assert groups(report) == {
        ("cursor", "offset", "0", "1-10"): (2, 0),
        ("cursor", "offset", "1-100", "1-10"): (4, 0),
        ("cursor", "cursor", "none", "1-10"): (6, 0),
    }
    assert [(m["mode"], m["count"]) for m in report["modes"]] == [("offset", 6), ("cursor", 6)]
    assert (report["run"]["planned"], report["run"]["sent"]) == (12, 12)
    assert len(rows) == 3
    assert pagination_counts(api_url) - before == Counter(
        {
            ("offset", "0", "1-10"): 2,
            ("offset", "1-100", "1-10"): 4,
            ("cursor", "none", "1-10"): 6,
        }
    )


def test_failed_requests_are_counted_as_errors(api_url: str, tmp_path: Path) -> None:
    faults = {"error_rate": 1.0, "route_prefix": "/api/v1/content"}
    assert requests.put(f"{api_url}/debug/faults", json=faults, timeout=10).status_code == 200
    try:
        report, _ = run_with_outputs(
            tmp_path, "--url", api_url, "--scenario", "offset", "--offsets", "0,500",
            "--requests", "4",
        )  # fmt: skip
    finally:
        requests.delete(f"{api_url}/debug/faults", timeout=10)
    assert groups(report) == {
        ("offset", "offset", "0", "26-50"): (4, 4),
        ("offset", "offset", "101-1000", "26-50"): (4, 4),
    }
    assert report["error_kinds"] == {"HTTP 500": 8}
    assert (report["run"]["sent"], report["run"]["errors"]) == (8, 8)


def test_duration_bounds_the_run(api_url: str, tmp_path: Path) -> None:
    # Each request takes at least 0.3 s, so one second leaves room for four at most.
    faults = {"latency_seconds": 0.3, "route_prefix": "/api/v1/content"}
    assert requests.put(f"{api_url}/debug/faults", json=faults, timeout=10).status_code == 200
    try:
        report, _ = run_with_outputs(
            tmp_path, "--url", api_url, "--scenario", "offset", "--offsets", "0",
            "--requests", "50", "--concurrency", "1", "--duration", "1",
        )  # fmt: skip
    finally:
        requests.delete(f"{api_url}/debug/faults", timeout=10)
    run = report["run"]
    assert run["planned"] == 50
    assert run["stopped_early"] is True
    assert 1 <= run["sent"] <= 4
    assert sum(g["count"] for g in report["groups"]) == run["sent"]
    assert run["elapsed_seconds"] < 1 + 0.3 + 2.0


def test_the_table_on_stdout_lists_every_group(api_url: str) -> None:
    result = perf(
        "--url", api_url, "--scenario", "size", "--page-sizes", "10,300", "--requests", "2",
        "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"4 of 4 planned requests to {api_url} in ")
    assert lines[0].endswith(", 0 errors")
    rows = [line.split() for line in lines if line.startswith("size ")]
    assert [row[:6] for row in rows] == [
        ["size", "offset", "0", "1-10", "2", "0"],
        ["size", "offset", "0", "251+", "2", "0"],
    ]
    assert result.stderr == ""


def test_progress_goes_to_stderr(api_url: str) -> None:
    result = perf("--url", api_url, "--scenario", "size", "--page-sizes", "10", "--requests", "2")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1].startswith("2/2 requests, 0 errors (")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "http://10.1.2.3:8000"], "is not loopback"),
        (["--url", "http://example.com"], "pass --allow-remote"),
        (["--url", "ftp://127.0.0.1/"], "is not an http(s) URL"),
        (["--concurrency", "33"], "above the cap of 32"),
        (["--duration", "601"], "at most 600"),
        (["--requests", "0"], "--requests must be at least 1"),
        (["--page-sizes", "10,501"], "between 1 and 500"),
        (["--requests", "5000"], "would send 150000 requests, above the cap of 20000"),
        (["--scenario", "offset,deep"], "unknown scenario deep"),
        (["--offsets", "0,ten"], "is not a comma-separated list of integers"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(args: list[str], message: str) -> None:
    result = perf(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_an_unreachable_api_is_reported_with_the_fix() -> None:
    result = perf("--url", f"http://127.0.0.1:{free_port()}", "--quiet")
    assert result.returncode == 1
    assert "cannot reach" in result.stderr
    assert "start the API first" in result.stderr


def test_help_names_the_options() -> None:
    result = perf("--help")
    assert result.returncode == 0
    for option in ("--allow-remote", "--concurrency", "--duration", "--requests", "--csv",
                   "--json", "--scenario"):  # fmt: skip
        assert option in result.stdout
