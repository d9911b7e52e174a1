"""scripts/analyze_logs.py on the real demo API's JSON log, after known requests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
import requests

from genonaut_monitoring.stack import Stack
from tests.conftest import ROOT

CONTENT = "/api/v1/content"
ITEM = "/api/v1/content/{item_id}"
CURSOR = "/api/v1/content/cursor"
# Requests whose path starts with this get an injected 500 (items 40-49 only).
FAULTY_PREFIX = "/api/v1/content/4"


@pytest.fixture(scope="module")
def api_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The API's log after a known sequence of requests; the API is stopped, the log complete."""
    workdir = tmp_path_factory.mktemp("analyze")
    env = {
        "LOG_FORMAT": "json",
        "SLOW_QUERY_SECONDS": "0",  # every statement is logged as a slow query
        "DEMO_SEED_ROWS": "500",
        "DEMO_FAULTS": "1",
    }
    with Stack(workdir, components={"api"}, api_env=env) as stack, requests.Session() as http:
        base = stack.api_url

        def get(path: str, **params: Any) -> requests.Response:
            return http.get(base + path, params=params, timeout=10)

        for _ in range(3):
            assert get(CONTENT, page=1, page_size=10).status_code == 200
        for _ in range(2):
            assert get(CONTENT, skip=150, limit=30).status_code == 200
        first = get(CURSOR, limit=5)
        assert get(CURSOR, limit=5, cursor=first.json()["pagination"]["next_cursor"]).ok
        assert get(f"{CONTENT}/7").status_code == 200
        assert get(f"{CONTENT}/7").status_code == 200  # from the item cache: no query
        assert get(f"{CONTENT}/999999").status_code == 404
        assert get(CONTENT, page_size=1000).status_code == 422
        assert get("/no/such/route").status_code == 404
        faults = {"error_rate": 1.0, "route_prefix": FAULTY_PREFIX}
        assert http.put(f"{base}/debug/faults", json=faults, timeout=10).status_code == 200
        assert get(f"{CONTENT}/42").status_code == 500
        assert get(f"{CONTENT}/43").status_code == 500
        assert http.delete(f"{base}/debug/faults", timeout=10).status_code == 200
    log = workdir / "logs" / "api.log"
    assert log.is_file()
    return log


