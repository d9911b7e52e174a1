"""The two shipped days replayed through the generated rules: the tables `make backtest` prints.

Both were recorded from the demo API under load by a real Prometheus
(``make record-fixtures``, ``scripts/record_demo_day.py``); ``<day>.json`` says
what was injected when. The healthy day must page nobody; on the incident day
each incident must raise the alerts the method promises, no earlier than a
total failure could, and no page may start outside an incident. The expected
times come from the config and the injected incidents, not from a past run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from genonaut_monitoring import config
from genonaut_monitoring.alerts import slo as s
from genonaut_monitoring.alerts.model import seconds
from genonaut_monitoring.backtest import Report, run_backtest
from genonaut_monitoring.backtest_report import render, to_data
from tests.conftest import ROOT, require_tool

CFG = config.CONFIG
FIXTURES = ROOT / "tests" / "fixtures" / "backtest"
STEP = seconds(CFG.intervals.evaluation_interval)

pytestmark = pytest.mark.slow


def replay(name: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The report of a shipped day as JSON data and text, and what was injected into it."""
    require_tool("prometheus")
    require_tool("promtool")
    report: Report = run_backtest(FIXTURES / f"{name}.om.xz", CFG)
    about = json.loads((FIXTURES / f"{name}.json").read_text())
    return to_data(report), about, render(report)


@pytest.fixture(scope="module")
def healthy() -> tuple[dict[str, Any], dict[str, Any], str]:
    return replay("healthy")


@pytest.fixture(scope="module")
def incidents() -> tuple[dict[str, Any], dict[str, Any], str]:
    return replay("incidents")


def alert(data: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [a for a in data["alerts"] if a["name"] == name]
    return found


def minutes(data: dict[str, Any], at: float) -> float:
    """Minutes of the day since the recording's first sample."""
    return (at - data["start"]) / 60


def test_the_fixtures_are_small() -> None:
    sizes = {p.name: p.stat().st_size for p in FIXTURES.glob("*.om.xz")}
    assert set(sizes) == {"healthy.om.xz", "incidents.om.xz"}
    assert sum(sizes.values()) < 4_000_000, sizes


def test_a_healthy_day_pages_nobody_and_spends_no_budget(
    healthy: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    data, about, text = healthy
    assert about["incidents"] == []
    assert data["end"] - data["start"] >= 86400 - 120  # a whole day
    fired = {a["name"]: a["fired"] for a in data["alerts"] if a["fired"]}
    # The heartbeat fires all day by design: proof that the rules were evaluated at all.
    assert fired == {"Watchdog": 1}, text
    watchdog = alert(data, "Watchdog")
    assert watchdog["firing_seconds"] == data["end"] - data["start"]
    for budget in data["budgets"]:
        assert budget["requests"] > 1e6, budget  # a day of traffic the SLO counts
        assert budget["burn_rate"] < 1, budget  # slower than the budget allows
    assert "Never fired: ApiHighErrorRate," in text


def test_the_incident_day_pages_for_the_fast_burns_at_the_times_the_method_gives(
    incidents: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    data, about, text = incidents
    outage, slow_pages, _leak = about["incidents"]
    pages = alert(data, s.FAST_BURN)["firings"]
    # One page per fast burn, for the SLO that burns, and none for the leak.
    assert [p["labels"]["slo"] for p in pages] == ["api-availability", "pagination-latency"], text
    for page, incident in zip(pages, (outage, slow_pages), strict=True):
        slo = next(x for x in CFG.slos if x.name == page["labels"]["slo"])
        start = minutes(data, page["start"])
        # No earlier than a total failure fills the fastest page's long window...
        fastest = min(seconds(r.long) * r.factor * s.budget(slo) for r in CFG.slo_alerting.page)
        assert start >= incident["start"] + fastest / 60, (start, incident, text)
        # ...and while the incident lasts.
        assert start <= incident["end"], (start, incident, text)
    # No page starts outside an incident.
    windows = [(i["start"], i["end"]) for i in about["incidents"]]
    for firing in [f for a in data["alerts"] if a["severity"] == "critical" for f in a["firings"]]:
        start = minutes(data, firing["start"])
        assert any(low <= start <= high for low, high in windows), (firing, text)


def test_the_static_error_rate_alert_fires_for_the_outage(
    incidents: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    data, about, text = incidents
    outage = about["incidents"][0]
    starts = [minutes(data, f["start"]) for f in alert(data, "ApiHighErrorRate")["firings"]]
    assert any(outage["start"] <= m <= outage["end"] for m in starts), text


def test_the_slow_leak_opens_a_ticket_and_no_page(
    incidents: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    data, about, text = incidents
    leak = about["incidents"][2]
    tickets = [
        (minutes(data, f["start"]), minutes(data, f["end"] or data["end"]))
        for f in alert(data, s.SLOW_BURN)["firings"]
        if f["labels"]["slo"] == "api-availability"
    ]
    assert any(start < leak["end"] and end > leak["start"] for start, end in tickets), text
    pages = alert(data, s.FAST_BURN)["firings"]
    assert not [p for p in pages if leak["start"] <= minutes(data, p["start"]) <= leak["end"]]


def test_the_budget_spent_is_what_was_injected(
    incidents: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    """Bad requests over the day, per SLO, against the faults injected (within 20%)."""
    data, about, text = incidents
    day = data["end"] - data["start"]
    period = seconds(CFG.slo_alerting.period)
    budgets = {b["slo"]: b for b in data["budgets"]}
    # The load sends 5% of its requests to /health, outside /api/ and so never failed.
    api_share = 0.95
    failed = sum(
        i["faults"].get("error_rate", 0) * api_share * (i["end"] - i["start"]) * 60
        for i in about["incidents"]
    )
    slow = sum(
        (i["end"] - i["start"]) * 60 for i in about["incidents"] if "latency_seconds" in i["faults"]
    )
    for name, bad_seconds in (("api-availability", failed), ("pagination-latency", slow)):
        slo = next(x for x in CFG.slos if x.name == name)
        expected = bad_seconds / day / s.budget(slo) * day / period
        assert budgets[name]["budget_spent"] == pytest.approx(expected, rel=0.2), (name, text)


def test_the_report_names_the_day_and_the_budget_table(
    incidents: tuple[dict[str, Any], dict[str, Any], str],
) -> None:
    data, about, text = incidents
    day = datetime.fromisoformat(about["day_start"].replace("Z", "+00:00")).astimezone(UTC)
    assert f"{day:%Y-%m-%d %H:%M:%S} to" in text
    assert f"Budget spent (of {CFG.slo_alerting.period})" in text
    assert f"Replayed in {data['elapsed_seconds']:.1f}s." in text
