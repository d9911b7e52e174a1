"""Who hears which alert: Alertmanager's receivers, and how severities map onto them.

One table drives both the Alertmanager route tree and Grafana's notification
policy tree, so the two can never route differently.
"""

from __future__ import annotations

from genonaut_monitoring.alerts.meta import TARGET_DOWN, WATCHDOG
from genonaut_monitoring.alerts.model import SEVERITIES

SLACK, EMAIL, WATCHDOG_RECEIVER = "slack", "email", "watchdog"

# Receiver -> severities it hears, in route order. Critical pages by email as well.
RECEIVER_SEVERITIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (EMAIL, ("critical",)),
    (SLACK, SEVERITIES),
)
# Alerts of an unknown severity still reach a human.
DEFAULT_RECEIVER = SLACK
GROUP_BY = ("alertname", "job")

__all__ = [
    "DEFAULT_RECEIVER",
    "EMAIL",
    "GROUP_BY",
    "RECEIVER_SEVERITIES",
    "SLACK",
    "TARGET_DOWN",
    "WATCHDOG",
    "WATCHDOG_RECEIVER",
]


def severity_match(severities: tuple[str, ...]) -> tuple[str, str, str]:
    """``(label, op, value)`` matching any of ``severities``: Grafana's object_matchers form."""
    if len(severities) == 1:
        return "severity", "=", severities[0]
    return "severity", "=~", "|".join(severities)


def severity_matcher(severities: tuple[str, ...]) -> str:
    """An Alertmanager matcher for any of ``severities``."""
    label, op, value = severity_match(severities)
    return f'{label}{op}"{value}"'
