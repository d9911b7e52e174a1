"""SLOs as code: config and TOML, the generated SLI rules, build errors, the dashboard, routing."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from genonaut_monitoring import alerts, builder, config, dashboards, settings
from genonaut_monitoring.alerts import slo as s
from genonaut_monitoring.config import BurnRate, Slo
from genonaut_monitoring.exporters import catalogue as c
from tests.conftest import require_tool

CFG = config.CONFIG


def slo_rules(cfg: config.Config) -> list[dict[str, Any]]:
    files = alerts.rule_outputs(cfg, alerts.dashboard_panel_ids(cfg))
    (group,) = yaml.safe_load(files[f"{alerts.RULES_DIR}/slo.yml"])["groups"]
    return list(group["rules"])


def load_toml(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "monitoring.toml"
    path.write_text(text)
    return settings.load(path)


def toml_problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(settings.SettingsError) as caught:
        load_toml(tmp_path, text)
    return [p.split(": ", 1)[1] for p in caught.value.problems]


# --- what the rules say ------------------------------------------------------------------


def test_every_window_the_alerts_read_is_recorded_per_slo() -> None:
    rules = slo_rules(CFG)
    recorded = {r["record"] for r in rules if "record" in r}
    for rate in (*CFG.slo_alerting.page, *CFG.slo_alerting.ticket):
        assert {s.error_ratio(rate.long), s.error_ratio(rate.short)} <= recorded
    assert s.error_ratio(CFG.slo_alerting.period) in recorded
    # The base rates and constants once per SLO, told apart by their labels.
    for name in (s.requests_rate("5m"), s.errors_rate("5m"), s.OBJECTIVE, s.ERROR_BUDGET):
        labelled = [r["labels"]["slo"] for r in rules if r.get("record") == name]
        assert labelled == [x.name for x in CFG.slos], name


def test_page_and_ticket_pair_a_long_and_a_short_window_per_factor() -> None:
    by_name = {r["alert"]: r for r in slo_rules(CFG) if "alert" in r}
    for name, rates, for_ in (
        (s.FAST_BURN, CFG.slo_alerting.page, CFG.slo_alerting.page_for),
        (s.SLOW_BURN, CFG.slo_alerting.ticket, CFG.slo_alerting.ticket_for),
    ):
        rule = by_name[name]
        assert rule["for"] == for_
        pairs = rule["expr"].split("\nor\n")
        assert len(pairs) == len(rates)
        for pair, rate in zip(pairs, rates, strict=True):
            factor = config.fmt_number(rate.factor)
            assert (
                f"{s.error_ratio(rate.long)} / on (job, slo, sli) {s.ERROR_BUDGET} > {factor}"
                in pair
            )
            assert (
                f"{s.error_ratio(rate.short)} / on (job, slo, sli) {s.ERROR_BUDGET} > {factor}"
                in pair
            )
            assert " and\n" in pair
    assert by_name[s.FAST_BURN]["labels"]["severity"] == "critical"
    assert by_name[s.SLOW_BURN]["labels"]["severity"] == "warning"


def test_an_adopters_slo_from_toml_reaches_the_rules(tmp_path: Path) -> None:
    cfg = load_toml(
        tmp_path,
        """
