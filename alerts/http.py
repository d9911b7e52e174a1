"""HTTP alerts: the API answers with errors, or slowly."""

from __future__ import annotations

from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording
from genonaut_monitoring.alerts.factories import above
from genonaut_monitoring.alerts.model import Alert, Group, Panel
from genonaut_monitoring.config import fmt_ratio, fmt_seconds


def alerts(cfg: config.Config) -> list[Alert]:
    t, d, w = cfg.thresholds, cfg.durations, cfg.intervals.rate_window
    return [
        above(
            "ApiHighErrorRate",
            recording.http_error_ratio(cfg),
            t.error_ratio,
            for_=d.api_high_error_rate,
            severity="critical",
            summary=f"More than {fmt_ratio(t.error_ratio)} of API requests fail with a 5xx status.",
            description=(
                "{{ $value | humanizePercentage }} of requests to {{ $labels.job }} "
                f"were answered with a 5xx status over the last {w}."
            ),
            panel=Panel("main", "Error rate"),
            value_format="humanizePercentage",
        ),
        above(
            "ApiHighLatency",
            recording.http_duration_p95(cfg),
            t.latency_p95_seconds,
            for_=d.api_high_latency,
            severity="warning",
            summary=f"API p95 response time is above {fmt_seconds(t.latency_p95_seconds)}.",
            description=(
                "p95 response time of {{ $labels.route }} on {{ $labels.job }} is "
                f"{{{{ $value | humanizeDuration }}}} over the last {w}."
            ),
            panel=Panel("main", "p95 response time by route"),
            value_format="humanizeDuration",
        ),
    ]


def group(cfg: config.Config) -> Group:
    return Group("http", tuple(alerts(cfg)))