def analyze(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.analyze_logs", "--quiet", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def report_of(*args: str, stdin: str | None = None) -> dict[str, Any]:
    result = analyze("--json", "--top", "0", *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def records(log: Path) -> list[dict[str, Any]]:
    """The log's JSON objects, read independently of the script."""
    found = []
    for line in log.read_text().splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def test_requests_per_route_and_their_errors(api_log: Path) -> None:
    report = report_of(str(api_log))
    routes = {(r["method"], r["route"]): r for r in report["routes"]}
    health = routes.pop(("GET", "/health"))
    assert health["count"] >= 1  # the runner polls it until the API answers
    assert {key: (r["count"], r["errors"]) for key, r in routes.items()} == {
        ("GET", CONTENT): (6, 0),
        ("GET", CURSOR): (2, 0),
        ("GET", ITEM): (5, 2),
        ("GET", "unmatched"): (1, 0),
        ("PUT", "/debug/faults"): (1, 0),
        ("DELETE", "/debug/faults"): (1, 0),
    }
    assert report["errors"] == [
        {"route": ITEM, "status": 500, "count": 2},
        {"route": CONTENT, "status": 422, "count": 1},
        {"route": ITEM, "status": 404, "count": 1},
        {"route": "unmatched", "status": 404, "count": 1},
    ]
    lines = report["lines"]
    assert lines["requests"] == 16 + health["count"]
    # The slowest route is listed first, and each row's numbers are consistent.
    assert [r["p95_ms"] for r in report["routes"]] == sorted(
        (r["p95_ms"] for r in report["routes"]), reverse=True
    )
    for row in report["routes"]:
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["max_ms"]


def test_latencies_match_the_logged_durations(api_log: Path) -> None:
    report = report_of(str(api_log))
    durations: dict[str, list[float]] = defaultdict(list)
    for record in records(api_log):
        if record.get("event") == "request" and record["method"] == "GET":
            durations[record["route"]].append(record["duration_ms"])
    by_route = {r["route"]: r for r in report["routes"] if r["method"] == "GET"}
    for route, values in durations.items():
        ordered = sorted(values)
        # Nearest rank: p50 of n values is the ceil(n/2)-th smallest.
        assert by_route[route]["p50_ms"] == round(ordered[(len(ordered) + 1) // 2 - 1], 3)
        assert by_route[route]["max_ms"] == round(ordered[-1], 3)


def test_paginated_requests_by_offset_range_page_size_and_mode(api_log: Path) -> None:
    report = report_of(str(api_log))

    def counts(key: str) -> dict[str, int]:
        return {row["label"]: row["count"] for row in report[key]}

    # The 422 (page_size=1000) still names its requested window, at offset 0.
    assert counts("offset_ranges") == {"0": 4, "101-1000": 2, "none": 2}
    assert counts("page_sizes") == {"1-10": 5, "26-50": 2, "251+": 1}
    assert counts("modes") == {"offset": 6, "cursor": 2}
    # Rows come in the catalogue's order, not alphabetically.
    assert [row["label"] for row in report["offset_ranges"]] == ["0", "101-1000", "none"]


def test_slow_query_fingerprints_ranked_by_total_time(api_log: Path) -> None:
    report = report_of(str(api_log))
    queries = {q["fingerprint"]: q for q in report["slow_queries"]}

    expected: dict[str, list[float]] = defaultdict(list)
    routes: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records(api_log):
        if record.get("event") == "slow_query":
            expected[record["fingerprint"]].append(record["duration_ms"])
            routes[record["fingerprint"]][record.get("route") or "-"] += 1
    assert set(queries) == set(expected)
    for fingerprint, values in expected.items():
        row = queries[fingerprint]
        assert row["count"] == len(values)
        assert row["total_ms"] == pytest.approx(sum(values), abs=1e-3)
        assert row["max_ms"] == pytest.approx(max(values), abs=1e-3)
        assert row["mean_ms"] == pytest.approx(sum(values) / len(values), abs=1e-3)
        assert row["routes"] == dict(routes[fingerprint])
    totals = [q["total_ms"] for q in report["slow_queries"]]
    assert totals == sorted(totals, reverse=True)

    def by_shape(pattern: str) -> dict[str, Any]:
        matches = [q for f, q in queries.items() if re.search(pattern, f)]
        assert len(matches) == 1, (pattern, sorted(queries))
        return matches[0]

    # One page query per offset request that reached the handler; SQLite also renders
    # the first cursor page (no WHERE) as LIMIT ? OFFSET ?.
    page = by_shape(r"^SELECT content_items\.id.* FROM content_items ORDER BY .*LIMIT")
    assert (page["operation"], page["table"]) == ("SELECT", "content_items")
    assert page["routes"] == {CONTENT: 5, CURSOR: 1}
    keyset = by_shape(r"FROM content_items WHERE \(content_items\.created_at, content_items\.id\)")
    assert keyset["routes"] == {CURSOR: 1}
    # Item 7 twice (the second from the cache), 999999 once, 42 and 43 failed before the handler.
    by_id = by_shape(r"WHERE content_items\.id = \?")
    assert by_id["routes"] == {ITEM: 2}
    health = next(r for r in report["routes"] if r["route"] == "/health")
    assert by_shape(r"^SELECT \?$")["routes"] == {"/health": health["count"]}
    assert report["lines"]["slow_queries"] == sum(len(v) for v in expected.values())


def test_malformed_lines_are_skipped_and_counted(api_log: Path, tmp_path: Path) -> None:
    text = api_log.read_text()
    baseline = report_of(str(api_log))
    not_json = sum(1 for line in text.splitlines() if line.strip() and not _is_json(line))
    assert baseline["lines"]["malformed"] == not_json

    broken = tmp_path / "broken.log"
    broken.write_text(
        text
        + "Traceback (most recent call last):\n"
        + "[1, 2, 3]\n"
        + '{"event": "request", "route": "/api/v1/content", "status": "200"}\n'
        + '{"event": "slow_query", "duration_ms": 3.0}\n'
        + "\n"
    )
    report = report_of(str(broken))
    assert report["lines"]["malformed"] == not_json + 4
    assert report["lines"]["requests"] == baseline["lines"]["requests"]
    assert report["lines"]["total"] == baseline["lines"]["total"] + 4
    reasons = [e["reason"] for e in report["malformed_examples"]][-4:]
    assert reasons == [
        "not JSON",
        "not a JSON object",
        "request line without route, status or duration_ms",
        "slow_query line without fingerprint or duration_ms",
    ]
    result = analyze(str(broken))
    assert result.returncode == 0
    assert f"skipped {not_json + 4} malformed line(s)" in result.stderr


def test_stdin_and_files_give_the_same_report(api_log: Path) -> None:
    from_file = report_of(str(api_log))
    from_stdin = report_of(stdin=api_log.read_text())
    assert from_stdin["routes"] == from_file["routes"]
    assert from_stdin["slow_queries"] == from_file["slow_queries"]
    assert from_stdin["lines"] == from_file["lines"]


def test_text_report_shows_the_same_numbers(api_log: Path) -> None:
    result = analyze(str(api_log))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in (
        "Slowest routes (by p95)",
        "Paginated requests by offset range",
        "Paginated requests by page size",
        "Errors by route and status",
        "Slow queries by total time",
    ):
        assert title in out
    assert re.search(r"^/api/v1/content/\{item_id\}\s+500\s+2$", out, flags=re.MULTILINE)
    assert re.search(r"^GET\s+/api/v1/content/cursor\s+2\s+0\s", out, flags=re.MULTILINE)
    assert re.search(r"^101-1000\s+2\s+0\s", out, flags=re.MULTILINE)


def test_text_logs_are_refused_with_the_fix(tmp_path: Path) -> None:
    log = tmp_path / "text.log"
    log.write_text("INFO GET /api/v1/content 200 3.1ms\nINFO GET /health 200 1.0ms\n")
    result = analyze(str(log))
    assert result.returncode == 1
    assert "run the API with LOG_FORMAT=json" in result.stderr
    missing = analyze(str(tmp_path / "absent.log"))
    assert missing.returncode == 2
    assert "absent.log: no such file" in missing.stderr


def test_help_names_the_options() -> None:
    result = analyze("--help")
    assert result.returncode == 0
    for option in ("--json", "--top", "--quiet", "files"):
        assert option in result.stdout


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
