"""End to end: a fault in the demo API reaches Slack and email, and so does its resolution.

Real processes on loopback: the demo API (faults enabled), Prometheus and
Alertmanager with the generated configs, an aiosmtpd server and the Slack
stand-in. The Slack stand-in refuses the first posts with HTTP 500, so the
test also proves Alertmanager's retry delivers and nothing is lost.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
import requests

from genonaut_monitoring import alerts, config
from genonaut_monitoring.alerts import annotation_text, previews
from genonaut_monitoring.alerts.model import seconds
from tests.conftest import ROOT, require_tool

GOLDEN = ROOT / "tests" / "golden" / "notifications"

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
    return [
        p
        for p in list(stack.slack.requests)
        if p["attachments"][0]["callback_id"].startswith(f"{ALERT}/")
        and p["attachments"][0]["title"].startswith(f"[{status.upper()}")
    ]


def emails(stack: Any, status: str) -> list[EmailMessage]:
    return [
        m
        for m in list(stack.smtp.messages)
        if m["Subject"].startswith(f"[{status.upper()}") and f"] {ALERT} (" in m["Subject"]
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


def email_message(message: EmailMessage) -> dict[str, str]:
    """A received email as the previews describe one: headers, text and HTML parts."""
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None and html_part is not None
    return {
        "Subject": str(message["Subject"]),
        "From": str(message["From"]),
        "To": str(message["To"]),
        "text/plain": text_part.get_content().replace("\r\n", "\n"),
        "text/html": html_part.get_content().replace("\r\n", "\n"),
    }


PERCENT = re.compile(r"\*Value:\* (\d+(?:\.\d+)?)%")


def shown_value(payload: dict[str, Any]) -> float:
    """The alert's $value as the Slack message shows it (ALERT's value is a percentage)."""
    found = PERCENT.search(payload["attachments"][0]["text"])
    assert found, payload
    return float(found.group(1)) / 100


def in_golden_terms(message: Any, stack: Any, value: float) -> Any:
    """``message`` with what differs between this run and the golden's default profile
    (the value measured, the test profile's rate window, this Alertmanager's URL)
    replaced by the golden's."""
    cfg, shipped = stack.cfg, config.CONFIG
    ids = alerts.dashboard_panel_ids(shipped)
    golden_value = previews.fired(shipped, alerts.by_name(shipped)[ALERT], ids)[0]
    text = json.dumps(message)
    for here, there in (
        (annotation_text.humanize_percentage(value), golden_value.annotations["value"]),
        (
            f"over the last {cfg.intervals.rate_window}.",
            f"over the last {shipped.intervals.rate_window}.",
        ),
        (
            cfg.notifications.alertmanager_external_url,
            shipped.notifications.alertmanager_external_url,
        ),
    ):
        text = text.replace(here, there)
    return json.loads(text)


def check_against_previews(stack: Any) -> None:
    """Delivered messages are the previews rendered from this stack's own build, and the
    golden files once the run's value, window and URL are put back."""
    delivered = {
        "slack": {s: slack_messages(stack, s)[0] for s in previews.STATUSES},
        "email": {s: email_message(emails(stack, s)[0]) for s in previews.STATUSES},
    }
    golden: dict[str, dict[str, Any]] = {"slack": {}, "email": {}}
    for status in previews.STATUSES:
        value = shown_value(delivered["slack"][status])
        rendered, problems = previews.render(stack.cfg, stack.out, [ALERT], value)
        assert problems == []
        for receiver, messages in delivered.items():
            assert messages[status] == rendered[ALERT, receiver].notifications[status], (
                f"{receiver} ({status}) delivered is not the preview of this build"
            )
            golden[receiver][status] = in_golden_terms(messages[status], stack, value)
    for receiver, messages in golden.items():
        path = GOLDEN / f"{ALERT}.{receiver}.txt"
        assert previews.Preview(ALERT, receiver, messages).text() == path.read_text(), path


def check_silence_link(stack: Any) -> None:
    """The delivered silence link selects exactly the firing alert in the real Alertmanager."""
    text = slack_messages(stack, "firing")[0]["attachments"][0]["text"]
    found = re.search(r"/#/silences/new\?filter=([^|>]+)\|Silence>", text)
    assert found, text
    group = urllib.parse.unquote(found.group(1))
    assert group.startswith("{") and group.endswith("}"), group
    # The UI reads the {...} group; the API takes its matchers one filter each, parsed by
    # Alertmanager's own matcher parser.
    matchers = re.findall(r'\w+="(?:[^"\\]|\\.)*"', group)
    assert "{" + ",".join(matchers) + "}" == group, group
    response = requests.get(
        f"{stack.alertmanager_url}/api/v2/alerts", params={"filter": matchers}, timeout=5
    )
    assert response.status_code == 200, (matchers, response.text)
    names = [a["labels"]["alertname"] for a in response.json()]
    assert names == [ALERT], (matchers, names)


@pytest.mark.e2e
@pytest.mark.slow
def test_error_rate_alert_reaches_slack_and_email_then_resolves(stack: Any) -> None:
    cfg = stack.cfg
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
        check_silence_link(stack)

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
    firing_value = shown_value(slack_messages(stack, "firing")[0])
    assert firing_value > cfg.thresholds.error_ratio
    check_against_previews(stack)
    # Each payload Slack got is also a file under the stack's slack/ folder.
    assert [json.loads(p.read_text()) for p in stack.slack.paths] == stack.slack.requests

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
