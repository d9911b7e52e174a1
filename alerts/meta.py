"""Alerts about monitoring itself: the API cannot be scraped, and the Watchdog heartbeat."""

from __future__ import annotations

from genonaut_monitoring import config
from genonaut_monitoring.alerts.cases import Cases, Expect, Gauge, Scenario, target, target_of
from genonaut_monitoring.alerts.factories import absent_alert, down_alert
from genonaut_monitoring.alerts.model import Alert, Group, Panel
from genonaut_monitoring.alerts.promql import job_selector
from genonaut_monitoring.exporters import catalogue as c

WATCHDOG = "Watchdog"
TARGET_DOWN = "ApiTargetDown"


def watchdog() -> Alert:
    return Alert(
        name=WATCHDOG,
        # Always true: a receiver that stops hearing it knows the pipeline is broken.
        expr="vector(1)",
        for_="0s",
        severity="info",
        summary="The alerting pipeline is working: this alert always fires.",
        description=(
            "Prometheus evaluates rules and Alertmanager delivers them (value {{ $value }}); "
            "if this heartbeat stops arriving, no other alert can arrive either."
        ),
        panel=Panel("main", "Firing alerts"),
        # It fires on no input at all, so there is no quiet case.
        cases=Cases(fires=Scenario("nothing else happens", [], [Expect({}, 1)])),
    )


def target_down(cfg: config.Config) -> Alert:
    api = target(cfg)
    return down_alert(
        TARGET_DOWN,
        "API",
        job_selector(cfg),
        for_=cfg.durations.api_target_down,
        panel=Panel("main", "Targets up"),
        cases=Cases(
            fires=Scenario("every scrape fails", [Gauge(c.UP.name, api, 0)], [Expect(api, 0)]),
            quiet=[Scenario("every scrape succeeds", [Gauge(c.UP.name, api, 1)])],
        ),
    )


def target_missing(cfg: config.Config) -> Alert:
    other = {"job": "prometheus", "instance": "localhost:9090"}
    return absent_alert(
        "ApiTargetMissing",
        "API",
        cfg.jobs,
        for_=cfg.durations.api_target_down,
        panel=Panel("main", "Targets up"),
        cases=Cases(
            fires=Scenario(
                "only another job is scraped",
                [Gauge(c.UP.name, other, 1)],
                [Expect({"job": job}, 1) for job in cfg.jobs],
            ),
            quiet=[
                Scenario(
                    "every service's job is scraped",
                    [Gauge(c.UP.name, target_of(service), 1) for service in cfg.services],
                )
            ],
        ),
    )


def alerts(cfg: config.Config) -> list[Alert]:
    return [target_down(cfg), target_missing(cfg), watchdog()]


def group(cfg: config.Config) -> Group:
    return Group("meta", tuple(alerts(cfg)))
