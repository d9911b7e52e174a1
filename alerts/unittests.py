"""promtool unit tests, written from the cases in each alert's definition.

    >>> from genonaut_monitoring import alerts, config
    >>> cfg = config.CONFIG
    >>> ids = alerts.dashboard_panel_ids(cfg)
    >>> alert = alerts.by_name(cfg)["ApiHighErrorRate"]
    >>> document = promtool_file(cfg, alert, ids, ["rules/recording.yml", "rules/http.yml"])
    >>> # yaml.safe_dump(document) is a file for `promtool test rules`.

The firing case must hold once ``for`` has passed and not one evaluation
before; every quiet case must hold no alert at that time nor a ``for`` later.
The expected annotations are the definition's, rendered for the expected
labels and value (:mod:`~genonaut_monitoring.alerts.annotation_text`), so promtool
proves what a person will read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from genonaut_monitoring import config
from genonaut_monitoring.alerts import annotation_text, links
from genonaut_monitoring.alerts.cases import Cases, Expect, Scenario
from genonaut_monitoring.alerts.model import Alert, duration, seconds


def cases_of(alert: Alert) -> Cases:
    """The alert's cases; ValueError names an alert that has none (a build problem too)."""
    if alert.cases is None:
        raise ValueError(f"alert {alert.name}: no promtool cases (alerts/cases.py)")
    return alert.cases


def fire_time(cfg: config.Config, alert: Alert) -> float:
    """Seconds into the case at which the firing scenario must hold its alerts.

    rate() divides by the whole window, so a rate alert may only cross its threshold
    once the window has filled: a full window, then ``for``, then two evaluations.
    """
    cases = cases_of(alert)
    if cases.fires_at is not None:
        return seconds(cases.fires_at)
    step = seconds(cfg.intervals.evaluation_interval)
    return seconds(cfg.intervals.rate_window) + seconds(alert.for_) + 2 * step


def firing_labels(
    alert: Alert, expect: Expect, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The labels of an expected alert, as Prometheus sends them (alertname aside).

    ``extra`` holds labels the rules' packaging adds to every alert (the Kubernetes
    target's ``namespace``).
    """
    labels = {**expect.labels, **alert.labels, "severity": alert.severity, **(extra or {})}
    return dict(sorted(labels.items()))


def firing_annotations(
    cfg: config.Config,
    alert: Alert,
    ids: links.PanelIds,
    expect: Expect,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The annotations Prometheus renders for an expected alert; ValueError names it."""
    labels = firing_labels(alert, expect, extra)
    rendered = {}
    for key, template in sorted(links.annotations_for(cfg, alert, ids).items()):
        try:
            rendered[key] = annotation_text.render(template, labels, expect.value)
        except annotation_text.TemplateError as exc:
            raise ValueError(f"alert {alert.name}: annotation {key}: {exc}") from None
    return rendered


def annotation_problems(cfg: config.Config, alert: Alert) -> list[str]:
    """Annotations that cannot be rendered for the alerts its cases expect."""
    if alert.cases is None:
        return []
    problems = []
    for expect in alert.cases.fires.alerts:
        labels = firing_labels(alert, expect)
        for key in ("summary", "description"):
            try:
                annotation_text.render(getattr(alert, key), labels, expect.value)
            except annotation_text.TemplateError as exc:
                problems.append(f"alert {alert.name}: {key}: {exc}")
    return list(dict.fromkeys(problems))


def input_series(cfg: config.Config, scenario: Scenario, until: float) -> list[dict[str, str]]:
    """The scenario's series, sampled every evaluation interval until ``until`` seconds."""
    step = seconds(cfg.intervals.evaluation_interval)
    points = math.ceil(until / step) + 2
    return [s for series in scenario.series for s in series.input_series(step, points)]


def _input(cfg: config.Config, alert: Alert, scenario: Scenario) -> list[dict[str, str]]:
    """Samples for the latest evaluation of the alert's tests, a rate window past it."""
    step = seconds(cfg.intervals.evaluation_interval)
    last = fire_time(cfg, alert) + seconds(alert.for_) + step
    return input_series(cfg, scenario, last + seconds(cfg.intervals.rate_window))


def promtool_tests(
    cfg: config.Config,
    alert: Alert,
    ids: links.PanelIds,
    extra_labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The promtool test cases of one alert, each named as a sentence; ``extra_labels``
    are labels the rules' packaging adds to every alert."""
    cases = cases_of(alert)
    step, hold = seconds(cfg.intervals.evaluation_interval), seconds(alert.for_)
    at = fire_time(cfg, alert)
    interval = cfg.intervals.evaluation_interval
    checks: list[dict[str, Any]] = []
    if hold > step:
        checks.append(
            {"eval_time": duration(hold - step), "alertname": alert.name, "exp_alerts": []}
        )
    checks.append(
        {
            "eval_time": duration(at),
            "alertname": alert.name,
            "exp_alerts": [
                {
                    "exp_labels": firing_labels(alert, expect, extra_labels),
                    "exp_annotations": firing_annotations(cfg, alert, ids, expect, extra_labels),
                }
                for expect in cases.fires.alerts
            ],
        }
    )
    found = [
        {
            "name": (
                f"{alert.name} fires after {alert.for_} when {cases.fires.what}, and not before."
            ),
            "interval": interval,
            "input_series": _input(cfg, alert, cases.fires),
            "alert_rule_test": checks,
        }
    ]
    for quiet in cases.quiet:
        found.append(
            {
                "name": f"{alert.name} stays silent when {quiet.what}.",
                "interval": interval,
                "input_series": _input(cfg, alert, quiet),
                "alert_rule_test": [
                    {"eval_time": duration(t), "alertname": alert.name, "exp_alerts": []}
                    for t in (at, at + hold + step)
                ],
            }
        )
    return found


def promtool_file(
    cfg: config.Config,
    alert: Alert,
    ids: links.PanelIds,
    rule_files: list[str],
    extra_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A whole ``promtool test rules`` file for one alert, reading ``rule_files``."""
    return {
        "rule_files": rule_files,
        "evaluation_interval": cfg.intervals.evaluation_interval,
        "tests": promtool_tests(cfg, alert, ids, extra_labels),
    }
