"""Backtesting: recordings as OpenMetrics, re-timing, `for` as Prometheus applies it, commands."""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from genonaut_monitoring import alerts, cli, config, openmetrics
from genonaut_monitoring.alerts.model import Record, duration
from genonaut_monitoring.backtest import BacktestError, firings, inputs, levels
from genonaut_monitoring.openmetrics import Recorded
from genonaut_monitoring.record import RecordError, parse_time
from tests.conftest import require_tool

T0 = 1_704_153_600.0  # 2024-01-02T00:00:00Z


def sample_series() -> list[Recorded]:
    return [
        Recorded("http_requests_total", {"job": "api", "route": '/a"b\\c'}, [(T0, 0), (T0 + 1, 5)]),
        Recorded("up", {"job": "api"}, [(T0, 1), (T0 + 1, 0)]),
        Recorded("x_seconds_bucket", {"le": "0.5"}, [(T0 + 0.25, 1.5), (T0 + 1.75, 2.5)]),
    ]


@pytest.mark.parametrize("suffix", [".om", ".om.gz", ".om.xz"])
def test_a_recording_reads_back_as_written(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"day{suffix}"
    openmetrics.write(path, sample_series())
    back = {(r.name, tuple(sorted(r.labels.items()))): r.samples for r in openmetrics.read(path)}
    for one in sample_series():
        assert back[(one.name, tuple(sorted(one.labels.items())))] == one.samples
    with openmetrics.open_text(path) as text:
        assert text.read().endswith("\n# EOF\n")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # nothing half-written left


def test_promtool_turns_a_recording_into_tsdb_blocks(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    path = tmp_path / "day.om"
    openmetrics.write(path, sample_series())
    result = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(path), str(tmp_path / "data")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "NUM SAMPLES" in result.stdout and " 6 " in result.stdout


def test_retiming_stretches_time_and_counters_so_rates_and_gauges_read_the_same() -> None:
    run = [
        Recorded("http_requests_total", {}, [(100.0, 10.0), (101.0, 30.0), (102.0, 50.0)]),
        Recorded("x_seconds_bucket", {"le": "1"}, [(100.0, 1.0), (102.0, 5.0)]),
        Recorded("up", {}, [(100.0, 1.0), (101.0, 0.0)]),
    ]
    stretched = {r.name: r.samples for r in openmetrics.retime(run, 60, start_at=T0)}
    assert stretched["http_requests_total"] == [(T0, 600.0), (T0 + 60, 1800.0), (T0 + 120, 3000.0)]
    # 20 requests a second in the run; 20 a second in the stretched day.
    (t1, v1), (t2, v2) = stretched["http_requests_total"][:2]
    assert (v2 - v1) / (t2 - t1) == 20.0
    assert stretched["x_seconds_bucket"] == [(T0, 60.0), (T0 + 120, 300.0)]
    assert stretched["up"] == [(T0, 1.0), (T0 + 60, 0.0)]  # a gauge keeps its values


def test_an_unreadable_recording_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.om"
    path.write_text("not a sample\n")
    with pytest.raises(ValueError, match=r"bad\.om:1: not a sample line"):
        openmetrics.read(path)


# --- `for`, as Prometheus applies it ---------------------------------------------------------


def test_for_is_applied_as_prometheus_applies_it(tmp_path: Path) -> None:
    """Random on/off input: at every step, promtool's own rule engine agrees with firings()."""
    promtool = require_tool("promtool")
    rng = random.Random(7)
    step, hold, steps = 15.0, 60.0, 240
    # Runs of "condition true" of random lengths, some shorter than `for`.
    values: list[int] = []
    while len(values) < steps:
        values += [rng.choice((0, 1))] * rng.randint(1, 12)
    values = values[:steps]
    present = [i * step for i, v in enumerate(values) if v]
    fired = list(firings(present, 0.0, (steps - 1) * step, step, hold))
    assert len(fired) >= 3, "the pattern should fire a few times"

    def firing_at(at: float) -> bool:
        return any(start <= at and (end is None or at < end) for start, end in fired)

    rules = {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "x == 1", "for": "1m"}]}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    checks = [
        {
            "eval_time": duration(i * step),
            "alertname": "A",
            "exp_alerts": [{"exp_labels": {"job": "j"}}] if firing_at(i * step) else [],
        }
        for i in range(steps)
    ]
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": [{"series": 'x{job="j"}', "values": " ".join(map(str, values))}],
                "alert_rule_test": checks,
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_an_alert_still_firing_at_the_end_has_no_resolution() -> None:
    assert list(firings([30.0, 45.0, 60.0], 0.0, 60.0, 15.0, 15.0)) == [(45.0, None)]
    assert list(firings([0.0, 15.0], 0.0, 60.0, 15.0, 0.0)) == [(0.0, 30.0)]


# --- rules in levels --------------------------------------------------------------------


def test_recording_rules_are_backfilled_after_the_rules_they_read() -> None:
    a = Record("j:a:rate5m", "sum by (job) (rate(http_requests_total[5m]))", frozenset(), "a")
    b = Record("j:b:ratio", "j:a:rate5m / 2", frozenset(), "b")
    c = Record("j:c:ratio", "j:b:ratio + on() group_left j:a:rate5m", frozenset(), "c")
    assert [[r.name for r in level] for level in levels([c, b, a])] == [
        [a.name],
        [b.name],
        [c.name],
    ]
    loop = Record("j:b:ratio", "j:c:ratio", frozenset(), "loop")
    with pytest.raises(BacktestError, match="in a loop"):
        levels([loop, c])


