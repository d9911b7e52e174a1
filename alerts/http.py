"""HTTP alerts: the API answers with errors, or slowly."""

from __future__ import annotations

import math

from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording
from genonaut_monitoring.alerts.cases import Cases, Counter, Expect, Scenario, target
from genonaut_monitoring.alerts.factories import above, quantile_cases
from genonaut_monitoring.alerts.model import Alert, Group, Panel
from genonaut_monitoring.config import fmt_ratio, fmt_seconds
from genonaut_monitoring.exporters import catalogue as c


def high_error_rate(cfg: config.Config) -> Alert:
    t, w = cfg.thresholds, cfg.intervals.rate_window
    content = target(cfg, method="GET", route="/api/v1/content")

    def traffic(errors: int) -> list[Counter]:
        """100 requests a second, ``errors`` of them answered 500."""
        return [
            Counter(c.HTTP_REQUESTS.name, {**content, "status": "200"}, 100 - errors),
            Counter(c.HTTP_REQUESTS.name, {**content, "status": "500"}, errors),
        ]

    hot, cold = min(100, math.ceil(200 * t.error_ratio)), math.floor(50 * t.error_ratio)
    return above(
        "ApiHighErrorRate",
        recording.http_error_ratio(cfg),
        t.error_ratio,
        for_=cfg.durations.api_high_error_rate,
        severity="critical",
        summary=f"More than {fmt_ratio(t.error_ratio)} of API requests fail with a 5xx status.",
        description=(
            "{{ $value | humanizePercentage }} of requests to {{ $labels.job }} "
            f"were answered with a 5xx status over the last {w}."
        ),
        panel=Panel("main", "Error rate"),
        value_format="humanizePercentage",
        cases=Cases(
            fires=Scenario(
                f"{hot}% of requests fail", traffic(hot), [Expect({"job": cfg.jobs[0]}, hot / 100)]
            ),
            quiet=[Scenario(f"{cold}% of requests fail", traffic(cold))],
        ),
    )


def high_latency(cfg: config.Config) -> Alert:
    t, w = cfg.thresholds, cfg.intervals.rate_window
    return above(
        "ApiHighLatency",
        recording.http_duration_p95(cfg),
        t.latency_p95_seconds,
        for_=cfg.durations.api_high_latency,
        severity="warning",
        summary=f"API p95 response time is above {fmt_seconds(t.latency_p95_seconds)}.",
        description=(
            "p95 response time of {{ $labels.route }} on {{ $labels.job }} is "
            f"{{{{ $value | humanizeDuration }}}} over the last {w}."
        ),
        panel=Panel("main", "p95 response time by route"),
        value_format="humanizeDuration",
        cases=quantile_cases(
            c.HTTP_REQUEST_DURATION,
            t.latency_p95_seconds,
            target(cfg, method="GET", route="/api/v1/content/{item_id}"),
            ("job", "route"),
        ),
    )


def alerts(cfg: config.Config) -> list[Alert]:
    return [high_error_rate(cfg), high_latency(cfg)]


def group(cfg: config.Config) -> Group:
    return Group("http", tuple(alerts(cfg)))
