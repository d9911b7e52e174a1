"""The benchmarks run end to end with tiny counts and write complete JSON (no timing checks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.apps import KINDS, VARIANTS
from tests.conftest import ROOT

INSTRUMENTED = [v for v in VARIANTS if v != "bare"]
LIBRARIES = ["ours", "instrumentator", "starlette-exporter"]
STATS = {"median", "p25", "p75", "min", "max"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def _ordered(stats: dict[str, float]) -> bool:
    return stats["min"] <= stats["p25"] <= stats["median"] <= stats["p75"] <= stats["max"]


@pytest.mark.slow
def test_overhead_quick_run_writes_every_kind_variant_clock_and_ratio(tmp_path: Path):
    output = tmp_path / "overhead.json"
    done = _run(
        "-m", "benchmarks.overhead", "--quick", "--rounds", "2", "--requests", "20",
        "--loopback-rounds", "1", "--loopback-requests", "5", "--scrape-requests", "300",
        "--scrapes", "2", "--output", str(output), "--check",
    )  # fmt: skip
    assert done.returncode in (0, 1), done.stderr
    results = json.loads(output.read_text())
    assert output.read_text().endswith("}\n")

    for phase in ("in_process", "loopback"):
        kinds = results[phase]["kinds"]
        assert sorted(kinds) == sorted(KINDS)
        for variants in kinds.values():
            assert sorted(variants) == sorted(VARIANTS)
            assert set(variants["bare"]) == {"cpu_us", "wall_us"}
            for variant in INSTRUMENTED:
                entry = variants[variant]
                assert set(entry) == {"cpu_us", "wall_us", "overhead_cpu_us", "overhead_wall_us"}
                assert all(set(stats) == STATS and _ordered(stats) for stats in entry.values())
        for clock in ("cpu", "wall"):
            ratios = results["ratios"][phase][clock]
            assert sorted(ratios) == sorted(KINDS)
            for kind, shares in ratios.items():
                assert sorted(shares) == sorted(["ours", "ours+log", "starlette-exporter"])
                theirs = kinds[kind]["instrumentator"][f"overhead_{clock}_us"]["median"]
                for variant, share in shares.items():
                    mine = kinds[kind][variant][f"overhead_{clock}_us"]["median"]
                    # No share of an overhead the quick run measured at or below zero.
                    if theirs > 0:
                        assert share == pytest.approx(mine / theirs, abs=1e-3), (kind, variant)
                    else:
                        assert share is None, (kind, variant, theirs)
    assert results["loopback"]["requests_per_round"] == 5

    scrape = results["scrape"]
    assert sorted(scrape) == sorted(LIBRARIES)
    for entry in scrape.values():
        assert entry["requests"] == 300 + 100 * len(KINDS)
        assert entry["scrapes"] == 2
        assert set(entry["get_metrics_ms"]) == STATS
        assert entry["series"] > 0
    # Ours hides prometheus_client's *_created samples; the peers expose them.
    assert scrape["ours"]["created_series"] == 0
    assert scrape["instrumentator"]["created_series"] > 0
    # All 50 routes and 5 status codes were served, so each appears in the exposition.
    assert scrape["starlette-exporter"]["series"] > 50 * 5

    goal = results["targets"]
    assert sorted(goal["overhead"]) == sorted(KINDS)
    for kind, by_variant in goal["overhead"].items():
        assert sorted(by_variant) == ["ours", "ours+log"]
        for variant, verdict in by_variant.items():
            share = results["ratios"]["in_process"]["cpu"][kind][variant]
            assert verdict["share"] == share
            assert verdict["met"] == (share is not None and share <= verdict["target"])
    assert goal["overhead"]["item"]["ours"]["target"] == round(1 / 3, 3)
    assert goal["overhead"]["item"]["ours+log"]["target"] == 0.6
    assert goal["overhead_met"] == all(
        v["met"] for by_variant in goal["overhead"].values() for v in by_variant.values()
    )
    for variant in ("ours", "instrumentator"):
        per_sample = goal[f"scrape_us_per_sample_{variant}"]
        found = scrape[variant]["get_metrics_ms"]["median"] * 1e3 / scrape[variant]["series"]
        assert per_sample == pytest.approx(found, abs=0.01)
    assert goal["scrape_met"] == (
        goal["scrape_us_per_sample_ours"] <= goal["scrape_us_per_sample_instrumentator"]
    )
    assert goal["met"] == (goal["overhead_met"] and goal["scrape_met"])
    # --check: the exit status is the verdict.
    assert done.returncode == (0 if goal["met"] else 1), done.stderr
    assert ("a target was missed (--check)" in done.stderr) == (not goal["met"])
    assert "Target: ours overhead <= 0.33 of instrumentator's on every kind" in done.stdout
    assert "Target: ours+log overhead <= 0.60 of instrumentator's on every kind" in done.stdout
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
