"""The benchmarks run end to end with tiny counts and write complete JSON (no timing checks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Sorted, as in the JSON (sort_keys).
VARIANTS = ["bare", "instrumentator", "ours", "starlette-exporter"]
INSTRUMENTED = ["instrumentator", "ours", "starlette-exporter"]
STATS = {"median", "p25", "p75", "min", "max"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_overhead_quick_run_writes_every_variant(tmp_path: Path):
    output = tmp_path / "overhead.json"
    done = _run(
        "-m", "benchmarks.overhead", "--quick", "--rounds", "2", "--requests", "20",
        "--loopback-rounds", "1", "--loopback-requests", "5", "--scrape-requests", "300",
        "--scrapes", "2", "--output", str(output),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads(output.read_text())
    assert output.read_text().endswith("}\n")

    in_process = results["in_process"]
    assert sorted(in_process["by_routes"]) == ["5", "50"]
    # The access-logged variant runs at the full route count only.
    assert list(in_process["by_routes"]["50"]) == sorted([*VARIANTS, "ours+log"])
    assert list(in_process["by_routes"]["5"]) == VARIANTS
    assert set(in_process["by_routes"]["50"]["ours+log"]["overhead_us"]) == STATS
    for variants in in_process["by_routes"].values():
        assert set(variants["bare"]) == {"us_per_request"}
        for variant in INSTRUMENTED:
            stats = variants[variant]["overhead_us"]
            assert set(stats) == STATS
            assert stats["min"] <= stats["p25"] <= stats["median"] <= stats["p75"] <= stats["max"]
    assert sorted(in_process["overhead_growth_us_from_few_to_many_routes"]) == INSTRUMENTED
    assert list(results["loopback"]["variants"]) == VARIANTS
    assert results["loopback"]["requests_per_round"] == 5

    scrape = results["scrape"]
    assert list(scrape) == INSTRUMENTED
    for entry in scrape.values():
        assert entry["requests"] == 300
        assert entry["scrapes"] == 2
        assert set(entry["get_metrics_ms"]) == STATS
        assert entry["series"] > 0
    # Ours hides prometheus_client's *_created samples; the peers expose them.
    assert scrape["ours"]["created_series"] == 0
    assert scrape["instrumentator"]["created_series"] > 0
    # All 50 routes and 5 status codes were served, so each appears in the exposition.
    assert scrape["starlette-exporter"]["series"] > 50 * 5

    assert set(results["targets"]) == {
        "overhead_share_of_instrumentator",
        "overhead_share_target",
        "overhead_target_met",
        "scrape_ms_ours",
        "scrape_ms_instrumentator",
        "scrape_target_met",
    }
    assert "Target: our overhead <= 1/3 of instrumentator's" in done.stdout
    assert f"wrote {output}" in done.stdout


def test_overhead_help_and_bad_arguments():
    assert "--quick" in _run("-m", "benchmarks.overhead", "--help").stdout
    bad = _run("-m", "benchmarks.overhead", "--rounds", "0")
    assert bad.returncode == 2
    assert "--rounds must be at least 1, got 0" in bad.stderr


@pytest.mark.slow
def test_pagination_benchmark_compares_offset_and_cursor(tmp_path: Path):
    output = tmp_path / "pagination.json"
    done = _run(
        "-m", "benchmarks.pagination", "--rows", "3000", "--depths", "0,2500",
        "--repeats", "3", "--output", str(output),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads(output.read_text())
    assert (results["backend"], results["rows"], results["page_size"]) == ("sqlite", 3000, 50)
    assert sorted(results["median_ms_by_depth"]) == ["0", "2500"]
    for entry in results["median_ms_by_depth"].values():
        assert set(entry) == {"offset", "cursor", "offset_query", "cursor_query"}
        assert all(ms > 0 for ms in entry.values()), entry
    assert "sqlite: seeded 3000 rows" in done.stdout
