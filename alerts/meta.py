"""Alerts about monitoring itself: the API cannot be scraped, its metrics are being lost,
and the Watchdog heartbeat."""

from __future__ import annotations

from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording
from genonaut_monitoring.alerts.cases import Cases, Expect, Gauge, Scenario, target, target_of
from genonaut_monitoring.alerts.factories import (
    EARLIER,
    Told,
    above,
    absent_alert,
    down_alert,
    increase_cases,
    up_cases,
)
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
    return down_alert(
        TARGET_DOWN,
        "API",
        job_selector(cfg),
        for_=cfg.durations.api_target_down,
        panel=Panel("main", "Targets up"),
        cases=up_cases(
            c.UP.name, target(cfg), down="every scrape fails", up="every scrape succeeds"
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


def scrape_empty(cfg: config.Config) -> Alert:
    api, selector = target(cfg), job_selector(cfg)

    def scraped(up: float, samples: float) -> list[Gauge]:
        return [Gauge(c.UP.name, api, up), Gauge(c.SCRAPE_SAMPLES.name, api, samples)]

    return Alert(
        name="MetricsScrapeEmpty",
        # The exporter always exposes series (process metrics, zeros of its counters), so
        # a successful scrape with none means /metrics read nothing: in multiprocess mode,
        # a directory that is missing, or was read-only or full when the workers started. No
        # other API alert can fire then, MetricsWritesDropped included (its counter lives
        # in that directory); a failed scrape is ApiTargetDown's.
        expr=(
            f"{c.SCRAPE_SAMPLES.name}{selector} == 0\nand on (job, instance)\n"
            f"{c.UP.name}{selector} == 1"
        ),
        for_=cfg.durations.metrics_scrape_empty,
        # Critical, like ApiTargetMissing: every API alert is blind to the instance.
        severity="critical",
        summary="An API target answers its scrapes with no metrics at all.",
        description=(
            "{{ $labels.instance }} (job {{ $labels.job }}) answered every scrape for "
            f"{cfg.durations.metrics_scrape_empty} with {{{{ $value }}}} samples: its metrics "
            "directory (PROMETHEUS_MULTIPROC_DIR) is missing, or was read-only or full when "
            "the workers started."
        ),
        panel=Panel("main", "Samples per scrape"),
        cases=Cases(
            fires=Scenario(
                "every scrape succeeds with no samples", scraped(1, 0), [Expect(api, 0)]
            ),
            quiet=[
                Scenario("every scrape brings samples", scraped(1, 120)),
                Scenario("every scrape fails", scraped(0, 0)),
            ],
        ),
    )


def writes_dropped(cfg: config.Config) -> Alert:
    w, for_ = cfg.intervals.rate_window, cfg.durations.metrics_writes_dropped
    # Every reason the ledger counts, created at zero by instrument().
    reasons = {reason: target(cfg, reason=reason) for reason in c.WRITE_DROP_REASONS}
    full = reasons.pop("full")
    return above(
        "MetricsWritesDropped",
        # Any dropped write: a value that could not reach the multiprocess directory is
        # missing from every scrape until it can, so charts and alerts undercount now.
        recording.writes_dropped_increase(cfg),
        0,
        for_=for_,
        # The API serves every request; its numbers are wrong: a ticket, not a page.
        severity="warning",
        summary=(
            "API workers cannot write metric values to their multiprocess directory, "
            "so charts and alerts undercount."
        ),
        description=(
            "{{ $value | humanize }} metric writes on {{ $labels.instance }} (job "
            "{{ $labels.job }}) could not reach PROMETHEUS_MULTIPROC_DIR in the last "
            f"{w}; reason: {{{{ $labels.reason }}}}. The values wait in the workers' memory "
            "until the directory has room."
        ),
        panel=Panel("main", "Metric writes dropped"),
        cases=increase_cases(
            cfg,
            c.METRICS_WRITES_DROPPED,
            full,
            list(reasons.values()),
            ("job", "instance", "reason"),
            for_,
            Told(
                fires="a write is dropped every evaluation interval because the directory is full",
                none="no write is dropped",
                flat=f"{EARLIER} writes were dropped before the window and none since",
                restart=f"the workers restart after dropping {EARLIER} writes, and drop none",
            ),
        ),
    )


def samples_folded(cfg: config.Config) -> Alert:
    w, for_ = cfg.intervals.rate_window, cfg.durations.metrics_samples_folded
    # One folded count per capped metric, created at zero (exporters.series).
    metrics = {
        m.name: target(cfg, metric=m.name) for m in (c.HTTP_REQUESTS, c.HTTP_REQUEST_DURATION)
    }
    hot = metrics.pop(c.HTTP_REQUEST_DURATION.name)
    return above(
        "MetricsSamplesFolded",
        # Any folded observation: the metric is at its series cap, and every label set
        # new since then is merged into route="other".
        recording.folded_samples_increase(cfg),
        0,
        for_=for_,
        # Totals stay right, but a route born past the cap (or its first 5xx) shows only
        # under "other": route panels, route alerts and route-scoped SLOs miss it.
        severity="warning",
        summary=(
            'A metric reached its series cap: new label sets are recorded under route="other".'
        ),
        description=(
            "{{ $value | humanize }} observations of {{ $labels.metric }} (job "
            f'{{{{ $labels.job }}}}) were recorded under route="other" in the last {w}, '
            "merged with those of other routes."
        ),
        panel=Panel("main", "Samples folded into route=other"),
        cases=increase_cases(
            cfg,
            c.FOLDED_SAMPLES,
            hot,
            list(metrics.values()),
            ("job", "metric"),
            for_,
            Told(
                fires="an observation is folded every evaluation interval",
                none="no observation is folded",
                flat=f"{EARLIER} observations were folded before the window and none since",
                restart=f"the app restarts after folding {EARLIER} observations, and folds none",
            ),
        ),
    )


def alerts(cfg: config.Config) -> list[Alert]:
    return [
        target_down(cfg),
        target_missing(cfg),
        scrape_empty(cfg),
        writes_dropped(cfg),
        samples_folded(cfg),
        watchdog(),
    ]


def group(cfg: config.Config) -> Group:
    return Group("meta", tuple(alerts(cfg)))