[slo_alerting]
period = "28d"
page = [{ long = "1h", short = "5m", factor = 13.44 }, { long = "4h", short = "20m", factor = 5 }]
ticket = []
[[slos]]
name = "content-latency"
sli = "latency"
objective = 0.99
latency_seconds = 0.25
route_regex = "/api/v1/content.*"
""",
    )
    rules = slo_rules(cfg)
    text = json.dumps(rules)
    assert 'le=\\"0.25\\"' in text and 'route=~\\"/api/v1/content.*\\"' in text
    assert {r.get("alert") for r in rules} == {s.FAST_BURN, None}  # no ticket conditions
    budget = next(r for r in rules if r.get("record") == s.ERROR_BUDGET)
    assert (budget["expr"], budget["labels"]["slo"]) == ("vector(0.01)", "content-latency")
    assert s.error_ratio("4h") in {r.get("record") for r in rules}
    assert s.error_ratio("28d") in {r.get("record") for r in rules}
    page = next(r for r in rules if r.get("alert") == s.FAST_BURN)
    assert "> 13.44" in page["expr"] and "> 5\n" in page["expr"]
    assert "28d error budget at 5x" in page["annotations"]["summary"]


def test_a_latency_threshold_off_the_histogram_buckets_fails_the_build_naming_both(
    tmp_path: Path,
) -> None:
    spec = s.LATENCY_HISTOGRAM
    edges = list(spec.buckets or ())
    off = (edges[0] + edges[1]) / 2  # between two boundaries, whatever they are
    bad = replace(CFG, slos=(Slo("checkout", "latency", 0.99, latency_seconds=off),))
    with pytest.raises(builder.BuildError) as caught:
        builder.build(bad, tmp_path / "out")
    (problem,) = [p for p in caught.value.problems if "checkout" in p]
    assert (
        f"latency_seconds {config.fmt_number(off)} is not a bucket boundary of {spec.name}"
        in problem
    )
    assert config.fmt_number(edges[0]) in problem  # the boundaries to pick from
    assert not (tmp_path / "out").exists()


def test_every_bucket_boundary_is_a_valid_latency_threshold() -> None:
    for edge in s.LATENCY_HISTOGRAM.buckets or ():
        cfg = replace(CFG, slos=(Slo("x", "latency", 0.99, latency_seconds=edge),))
        assert s.problems(cfg) == [], edge


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('service = "nope"', "service 'nope' is not a configured service (genonaut-api)"),
        ('sli = "latency"', "a latency SLO needs latency_seconds"),
        ("latency_seconds = 0.5", 'latency_seconds only applies to sli = "latency"'),
        ('routes = ["/a"]\nroute_regex = "/b.*"', "give routes or route_regex, not both"),
        ('route_regex = "/a("', "route_regex '/a(' is not a regex"),
    ],
)
def test_an_slo_that_cannot_work_is_refused_naming_it(
    tmp_path: Path, table: str, expected: str
) -> None:
    text = f'[[slos]]\nname = "x"\nsli = "availability"\nobjective = 0.99\n{table}\n'
    if 'sli = "latency"' in table:
        text = text.replace('sli = "availability"\n', "")
    problems = toml_problems(tmp_path, text)
    assert any(p.startswith(f"slos[0] (x): {expected}") for p in problems), problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[[slos]]\nname = "Api SLO"\nsli = "availability"\nobjective = 0.99\n',
            "slos[0].name: 'Api SLO' is not lower-case words joined by '-'",
        ),
        (
            '[[slos]]\nname = "a"\nsli = "speed"\nobjective = 0.99\n',
            "slos[0].sli: 'speed' is not availability or latency",
        ),
        (
            '[[slos]]\nname = "a"\nsli = "availability"\nobjective = 1\n',
            "slos[0].objective: 1 is not a ratio above 0 and at most 0.99999",
        ),
        (
            '[slo_alerting]\npage = [{ long = "5m", short = "1h", factor = 14.4 }]\n',
            "slo_alerting.page[0]: short window 1h must be shorter than long 5m",
        ),
        (
            '[slo_alerting]\nticket = [{ long = "60d", short = "1d", factor = 1 }]\n',
            "slo_alerting.ticket[0]: long window 60d is longer than period 30d",
        ),
        (
            '[slo_alerting]\npage = [{ long = "1h", short = "5m", factor = 0 }]\n',
            "slo_alerting.page[0].factor: 0 is not a burn-rate factor above 0",
        ),
    ],
)
def test_slo_settings_are_checked_key_by_key(tmp_path: Path, text: str, expected: str) -> None:
    problems = toml_problems(tmp_path, text)
    assert any(p.startswith(expected) for p in problems), problems


def test_a_bad_value_is_reported_once_not_also_as_missing(tmp_path: Path) -> None:
    problems = toml_problems(tmp_path, '[[slos]]\nname = "a"\nsli = "x"\nobjective = 0.99\n')
    assert problems == ["slos[0].sli: 'x' is not availability or latency"]


def test_an_slo_without_a_service_counts_the_first_service(tmp_path: Path) -> None:
    cfg = load_toml(tmp_path, '[[services]]\nname = "shop"\ntargets = ["localhost:9000"]\n')
    assert all(x.service is None for x in cfg.slos)
    rules = slo_rules(cfg)
    # Each SLO's request and error rates read the service's own series, and no other job's.
    window = s.base_window(cfg)
    rates = [
        r for r in rules if r.get("record") in (s.requests_rate(window), s.errors_rate(window))
    ]
    assert sorted((r["labels"]["slo"], r["record"]) for r in rates) == sorted(
        (x.name, name)
        for x in cfg.slos
        for name in (s.requests_rate(window), s.errors_rate(window))
    )
    for rule in rates:
        assert 'job="shop"' in rule["expr"], rule
        assert rule["expr"].count("job=") == rule["expr"].count('job="shop"'), rule
    # Its objective and budget are labelled with that job, once per SLO.
    constants = [r for r in rules if r.get("record") in (s.OBJECTIVE, s.ERROR_BUDGET)]
    assert sorted((r["labels"]["slo"], r["record"]) for r in constants) == sorted(
        (x.name, name) for x in cfg.slos for name in (s.OBJECTIVE, s.ERROR_BUDGET)
    )
    assert all(r["labels"]["job"] == "shop" for r in constants)


def test_without_slos_there_are_no_slo_rules_and_the_dashboard_still_builds(
    tmp_path: Path,
) -> None:
    cfg = replace(CFG, slos=())
    assert "slo" not in [g.area for g in alerts.groups(cfg)]
    assert not [a for a in alerts.all_alerts(cfg) if a.name.startswith("Slo")]
    outputs = builder.build(cfg, tmp_path / "out")
    assert f"grafana/dashboards/{CFG.grafana.dashboard_uids['slo']}.json" in outputs


@pytest.mark.parametrize(("threshold", "matcher"), [(0.5, 'le="0.5"'), (1.0, 'le=~"1|1\\\\.0"')])
def test_the_le_matcher_takes_every_spelling_of_the_boundary(
    threshold: float, matcher: str
) -> None:
    # prometheus_client writes 1.0, Go's client 1; Prometheus 3 rewrites both as 1.0.
    assert s.le_matcher(threshold) == matcher


# --- the SLI records, computed by promtool --------------------------------------------------


def test_the_sli_records_compute_the_bad_share_of_each_slo(tmp_path: Path) -> None:
    """8 of 100 requests fail and 12 of 80 paginated ones are slow: each SLO reads its own."""
    promtool = require_tool("promtool")
    availability, latency = (
        next(x for x in CFG.slos if x.sli == k) for k in ("availability", "latency")
    )
    job, step = CFG.jobs[0], 60
    base = {"job": job, "instance": "127.0.0.1:8000", "method": "GET"}

    def counter(name: str, labels: dict[str, str], per_second: float) -> dict[str, str]:
        text = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return {"series": f"{name}{{{text}}}", "values": f"0+{per_second * step}x200"}

    requests = c.HTTP_REQUESTS.name
    histogram = s.LATENCY_HISTOGRAM
    assert latency.latency_seconds is not None and latency.routes
    edges = [*(histogram.buckets or ()), float("inf")]
    slow_edge = edges[edges.index(latency.latency_seconds) + 1]
    route = {**base, "route": latency.routes[0]}
    series = [
        counter(requests, {**base, "route": "/health", "status": "200"}, 92),
        counter(requests, {**base, "route": "/health", "status": "500"}, 8),
        counter(histogram.name + "_count", route, 80),
        *(
            counter(
                histogram.name + "_bucket",
                {**route, "le": "+Inf" if le == float("inf") else repr(le)},
                (68 if le >= latency.latency_seconds else 0) + (12 if le >= slow_edge else 0),
            )
            for le in edges
        ),
    ]
    labels = {
        k: {"job": job, "slo": x.name, "sli": x.sli}
        for k, x in (("a", availability), ("l", latency))
    }
    at = "2h"
    a, lat = labels["a"], labels["l"]
    # Every series the SLO rules record, with what each SLO must read.
    expected = {
        s.requests_rate("5m"): (100, 80),
        s.errors_rate("5m"): (8, 12),
        s.OBJECTIVE: (availability.objective, latency.objective),
        s.ERROR_BUDGET: (s.budget(availability), s.budget(latency)),
        **{s.error_ratio(w): (0.08, 0.15) for w in s.windows(CFG)},
    }
    recorded = {r.name for r in s.records(CFG)}
    assert sorted(expected) == sorted(recorded), "an SLO recording rule is untested"
    tests = [
        {
            "expr": name,
            "eval_time": at,
            "exp_samples": [
                {"labels": s_labels(name, a), "value": first},
                {"labels": s_labels(name, lat), "value": second},
            ],
        }
        for name, (first, second) in expected.items()
    ]
    rules = alerts.rule_outputs(CFG, alerts.dashboard_panel_ids(CFG))[f"{alerts.RULES_DIR}/slo.yml"]
    (tmp_path / "slo.yml").write_bytes(rules)
    test = {
        "rule_files": ["slo.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", str(tmp_path / "test.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def s_labels(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


# --- the dashboard ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    return dashboards.render(CFG)["slo"]


def panel(board: dict[str, Any], title: str) -> dict[str, Any]:
    (found,) = [p for p in board["panels"] if p["title"] == title]
    return found


def test_each_burn_panel_draws_its_alerts_factors_and_plots_its_windows(
    board: dict[str, Any],
) -> None:
    for title, rates in (
        (s.PAGE_PANEL, CFG.slo_alerting.page),
        (s.TICKET_PANEL, CFG.slo_alerting.ticket),
    ):
        p = panel(board, title)
        lines = [step["value"] for step in p["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]
        assert lines == sorted({r.factor for r in rates}), title
        legends = {t["legendFormat"] for t in p["targets"]}
        assert legends == {w for r in rates for w in (r.long, r.short)}, title
        for target in p["targets"]:
            assert target["expr"].startswith(
                s.error_ratio(target["legendFormat"]) + '{job="$job", slo="$slo"}'
            )
            assert f"/ on (job, slo, sli) {s.ERROR_BUDGET}" in target["expr"]


def test_budget_left_and_exhaustion_read_the_period_window(board: dict[str, Any]) -> None:
    period = CFG.slo_alerting.period
    for title in ("Error budget left", "Error budget left over time", "Error budget left per SLO"):
        assert s.error_ratio(period) in panel(board, title)["targets"][0]["expr"], title
    exhaustion = panel(board, "Time to budget exhaustion")
    expr = exhaustion["targets"][0]["expr"]
    seconds = int(s.seconds(period))
    assert expr.startswith("clamp_max(") and expr.rstrip().endswith(f"{seconds}\n)")
    assert s.error_ratio(CFG.slo_alerting.page[0].long) in expr
    assert exhaustion["fieldConfig"]["defaults"]["unit"] == "s"


def test_the_slo_variable_lists_the_slos_of_the_chosen_job(board: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["slo"]["query"] == f'label_values({s.OBJECTIVE}{{job="$job"}}, slo)'
    assert variables["slo"]["current"]["value"] == CFG.slos[0].name


def test_alerts_link_to_the_panel_of_their_windows() -> None:
    ids = alerts.dashboard_panel_ids(CFG)
    uid = CFG.grafana.dashboard_uids["slo"]
    for alert in s.alerts(CFG):
        url = alerts.links.dashboard_url(CFG, alert, ids)
        title = s.PAGE_PANEL if alert.name == s.FAST_BURN else s.TICKET_PANEL
        assert url.endswith(f"/d/{uid}/?viewPanel={ids[(uid, title)]}")


# --- routing ---------------------------------------------------------------------------------


@pytest.mark.e2e
def test_an_slo_page_holds_back_the_ticket_of_the_same_slo_only(tmp_path: Path) -> None:
    require_tool("prometheus-alertmanager")
    from genonaut_monitoring.stack import Stack
    from tests.test_alertmanager_routing import _post_alerts

    job = CFG.jobs[0]
    burning, other = CFG.slos[0].name, CFG.slos[1].name
    with Stack(tmp_path, components={"alertmanager", "slack", "smtp"}) as stack:
        _post_alerts(
            stack.alertmanager_url,
            [
                {"alertname": s.FAST_BURN, "severity": "critical", "job": job, "slo": burning},
                {"alertname": s.SLOW_BURN, "severity": "warning", "job": job, "slo": burning},
                {"alertname": s.SLOW_BURN, "severity": "warning", "job": job, "slo": other},
            ],
        )
        # Inhibition is computed as alerts arrive; poll until all three are listed.
        stack.wait_for(lambda: len(_alerts(stack.alertmanager_url)) == 3, 10, "three alerts")
        found = {
            (a["labels"]["alertname"], a["labels"]["slo"]): bool(a["status"]["inhibitedBy"])
            for a in _alerts(stack.alertmanager_url)
        }
    assert found == {
        (s.FAST_BURN, burning): False,
        (s.SLOW_BURN, burning): True,
        (s.SLOW_BURN, other): False,
    }


def _alerts(url: str) -> list[dict[str, Any]]:
    import requests

    return list(requests.get(f"{url}/api/v2/alerts", timeout=5).json())


def test_windows_follow_the_config() -> None:
    cfg = replace(
        CFG,
        slo_alerting=replace(CFG.slo_alerting, page=(BurnRate("4h", "15m", 8.0),), ticket=()),
    )
    assert s.windows(cfg) == ["15m", "4h", "30d"]
    assert s.base_window(cfg) == "15m"
