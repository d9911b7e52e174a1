"""promtool proves what the SLO alerts promise, for every SLO of the config.

A burn 1% over the fastest page factor pages within five minutes; a full outage after a
healthy history pages when the method says it must; a steady 1x burn never
pages; a spike shorter than the page's detection time pages nothing; a burn
between the ticket and the page factors opens a ticket and never pages. Every
number (windows, factors, ``for``, objectives, thresholds) comes from the
config, so a change there is checked by the same promises.

The rule file is the generated one with its annotations removed: these tests
are about when the alerts fire; what they say is checked with each alert's
own cases.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from genonaut_monitoring import alerts, config
from genonaut_monitoring.alerts import slo as s
from genonaut_monitoring.alerts import slo_cases
from genonaut_monitoring.alerts.model import duration, seconds
from genonaut_monitoring.config import Slo
from genonaut_monitoring.exporters import catalogue as c
from tests.conftest import require_tool

CFG = config.CONFIG
A = CFG.slo_alerting
STEP = seconds(CFG.intervals.evaluation_interval)
# Requests per second in every scenario.
RATE = 100.0
INSTANCE = "127.0.0.1:8000"


@dataclass(frozen=True)
class Phase:
    """``length`` seconds during which the SLO burns its budget at ``burn`` (0: all good)."""

    length: float
    burn: float


def _counter(name: str, labels: dict[str, str], per_step: list[float]) -> dict[str, str]:
    """promtool's expanding notation for a counter growing by ``per_step[i]`` at step i."""
    parts, total, i = ["0"], 0.0, 0
    while i < len(per_step):
        j = i
        while j < len(per_step) and per_step[j] == per_step[i]:
            j += 1
        inc, n = per_step[i], j - i
        parts.append(f"{total + inc!r}+{inc!r}x{n - 1}")
        total += inc * n
        i = j
    text = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{text}}}", "values": " ".join(parts)}


def _steps(phases: list[Phase]) -> list[float]:
    """The bad fraction of the requests of each evaluation step, phase after phase."""
    out: list[float] = []
    for phase in phases:
        out += [phase.burn] * round(phase.length / STEP)
    return out


def traffic(slo: Slo, phases: list[Phase]) -> list[dict[str, str]]:
    """Input series: RATE requests a second to the SLO's route, burning as ``phases`` say."""
    budget = s.budget(slo)
    bad = [min(1.0, burn * budget) * RATE * STEP for burn in _steps(phases)]
    total = [RATE * STEP] * len(bad)
    good = [t - b for t, b in zip(total, bad, strict=True)]
    labels = {"job": CFG.slo_job(slo), "instance": INSTANCE, "method": "GET"}
    labels["route"] = slo_cases.route_of(slo)
    if slo.sli == "availability":
        name = c.HTTP_REQUESTS.name
        return [
            _counter(name, {**labels, "status": "200"}, good),
            _counter(name, {**labels, "status": "500"}, bad),
        ]
    spec = s.LATENCY_HISTOGRAM
    threshold = s.boundary(slo.latency_seconds or 0)
    assert threshold is not None
    edges = [*(spec.buckets or ()), math.inf]
    slow_edge = edges[edges.index(threshold) + 1]
    series = [
        _counter(
            spec.name + "_bucket",
            {**labels, "le": "+Inf" if math.isinf(le) else repr(float(le))},
            [
                (g if le >= threshold else 0.0) + (b if le >= slow_edge else 0.0)
                for g, b in zip(good, bad, strict=True)
            ],
        )
        for le in edges
    ]
    return [*series, _counter(spec.name + "_count", labels, total)]


def expected(slo: Slo) -> dict[str, str]:
    return {"job": CFG.slo_job(slo), "slo": slo.name, "sli": slo.sli}


