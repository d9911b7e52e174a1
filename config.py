"""Everything tunable, in one place.

Dashboards, alert rules, recording rules, Alertmanager routing, Grafana and
Prometheus provisioning all read these values, so a panel's threshold line and
the alert that fires on it can never disagree. Each key names what uses it.

Two profiles exist: ``default`` (what ships and what ``docker compose up``
runs) and ``test`` (short intervals, so the end-to-end tests see an alert in
seconds). ``build.py --profile test`` selects the latter.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Thresholds:
    """Alert thresholds; dashboards draw the same values as threshold lines."""

    # ApiHighErrorRate; main dashboard "Error rate" panel. Ratio of 5xx responses.
    error_ratio: float = 0.05
    # ApiHighLatency; main dashboard "Response time" panels. p95 per route, seconds.
    latency_p95_seconds: float = 1.0
    # PaginationSlowQueries; pagination dashboard "Pagination query time" panels.
    pagination_query_p95_seconds: float = 0.5
    # PaginationDeepOffsetSlow; pagination dashboard "Response time by offset range".
    deep_offset_p95_seconds: float = 1.0
    # Offsets from this one on count as deep (PaginationDeepOffsetSlow).
    deep_offset_min: int = 10_000
    # DatabaseSlowQueries; database dashboard "Query time" panels. p95, seconds.
    db_query_p95_seconds: float = 0.25
    # Exporter default: a query at least this long is counted and logged as slow.
    slow_query_seconds: float = 0.1
    # DatabaseSlowQueries also fires when slow queries exceed this rate (per second).
    slow_queries_per_second: float = 0.1
    # DatabaseQueryErrors; database dashboard "Query errors". Errors per second.
    db_errors_per_second: float = 0.0
    # DatabasePoolNearExhaustion; database dashboard "Pool saturation". Ratio.
    pool_saturation_ratio: float = 0.9
    # Cache hit ratio panels (server and frontend) colour red below this ratio.
    cache_hit_ratio_min: float = 0.5
    # Prefetch efficiency panel colours red below this ratio of used prefetches.
    prefetch_efficiency_min: float = 0.5


@dataclass(frozen=True)
class AlertDurations:
    """How long a condition must hold before each alert fires (`for`)."""

    api_high_error_rate: str = "2m"
    api_high_latency: str = "5m"
    pagination_slow_queries: str = "5m"
    pagination_deep_offset_slow: str = "10m"
    database_slow_queries: str = "5m"
    database_query_errors: str = "2m"
    database_pool_near_exhaustion: str = "5m"
    database_pool_checkout_timeouts: str = "1m"
    api_target_down: str = "1m"


@dataclass(frozen=True)
class Intervals:
    """Scrape, evaluation and notification timing."""

    # Prometheus global scrape interval (design note: 15s).
    scrape_interval: str = "15s"
    # The API job is scraped more often (design note: 5s).
    api_scrape_interval: str = "5s"
    scrape_timeout: str = "5s"
    # Rule evaluation interval for every rule group.
    evaluation_interval: str = "15s"
    # Range of the rates inside alert and recording rules.
    rate_window: str = "5m"
    # Alertmanager grouping.
    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"
    # Alertmanager considers an alert resolved when not re-sent for this long.
    resolve_timeout: str = "5m"


@dataclass(frozen=True)
class Ports:
    """Ports on the host (loopback) where each service listens by default."""

    api: int = 8000
    prometheus: int = 9090
    alertmanager: int = 9093
    grafana: int = 3001
    postgres: int = 5432
    mail_web: int = 8025
    mail_smtp: int = 1025


@dataclass(frozen=True)
class Grafana:
    """Grafana-side names: uids, folder, URLs used in links."""

    url: str = "http://localhost:3001"
    folder: str = "Genonaut"
    prometheus_uid: str = "prometheus"
    prometheus_name: str = "Prometheus"
    alertmanager_uid: str = "alertmanager"
    alertmanager_name: str = "Alertmanager"
    # Dashboard uids: stable, at most 40 characters, used in links and alerts.
    dashboard_uids: dict[str, str] = field(
        default_factory=lambda: {
            "main": "genonaut-main",
            "pagination": "genonaut-pagination",
            "database": "genonaut-database",
        }
    )
    # Where Grafana reaches each datasource (datasources.yaml); compose service names.
    prometheus_url: str = "http://prometheus:9090"
    alertmanager_url: str = "http://alertmanager:9093"
    # Where compose mounts out/grafana/dashboards inside Grafana (dashboards.yaml provider path).
    dashboards_path: str = "/var/lib/grafana/dashboards/genonaut"
    tags: tuple[str, ...] = ("genonaut", "generated")
    refresh: str = "10s"
    timezone: str = "browser"
    time_from: str = "now-1h"


@dataclass(frozen=True)
class Targets:
    """What Prometheus scrapes and where Prometheus finds Alertmanager."""

    job: str = "genonaut-api"
    api: tuple[str, ...] = ("localhost:8000",)
    alertmanager: tuple[str, ...] = ("localhost:9093",)
    metrics_path: str = "/metrics"


@dataclass(frozen=True)
class Notifications:
    """Where alerts go. Secrets are never here: only the files they are read from."""

    email_to: str = "genonaut-dev@localhost"
    email_from: str = "alertmanager@localhost"
    smarthost: str = "localhost:1025"
    smtp_require_tls: bool = False
    smtp_auth_username: str = ""
    # Read at run time by Alertmanager; written by the stack from SMTP_PASSWORD.
    smtp_password_file: str = ""
    slack_channel: str = "#genonaut-alerts"
    # Read at run time by Alertmanager; written by the stack from SLACK_WEBHOOK_URL.
    slack_api_url_file: str = "/etc/alertmanager/secrets/slack_webhook_url"
    # Watchdog heartbeat receiver; empty means a null receiver.
    watchdog_url: str = ""


@dataclass(frozen=True)
class Config:
    """The whole configuration; ``CONFIG`` is the one the project ships."""

    profile: str = "default"
    thresholds: Thresholds = field(default_factory=Thresholds)
    durations: AlertDurations = field(default_factory=AlertDurations)
    intervals: Intervals = field(default_factory=Intervals)
    ports: Ports = field(default_factory=Ports)
    grafana: Grafana = field(default_factory=Grafana)
    targets: Targets = field(default_factory=Targets)
    notifications: Notifications = field(default_factory=Notifications)
    # Base of every alert's runbook_url; the alert name is the anchor.
    runbook_base_url: str = "https://github.com/genonaut/genonaut-monitoring/blob/main/RUNBOOK.md"


CONFIG = Config()

# Short intervals so an alert fires and resolves within seconds in the
# end-to-end tests. Never used by `docker compose up`.
TEST_CONFIG = replace(
    CONFIG,
    profile="test",
    durations=AlertDurations(**{name: "5s" for name in AlertDurations.__dataclass_fields__}),
    intervals=Intervals(
        scrape_interval="1s",
        api_scrape_interval="1s",
        scrape_timeout="1s",
        evaluation_interval="1s",
        rate_window="10s",
        group_wait="1s",
        group_interval="2s",
        repeat_interval="1h",
        resolve_timeout="10s",
    ),
)

# What `docker compose up` runs (docker-compose.yml mounts `build.py --profile compose
# --out out-compose`): the default values, with every address a compose service name.
# The ports are the containers' own (the API image listens on 8000, the images' defaults
# for the rest); the host ports published on 127.0.0.1 come from Ports.
COMPOSE_CONFIG = replace(
    CONFIG,
    profile="compose",
    targets=replace(CONFIG.targets, api=("api:8000",), alertmanager=("alertmanager:9093",)),
    notifications=replace(CONFIG.notifications, smarthost="mailpit:1025"),
)

PROFILES: dict[str, Config] = {"default": CONFIG, "test": TEST_CONFIG, "compose": COMPOSE_CONFIG}


def fmt_seconds(value: float) -> str:
    """A threshold in seconds as people say it: ``0.25 -> "250ms"``, ``1.0 -> "1s"``."""
    if value < 1:
        return f"{value * 1000:g}ms"
    return f"{value:g}s"


def fmt_ratio(value: float) -> str:
    """A ratio as a percentage: ``0.05 -> "5%"``."""
    return f"{value * 100:g}%"


def fmt_number(value: float) -> str:
    """A plain threshold number: ``0.1 -> "0.1"``, ``0.0 -> "0"``."""
    return f"{value:g}"


def profile(name: str) -> Config:
    """Return the named profile, or raise with the names that exist."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}: choose one of {', '.join(sorted(PROFILES))}"
        ) from None
