"""Alerts about monitoring itself: the API cannot be scraped, and the Watchdog heartbeat."""

from __future__ import annotations

from genonaut_monitoring import config
from genonaut_monitoring.alerts.factories import absent_alert, down_alert
from genonaut_monitoring.alerts.model import Alert, Group, Panel
from genonaut_monitoring.alerts.promql import job_selector

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
    )


def alerts(cfg: config.Config) -> list[Alert]:
    selector, for_ = job_selector(cfg), cfg.durations.api_target_down
    return [
        down_alert(TARGET_DOWN, "API", selector, for_=for_, panel=Panel("main", "Targets up")),
        absent_alert(
            "ApiTargetMissing", "API", selector, for_=for_, panel=Panel("main", "Targets up")
        ),
        watchdog(),
    ]


def group(cfg: config.Config) -> Group:
    return Group("meta", tuple(alerts(cfg)))