def run(tmp_path: Path, slo: Slo, phases: list[Phase], checks: list[dict[str, Any]]) -> None:
    """promtool test rules: ``checks`` (alert_rule_test entries) against ``phases`` of traffic."""
    promtool = require_tool("promtool")
    rules = yaml.safe_load(
        alerts.rule_outputs(CFG, alerts.dashboard_panel_ids(CFG))[f"{alerts.RULES_DIR}/slo.yml"]
    )
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "slo.yml").write_text(yaml.safe_dump(rules))
    test = {
        "rule_files": ["slo.yml"],
        "evaluation_interval": CFG.intervals.evaluation_interval,
        "tests": [
            {
                "interval": CFG.intervals.evaluation_interval,
                "input_series": traffic(slo, phases),
                "alert_rule_test": checks,
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "test.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def firing(alert: str, at: float, slo: Slo | None, severity: str) -> dict[str, Any]:
    """An alert_rule_test entry: at ``at`` seconds, ``alert`` fires for ``slo`` (None: silent)."""
    exp = [] if slo is None else [{"exp_labels": {**expected(slo), "severity": severity}}]
    return {"eval_time": duration(at), "alertname": alert, "exp_alerts": exp}


def every(start: float, end: float, step: float) -> list[float]:
    return [start + i * step for i in range(int((end - start) // step) + 1)]


SLOS = [pytest.param(slo, id=slo.name) for slo in CFG.slos]
PAGE_FOR, TICKET_FOR = seconds(A.page_for), seconds(A.ticket_for)
LONGEST_PAGE = max(seconds(r.long) for r in A.page)
BASE = seconds(s.base_window(CFG))


def outage_pages_after(slo: Slo) -> float:
    """When a full outage pages, from its start: the method's detection time, plus ``for``.

    Every request fails, so the error ratio over a window of length W reaches
    ``factor * budget`` after ``W * factor * budget``; the base rate lags half
    its window behind the outage's start.
    """
    budget = s.budget(slo)
    detect = min(seconds(r.long) * r.factor * budget for r in A.page)
    return BASE / 2 + detect + PAGE_FOR


@pytest.mark.parametrize("slo", SLOS)
def test_a_burn_at_the_fastest_page_factor_pages_within_five_minutes(
    slo: Slo, tmp_path: Path
) -> None:
    # 1% above the factor: the alert compares with ">", and at exactly the factor the
    # last bit of a float would decide.
    burn = max(r.factor for r in A.page) * 1.01
    checks = [firing(s.FAST_BURN, PAGE_FOR - STEP, None, "critical")]
    checks.append(firing(s.FAST_BURN, 300, slo, "critical"))
    run(tmp_path, slo, [Phase(LONGEST_PAGE, burn)], checks)


@pytest.mark.parametrize("slo", SLOS)
def test_a_full_outage_after_a_healthy_history_pages_when_the_method_says(
    slo: Slo, tmp_path: Path
) -> None:
    pages = outage_pages_after(slo)
    history = LONGEST_PAGE
    outage = math.ceil((pages + 120) / STEP) * STEP
    burn = 1 / s.budget(slo)
    checks = [
        firing(s.FAST_BURN, history - STEP, None, "critical"),
        firing(s.FAST_BURN, history + pages - 60, None, "critical"),
        firing(s.FAST_BURN, history + pages + 60, slo, "critical"),
    ]
    run(tmp_path, slo, [Phase(history, 0.0), Phase(outage, burn)], checks)


@pytest.mark.parametrize("slo", SLOS)
def test_a_steady_1x_burn_never_pages(slo: Slo, tmp_path: Path) -> None:
    length = LONGEST_PAGE + 3600
    checks = [firing(s.FAST_BURN, t, None, "critical") for t in every(0, length, 900)]
    run(tmp_path, slo, [Phase(length, 1.0)], checks)


@pytest.mark.parametrize("slo", SLOS)
def test_a_spike_shorter_than_the_page_detection_time_pages_nothing(
    slo: Slo, tmp_path: Path
) -> None:
    # Half of what a full outage needs to page: every request fails meanwhile.
    spike = max(STEP, (outage_pages_after(slo) - PAGE_FOR - BASE / 2) / 2 // STEP * STEP)
    history = LONGEST_PAGE
    after = LONGEST_PAGE + 600
    checks = [
        firing(s.FAST_BURN, t, None, "critical")
        for t in [*every(history, history + 3600, 60), *every(history + 3600, history + after, 900)]
    ]
    phases = [Phase(history, 0.0), Phase(spike, 1 / s.budget(slo)), Phase(after, 0.0)]
    run(tmp_path, slo, phases, checks)


@pytest.mark.parametrize("slo", SLOS)
def test_a_burn_between_the_ticket_and_page_factors_opens_a_ticket_and_never_pages(
    slo: Slo, tmp_path: Path
) -> None:
    low, high = max(r.factor for r in A.ticket), min(r.factor for r in A.page)
    assert low < high, "a ticket factor at or above a page factor: every ticket would page"
    burn = (low + high) / 2
    length = LONGEST_PAGE + 3600
    checks = [firing(s.SLOW_BURN, TICKET_FOR - STEP, None, "warning")]
    checks.append(firing(s.SLOW_BURN, TICKET_FOR + 2 * STEP, slo, "warning"))
    checks += [firing(s.FAST_BURN, t, None, "critical") for t in every(0, length, 900)]
    run(tmp_path, slo, [Phase(length, burn)], checks)