def test_every_generated_recording_rule_finds_its_level() -> None:
    records = [r for g in alerts.groups(config.CONFIG) for r in g.records]
    placed = [r for level in levels(records) for r in level]
    assert sorted(map(id, placed)) == sorted(map(id, records))


def test_an_alerts_inputs_follow_recording_rules_to_scraped_series() -> None:
    cfg = config.CONFIG
    records = [r for g in alerts.groups(cfg) for r in g.records]
    by_name = {a.name: a for a in alerts.all_alerts(cfg)}
    job = f'job="{cfg.jobs[0]}"'
    assert inputs(by_name["ApiHighErrorRate"].expr, records) == {f"http_requests_total{{{job}}}"}
    slo_inputs = inputs(by_name["SloErrorBudgetFastBurn"].expr, records)
    assert {selector.split("{")[0] for selector in slo_inputs} == {
        "http_requests_total",
        "http_request_duration_seconds_count",
        "http_request_duration_seconds_bucket",
    }
    assert f'http_requests_total{{{job},status=~"5.."}}' in slo_inputs


# --- the commands -----------------------------------------------------------------------------


def test_times_are_read_as_people_write_them() -> None:
    now = 1_700_000_000.0
    assert parse_time("now", now) == now
    assert parse_time("-90m", now) == now - 5400
    assert parse_time("1699990000", now) == 1_699_990_000
    assert parse_time("2024-01-02T00:00:00Z", now) == T0
    with pytest.raises(RecordError, match="'yesterday' is not a time: use now, -24h"):
        parse_time("yesterday", now)


def test_record_names_an_unreachable_prometheus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code = cli.main(
        ["record", "--prometheus", url, "--start", "-1h", "--out", str(tmp_path / "x.om")]
    )
    assert code == 1
    assert f"record failed: cannot reach Prometheus at {url}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_backtest_names_a_missing_or_broken_recording(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["backtest", str(tmp_path / "none.om.xz")]) == 1
    assert "none.om.xz: no such file; record one with genonaut-monitoring record" in (
        capsys.readouterr().err
    )
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    recording = tmp_path / "day.om"
    openmetrics.write(recording, sample_series())
    assert cli.main(["backtest", str(recording), "--workdir", str(busy)]) == 1
    assert f"--workdir {busy}: choose a new or empty folder" in capsys.readouterr().err
    assert (busy / "keep.txt").read_text() == "mine"
    broken = tmp_path / "broken.om.gz"
    broken.write_bytes(b"not gzip at all")
    assert cli.main(["backtest", str(broken)]) == 1
    assert "broken.om.gz: cannot be read as OpenMetrics" in capsys.readouterr().err


@pytest.mark.e2e
def test_record_exports_what_prometheus_scraped_and_backtest_replays_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A short real run: every raw sample of the rules' inputs, nothing else, replayed."""
    require_tool("prometheus")
    require_tool("promtool")
    import requests

    from genonaut_monitoring.stack import Stack

    with Stack(tmp_path / "stack", components={"api", "prometheus"}) as stack:
        stack.wait_for(lambda: stack.query("up == 1"), 30, "the first scrape")
        start = time.time()
        for page in range(1, 41):
            requests.get(f"{stack.api_url}/api/v1/content", params={"page": page}, timeout=10)
            time.sleep(0.1)
        time.sleep(2.5)
        end = time.time()
        out = tmp_path / "run.om.xz"
        code = cli.main(
            ["record", "--profile", "test", "--prometheus", stack.prometheus_url,
             "--start", str(start), "--end", str(end), "--out", str(out)]
        )  # fmt: skip
        assert code == 0
        recorded = openmetrics.read(out)
        # The same window the recorder read: (start, end].
        span = f"{(end - start) * 1000:.0f}ms"
        params: dict[str, str | float] = {
            "query": f'count_over_time(up{{job="genonaut-api"}}[{span}])',
            "time": end,
        }
        answer = requests.get(f"{stack.prometheus_url}/api/v1/query", params=params, timeout=10)
        ups = answer.json()["data"]["result"]
    names = {r.name for r in recorded}
    assert {"up", "http_requests_total", "http_request_duration_seconds_bucket"} <= names
    assert "process_cpu_seconds_total" not in names  # no rule reads it
    (up,) = [r for r in recorded if r.name == "up"]
    assert len(up.samples) == float(ups[0]["value"][1])
    assert "wrote" in capsys.readouterr().out

    report_path = tmp_path / "report.json"
    assert cli.main(["backtest", str(out), "--profile", "test", "--json", str(report_path)]) == 0
    report: dict[str, Any] = json.loads(report_path.read_text())
    assert {a["name"] for a in report["alerts"]} == {
        a.name for a in alerts.all_alerts(config.TEST_CONFIG)
    }
    availability = next(b for b in report["budgets"] if b["sli"] == "availability")
    assert availability["requests"] > 0 and availability["bad"] == 0
    # No PostgreSQL ran: its alerts are reported, not evaluated (absent() would fire).
    uncovered = {a["name"] for a in report["alerts"] if not a["covered"]}
    assert {a.name for a in alerts.all_alerts(config.TEST_CONFIG) if "Postgres" in a.name} <= (
        uncovered
    )
    assert all(not a["fired"] for a in report["alerts"] if not a["covered"])
    text = capsys.readouterr().out
    assert "Never fired:" in text
    assert "Not evaluated, the recording holds nothing they read:" in text
