"""End to end: a fault in the demo API reaches Slack and email, and so does its resolution.

Real processes on loopback: the demo API (faults enabled), Prometheus and
Alertmanager with the generated configs, an aiosmtpd server and the Slack
stand-in. The Slack stand-in refuses the first posts with HTTP 500, so the
test also proves Alertmanager's retry delivers and nothing is lost.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
import requests

from genonaut_monitoring import alerts, config
from genonaut_monitoring.alerts.model import seconds
from tests.conftest import require_tool

ALERT = "ApiHighErrorRate"
SLACK_FAILURES = 3
# Generous: loaded CI machines are slow; the point is the order of magnitude.
PATIENCE = 3.0


def notification_bound(cfg: config.Config) -> float:
    """Seconds from fault to notification the intervals allow, at worst.

    A scrape to see the errors, an evaluation of the recording rules and one of
    the alert (they are separate groups), ``for``, Alertmanager's group_wait,
    plus the rate window: until errors fill enough of it, the ratio stays low.
    """
    i = cfg.intervals
    return (
        seconds(i.api_scrape_interval)
        + 2 * seconds(i.evaluation_interval)
        + seconds(cfg.durations.api_high_error_rate)
        + seconds(i.group_wait)
        + seconds(i.rate_window)
    )


def resolve_bound(cfg: config.Config) -> float:
    """Seconds from clearing the fault to the resolved notification, at worst.

    The errors must leave the rate window, then a scrape and two evaluations,
    then the next group_interval flush sends the resolution.
    """
    i = cfg.intervals
    return (
        seconds(i.rate_window)
        + seconds(i.api_scrape_interval)
        + 2 * seconds(i.evaluation_interval)
        + seconds(i.group_interval)
    )


class Traffic:
    """Steady GETs against the demo API from a thread, bounded in rate and time."""

    def __init__(self, api_url: str, per_second: float = 20, limit_seconds: float = 180) -> None:
        self.api_url, self.pause, self.limit = api_url, 1 / per_second, limit_seconds
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        paths = ["/api/v1/content?page=1&page_size=10", "/api/v1/content/cursor?limit=10"]
        with requests.Session() as session:
            n = 0
            while not self._stop.is_set() and time.monotonic() < deadline:
                response = session.get(self.api_url + paths[n % 2], timeout=5)
                self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
                n += 1
                self._stop.wait(self.pause)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def stack(tmp_path: Any) -> Iterator[Any]:
    for tool in ("prometheus", "prometheus-alertmanager", "promtool", "amtool"):
        require_tool(tool)
    from genonaut_monitoring.stack import Stack

    with Stack(
        tmp_path, cfg=config.TEST_CONFIG, api_env={"DEMO_FAULTS": "1", "DEMO_SEED_ROWS": "2000"}
    ) as running:
        yield running


def slack_messages(stack: Any, status: str) -> list[dict[str, Any]]:
    """Slack payloads about ALERT with ``status`` (firing or resolved), in arrival order."""
    prefix = f"[{status.upper()}"
    return [
        p
        for p in list(stack.slack.requests)
        if p["attachments"][0]["title"].startswith(prefix)
        and p["attachments"][0]["title"].endswith(f"] {ALERT} (critical)")
    ]


def emails(stack: Any, status: str) -> list[EmailMessage]:
    prefix = f"[{status.upper()}"
    return [
        m
        for m in list(stack.smtp.messages)
        if m["Subject"].startswith(prefix) and m["Subject"].endswith(f"] {ALERT} (critical)")
    ]


def wait_timed(stack: Any, predicate: Any, timeout: float, what: str, since: float) -> float:
    """Wait for ``predicate``; return seconds since ``since`` at which it held."""
    stack.wait_for(predicate, timeout, what)
    return time.monotonic() - since


def alertmanager_metric(stack: Any, name: str, integration: str) -> float:
    text = requests.get(f"{stack.alertmanager_url}/metrics", timeout=5).text
    match = re.search(rf'^{name}{{integration="{integration}"}} (\S+)$', text, re.M)
    assert match, f"{name} for {integration} not in Alertmanager's /metrics"
    return float(match.group(1))


def description(rule: dict[str, Any], value: str) -> str:
    """The rule's description as Prometheus renders it for the job, showing ``value``."""
    text: str = rule["annotations"]["description"]
    return text.replace("{{ $value | humanizePercentage }}", value).replace(
        "{{ $labels.job }}", config.TEST_CONFIG.jobs[0]
    )


def expected_slack_text(rule: dict[str, Any], status: str, value: str) -> str:
    notes = rule["annotations"]
    return (
        f"*{notes['summary']}*\n"
        f"{description(rule, value)}\n"
        f"*Status:* {status}  *Severity:* critical  *Value:* {value}\n"
        f"*Labels:* job={config.TEST_CONFIG.jobs[0]} \n"
        f"<{notes['runbook_url']}|Runbook>  <{notes['dashboard_url']}|Dashboard>\n"
    )


PERCENT = re.compile(r"\*Value:\* (\d+(?:\.\d+)?%)")


