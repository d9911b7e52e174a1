"""Every alert's notification to every receiver, rendered by amtool, against its golden file.

tests/golden/notifications/<Alert>.<receiver>.txt keeps what each alert's
promtool case would send, firing and resolved; `make goldens` rewrites them
after a deliberate change. A new alert's previews are written on the first run
(commit them; under CI=true a missing one fails, as CI checks only committed
previews); previews of alerts that are gone fail until removed. The
end-to-end test (test_e2e_alerts.py) checks that Alertmanager delivers exactly
what these renderings say.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from pathlib import Path

import pytest

from genonaut_monitoring import alerts, builder, config
from genonaut_monitoring.alerts import previews, unittests
from genonaut_monitoring.alerts.messages import RECEIVERS
from tests.conftest import IN_CI, ROOT, require_tool

GOLDEN = ROOT / "tests" / "golden" / "notifications"
ALERTS = alerts.by_name(config.CONFIG)


@functools.cache
def rendered() -> dict[tuple[str, str], previews.Preview]:
    require_tool("amtool")
    found, problems = previews.render(config.CONFIG)
    assert problems == []
    return found


@pytest.mark.parametrize("receiver", RECEIVERS)
@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_each_notification_matches_its_golden_file(alert: str, receiver: str) -> None:
    preview = rendered()[alert, receiver]
    path = GOLDEN / preview.file_name
    if not path.exists():
        # A new alert: its previews are written here, to be reviewed and committed.
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(preview.text())
        if IN_CI:
            # CI checks the committed previews: one written here was never reviewed.
            pytest.fail(f"{path.relative_to(ROOT)} was missing: written now, review and commit it")
    assert path.read_text() == preview.text(), (
        f"{path.relative_to(ROOT)} is not what the templates render now: if the change is "
        "meant, run `make goldens` and review the difference"
    )


def test_no_golden_file_outlives_its_alert_or_receiver() -> None:
    expected = {f"{alert}.{receiver}.txt" for alert in ALERTS for receiver in RECEIVERS}
    stale = sorted(p.name for p in GOLDEN.glob("*") if p.name not in expected)
    assert stale == [], f"previews of no alert or receiver (`make goldens` removes them): {stale}"


def test_no_golden_file_shows_no_value_or_an_empty_field() -> None:
    for path in sorted(GOLDEN.glob("*.txt")):
        text = path.read_text()
        assert "<no value>" not in text, path.name
        assert not re.search(r"^(Subject|From|To|title|subject):\s*$", text, re.M), path.name


def _silence_filter(text: str, base: str) -> dict[str, str]:
    """The matchers of the Alertmanager silence link in ``text``, as {label: value}."""
    found = re.search(re.escape(base) + r"/#/silences/new\?filter=([^|>\s\"]+)", text)
    assert found, f"no silence link to {base} in:\n{text}"
    matchers = urllib.parse.unquote(found.group(1))
    assert matchers.startswith("{") and matchers.endswith("}"), matchers
    pairs = re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', matchers[1:-1])
    assert ",".join(f'{k}="{v}"' for k, v in pairs) == matchers[1:-1], matchers
    return {k: v.encode().decode("unicode_escape") for k, v in pairs}


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_messages_name_the_route_and_link_the_silence_and_the_dashboard(alert: str) -> None:
    definition, cfg = ALERTS[alert], config.CONFIG
    expected = previews.fired(cfg, definition, alerts.dashboard_panel_ids(cfg))
    am = cfg.notifications.alertmanager_external_url
    for receiver in RECEIVERS:
        messages = rendered()[alert, receiver].notifications
        # Firing and resolved, for each group Alertmanager makes of the expected alerts.
        assert len(messages) == 2 * len(previews.groups(expected)), (alert, receiver)
        for message in messages.values():
            text = "\n".join(
                str(v) for v in [*message.values(), *message.get("attachments", [{}])[0].values()]
            )
            for fired in expected:
                assert fired.annotations["dashboard_url"] in text, (alert, receiver)
                assert fired.annotations["runbook_url"] in text, (alert, receiver)
                if "route" in fired.labels:
                    assert f" on {fired.labels['route']}" in text, (alert, receiver)
                    assert re.search(rf"Route:\**\s+{re.escape(fired.labels['route'])}", text)
            if receiver in ("email", "slack"):
                # The silence matches exactly the alert's labels.
                assert _silence_filter(text, am) in [dict(f.labels) for f in expected]
            else:
                assert f"{cfg.grafana.url}/alerting/silence/new?" in text


def test_a_template_error_fails_the_build_naming_the_alert_and_the_receiver(
    tmp_path: Path,
) -> None:
    require_tool("amtool")
    cfg = config.TEST_CONFIG
    builder.write_tree(tmp_path, builder.render(cfg))
    assert previews.validate(tmp_path, cfg) == []
    first = alerts.all_alerts(cfg)[0].name
    template = tmp_path / "alertmanager" / "templates" / "genonaut.tmpl"
    text = template.read_text()
    # A field the data does not have (an error), and an annotation that does not exist
    # (Alertmanager prints nothing: an empty field).
    text = text.replace("<td>Status</td><td>{{ .Status }}", "<td>Status</td><td>{{ .State }}")
    text = text.replace("*Value:* {{ .Annotations.value }}", "*Value:* {{ .Annotations.valu }}")
    template.write_text(text)
    problems = previews.validate(tmp_path, cfg)
    assert any(
        p.startswith(f"notification {first} to email (firing): amtool template render:")
        and "can't evaluate field State" in p
        for p in problems
    ), problems
    assert (
        f"notification {first} to slack (resolved): attachments.text has an empty field: '*Value:*'"
    ) in problems
    assert not any(" to grafana-" in p for p in problems)  # Grafana's templates are its own


def test_an_annotation_that_cannot_render_names_the_alert(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from genonaut_monitoring.alerts import http

    original = http.alerts

    def broken(cfg: config.Config) -> list[alerts.Alert]:
        found = original(cfg)
        return [replace(found[0], description="{{ $labels.nope }} {{ $value }}"), *found[1:]]

    monkeypatch.setattr(http, "alerts", broken)
    cfg = config.CONFIG
    alert = http.alerts(cfg)[0]
    with pytest.raises(ValueError, match=f"alert {alert.name}: annotation description:"):
        previews.fired(cfg, alert, alerts.dashboard_panel_ids(cfg))
    built = alerts.definition_problems(cfg)
    assert any(p.startswith(f"alert {alert.name}: description:") for p in built), built


def test_previews_follow_the_expected_alerts_of_each_case() -> None:
    """Labels and annotations shown are the ones the promtool case proves."""
    cfg = config.CONFIG
    ids = alerts.dashboard_panel_ids(cfg)
    for alert in alerts.all_alerts(cfg):
        shown = previews.fired(cfg, alert, ids)
        cases = unittests.cases_of(alert)
        assert [dict(f.labels) for f in shown] == [
            {"alertname": alert.name, **unittests.firing_labels(alert, e)}
            for e in cases.fires.alerts
        ]