def check_slack_payload(payload: dict[str, Any], rule: dict[str, Any], status: str) -> float:
    """Assert the whole payload Slack's incoming webhook gets; return the value shown (%)."""
    attachment = payload["attachments"][0]
    found = PERCENT.search(attachment["text"])
    assert found, attachment["text"]
    value = found.group(1)
    title = f"[{status.upper()}{':1' if status == 'firing' else ''}] {ALERT} (critical)"
    assert payload == {
        "channel": config.TEST_CONFIG.notifications.slack_channel,
        "username": "Genonaut Alertmanager",
        "attachments": [
            {
                "title": title,
                "title_link": rule["annotations"]["dashboard_url"],
                "text": expected_slack_text(rule, status, value),
                "fallback": f"{title}: {rule['annotations']['summary']}",
                "callback_id": "",
                "footer": "genonaut-monitoring",
                "color": "danger" if status == "firing" else "good",
                "mrkdwn_in": ["fallback", "pretext", "text"],
            }
        ],
    }
    return float(value.rstrip("%"))


def check_email(message: EmailMessage, rule: dict[str, Any], status: str, cfg: Any) -> None:
    notes = rule["annotations"]
    title = f"[{status.upper()}{':1' if status == 'firing' else ''}] {ALERT} (critical)"
    assert message["Subject"] == title
    assert message["From"] == cfg.notifications.email_from
    assert message["To"] == cfg.notifications.email_to
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None and html_part is not None
    text = text_part.get_content().replace("\r\n", "\n")
    value = re.search(r"^Value: (\d+(?:\.\d+)?%)$", text, re.M)
    assert value, text
    assert text == (
        f"{title}\n\n{notes['summary']}\n{description(rule, value.group(1))}\n"
        f"Status: {status}\nSeverity: critical\nValue: {value.group(1)}\n"
        f"Labels: job={cfg.jobs[0]} \nRunbook: {notes['runbook_url']}\n"
        f"Dashboard: {notes['dashboard_url']}\n"
    )
    html = html_part.get_content()
    assert f'<a href="{notes["runbook_url"]}">Runbook</a>' in html
    assert f'<th align="left" colspan="2">{notes["summary"]}</th>' in html


@pytest.mark.e2e
@pytest.mark.slow
def test_error_rate_alert_reaches_slack_and_email_then_resolves(stack: Any) -> None:
    cfg = stack.cfg
    rule = next(r for r in _rules(cfg) if r.get("alert") == ALERT)
    stack.wait_for(lambda: stack.query(f'up{{job="{cfg.jobs[0]}"}} == 1'), 30, "the first scrape")
    with Traffic(stack.api_url) as traffic:
        ratio = alerts.recording.http_error_ratio(cfg)
        stack.wait_for(lambda: stack.query(f"{ratio} == 0"), 60, f"{ratio} to read 0")
        stack.slack.fail_next(SLACK_FAILURES)

        response = requests.put(
            f"{stack.api_url}/debug/faults",
            json={"error_rate": 1.0, "latency_seconds": 0.0, "route_prefix": "/api/"},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        fault_at = time.monotonic()
        bound = notification_bound(cfg)
        patience = PATIENCE * bound
        to_email = wait_timed(
            stack, lambda: emails(stack, "firing"), patience, "the firing email", fault_at
        )
        to_slack = wait_timed(
            stack, lambda: slack_messages(stack, "firing"), patience, "the Slack message", fault_at
        )
        failed_attempts = stack.slack.attempts - len(stack.slack.requests)

        assert requests.delete(f"{stack.api_url}/debug/faults", timeout=5).status_code == 200
        cleared_at = time.monotonic()
        rbound = resolve_bound(cfg)
        resolved_email = wait_timed(
            stack,
            lambda: emails(stack, "resolved"),
            PATIENCE * rbound,
            "the resolved email",
            cleared_at,
        )
        resolved_slack = wait_timed(
            stack,
            lambda: slack_messages(stack, "resolved"),
            PATIENCE * rbound,
            "the resolved Slack message",
            cleared_at,
        )

    print(
        f"\n{ALERT}: fault -> email {to_email:.1f}s, -> Slack {to_slack:.1f}s "
        f"(after {failed_attempts} refused posts); bound from the intervals {bound:.0f}s. "
        f"Clear -> resolved email {resolved_email:.1f}s, Slack {resolved_slack:.1f}s; "
        f"bound {rbound:.0f}s. Traffic: {dict(sorted(traffic.statuses.items()))}"
    )
    firing_value = check_slack_payload(slack_messages(stack, "firing")[0], rule, "firing")
    assert firing_value > cfg.thresholds.error_ratio * 100
    check_slack_payload(slack_messages(stack, "resolved")[0], rule, "resolved")
    check_email(emails(stack, "firing")[0], rule, "firing", cfg)
    check_email(emails(stack, "resolved")[0], rule, "resolved", cfg)

    # Retries: exactly the refused posts failed, and the message still arrived once.
    assert failed_attempts == SLACK_FAILURES
    assert (
        alertmanager_metric(stack, "alertmanager_notification_requests_failed_total", "slack")
        == SLACK_FAILURES
    )
    assert len(slack_messages(stack, "firing")) == 1
    assert len(emails(stack, "firing")) == 1
    assert max(to_email, to_slack) <= PATIENCE * bound
    assert max(resolved_email, resolved_slack) <= PATIENCE * rbound


def _rules(cfg: config.Config) -> list[dict[str, Any]]:
    import yaml

    rules = []
    for path, content in alerts.outputs(cfg).items():
        if path.startswith("prometheus/rules/"):
            for group in yaml.safe_load(content)["groups"]:
                rules.extend(group["rules"])
    return rules
