"""Everything tunable, in one place.

Dashboards, alert rules, recording rules, Alertmanager routing, Grafana and
Prometheus provisioning all read these values, so a panel's threshold line and
the alert that fires on it can never disagree. Each key names what uses it.

Three profiles ship: ``default`` (the demo on this machine), ``test`` (short
intervals, so the end-to-end tests see an alert in seconds) and ``compose``
(every address a compose service name). An adopter's TOML file
(:mod:`genonaut_monitoring.settings`) overrides any key below, starting from
the profile chosen with ``--profile``.

Types carry their own rules (``Ratio``, ``Duration``, ...): the settings loader
checks a value from a file against them and names the key when one is broken.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Annotated


@dataclass(frozen=True)
class Rule:
    """What a setting must be, as a check and the sentence that says it."""

    allowed: str
    check: re.Pattern[str] | tuple[float | None, float | None] | Callable[[object], bool]

    def accepts(self, value: object) -> bool:
        if isinstance(self.check, re.Pattern):
            return isinstance(value, str) and self.check.fullmatch(value) is not None
        if callable(self.check):
            return self.check(value)
        low, high = self.check
        assert isinstance(value, (int, float))
        return (low is None or value >= low) and (high is None or value <= high)


# A Prometheus duration such as 30s, 5m or 1h30m (units ms, s, m, h, d, w, y, in that order).
_DURATION = re.compile(r"(?=\d)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?")

Ratio = Annotated[float, Rule("a ratio from 0 to 1 (0.05 is 5%)", (0.0, 1.0))]
Seconds = Annotated[float, Rule("seconds, more than 0 (0.25 is 250ms)", (1e-9, None))]
PerSecond = Annotated[float, Rule("a rate per second, 0 or more", (0.0, None))]
Count = Annotated[int, Rule("a whole number, 1 or more", (1, None))]
Port = Annotated[int, Rule("a port from 1 to 65535", (1, 65535))]
Duration = Annotated[str, Rule("a Prometheus duration such as 30s, 5m or 1h30m", _DURATION)]
Address = Annotated[str, Rule("host:port, such as localhost:8000", re.compile(r"[^\s/:]+:\d{1,5}"))]
UrlPath = Annotated[str, Rule("a URL path starting with /", re.compile(r"/\S*"))]
RoutePattern = Annotated[
    str,
    Rule("a route template or RE2 regex starting with /, such as /debug/.*", re.compile(r"/\S*")),
]
Name = Annotated[str, Rule("a non-empty name without spaces", re.compile(r"\S+"))]
HttpUrl = Annotated[str, Rule("an http:// or https:// URL", re.compile(r"https?://[^\s/]+\S*"))]
AbsolutePath = Annotated[
    str, Rule("an absolute path such as /run/secrets/token", re.compile(r"/\S*"))
]

# Kubernetes' own name rules (k8s.io/apimachinery/pkg/util/validation), so a bad value
# fails when the config is read rather than when kubectl applies the output.
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?"
DNS_LABEL = re.compile(rf"(?=.{{1,63}}$){_DNS_LABEL}")
DNS_SUBDOMAIN = re.compile(rf"(?=.{{1,253}}$){_DNS_LABEL}(?:\.{_DNS_LABEL})*")
# A label or annotation key: an optional DNS-subdomain prefix and "/", then a name of at
# most 63 characters; a label value: at most 63 characters, possibly empty.
QUALIFIED_NAME = re.compile(
    rf"(?:(?=[^/]{{1,253}}/){_DNS_LABEL}(?:\.{_DNS_LABEL})*/)?"
    r"(?=[^/]{1,63}$)[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
)
LABEL_VALUE = re.compile(r"(?=.{0,63}$)(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
# A Service port name (IANA_SVC_NAME): at most 15 characters, at least one letter, no "--".
PORT_NAME = re.compile(r"(?=.{1,15}$)(?=.*[a-z])(?!.*--)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")
# An HTTP header name (RFC 9110 token).
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _string_table(key: re.Pattern[str], value: re.Pattern[str]) -> Callable[[object], bool]:
    """A check that every key and value of a table of strings match their patterns."""

    def accepts(table: object) -> bool:
        return isinstance(table, dict) and all(
            isinstance(k, str)
            and isinstance(v, str)
            and key.fullmatch(k) is not None
            and value.fullmatch(v) is not None
            for k, v in table.items()
        )

    return accepts


DnsLabel = Annotated[
    str,
    Rule(
        "a DNS-1123 label: at most 63 lower-case letters, digits and '-', "
        "starting and ending with a letter or digit",
        DNS_LABEL,
    ),
]
DnsSubdomain = Annotated[
    str,
    Rule(
        "a DNS-1123 subdomain: at most 253 lower-case letters, digits, '-' and '.', "
        "starting and ending with a letter or digit",
        DNS_SUBDOMAIN,
    ),
]
LabelKey = Annotated[
    str,
    Rule(
        "a Kubernetes label or annotation key such as grafana_dashboard or "
        "app.kubernetes.io/name (a name of at most 63 letters, digits, '-', '_', '.')",
        QUALIFIED_NAME,
    ),
]
LabelValue = Annotated[
    str,
    Rule("a Kubernetes label value: at most 63 letters, digits, '-', '_' and '.'", LABEL_VALUE),
]
Labels = Annotated[
    dict[str, str],
    Rule(
        "a table of Kubernetes labels: keys such as app.kubernetes.io/name, values of at "
        "most 63 letters, digits, '-', '_' and '.'",
        _string_table(QUALIFIED_NAME, LABEL_VALUE),
    ),
]
PortName = Annotated[
    str,
    Rule(
        "a Service port name: at most 15 lower-case letters, digits and '-', "
        "with a letter and no '--'",
        PORT_NAME,
    ),
]
SecretKey = Annotated[str, Rule("a Secret key: letters, digits, '-', '_' and '.'", SECRET_KEY)]
HttpHeaders = Annotated[
    dict[str, str],
    Rule(
        "a table of HTTP header names (letters, digits, '-') and values",
        _string_table(_HEADER_NAME, re.compile(r"[^\r\n]*")),
    ),
]
# Links are built by appending a path, so no trailing slash.
BaseUrl = Annotated[
    str,
    Rule(
        "an http(s) URL without a trailing slash, such as http://localhost:9093",
        re.compile(r"https?://[^\s/]+(/\S*[^\s/])?"),
    ),
]
# The slo label of every SLO series and alert: lower-case words joined by '-'.
SloName = Annotated[
    str,
    Rule(
        "lower-case words joined by '-', such as api-availability",
        re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*"),
    ),
]
# What an SLO counts as a good request (see Slo).
SliKind = Annotated[str, Rule("availability or latency", re.compile(r"availability|latency"))]
# An SLO's objective: 1 would leave no error budget at all.
Objective = Annotated[
    float, Rule("a ratio above 0 and at most 0.99999 (0.995 is 99.5%)", (1e-9, 0.99999))
]
Factor = Annotated[float, Rule("a burn-rate factor above 0, such as 14.4", (1e-9, None))]

# Goes into SQL unquoted-safe: lower case, so no identifier quoting can change its meaning.
SqlName = Annotated[
    str,
    Rule(
        "a PostgreSQL name: a-z, 0-9 and _, starting with a letter",
        re.compile(r"[a-z][a-z0-9_]{0,62}"),
    ),
]


@dataclass(frozen=True)
class Thresholds:
    """Alert thresholds; dashboards draw the same values as threshold lines."""

    # ApiHighErrorRate; main dashboard "Error rate" panel. Ratio of 5xx responses.
    error_ratio: Ratio = 0.05
    # ApiHighLatency; main dashboard "Response time" panels. p95 per route, seconds.
    latency_p95_seconds: Seconds = 1.0
    # PaginationSlowQueries; pagination dashboard "Pagination query time" panels.
    pagination_query_p95_seconds: Seconds = 0.5
    # PaginationDeepOffsetSlow; pagination dashboard "Response time by offset range".
    deep_offset_p95_seconds: Seconds = 1.0
    # Offsets from this one on count as deep (PaginationDeepOffsetSlow).
    deep_offset_min: Count = 10_000
    # DatabaseSlowQueries; database dashboard "Query time" panels. p95, seconds.
    db_query_p95_seconds: Seconds = 0.25
    # Exporter default: a query at least this long is counted and logged as slow.
    slow_query_seconds: Seconds = 0.1
    # DatabaseSlowQueries also fires when slow queries exceed this rate (per second).
    slow_queries_per_second: PerSecond = 0.1
    # DatabaseQueryErrors; database dashboard "Query errors". Errors per second.
    db_errors_per_second: PerSecond = 0.0
    # DatabasePoolNearExhaustion; database dashboard "Pool saturation". Ratio.
    pool_saturation_ratio: Ratio = 0.9
    # Cache hit ratio panels (server and frontend) colour red below this ratio.
    cache_hit_ratio_min: Ratio = 0.5
    # Prefetch efficiency panel colours red below this ratio of used prefetches.
    prefetch_efficiency_min: Ratio = 0.5
    # PostgresTooManyConnections; postgres dashboard "Connections used". Share of
    # max_connections held by client sessions.
    postgres_connections_ratio: Ratio = 0.8
    # PostgresLongTransaction; postgres dashboard "Longest transaction". Seconds a client
    # session's transaction has been open.
    postgres_transaction_age_seconds: Seconds = 300.0
    # PostgresIdleInTransaction; postgres dashboard "Longest idle in transaction". Seconds
    # a session has sat idle inside an open transaction.
    postgres_idle_in_transaction_seconds: Seconds = 60.0
    # PostgresLockWaits; postgres dashboard "Lock waits". Seconds a session has waited
    # for a lock.
    postgres_lock_wait_seconds: Seconds = 10.0
    # Postgres dashboard "Buffer cache hit ratio" colours red below this ratio.
    postgres_buffer_hit_ratio_min: Ratio = 0.95


@dataclass(frozen=True)
class AlertDurations:
    """How long a condition must hold before each alert fires (`for`)."""

    api_high_error_rate: Duration = "2m"
    api_high_latency: Duration = "5m"
    pagination_slow_queries: Duration = "5m"
    pagination_deep_offset_slow: Duration = "10m"
    database_slow_queries: Duration = "5m"
    database_query_errors: Duration = "2m"
    database_pool_near_exhaustion: Duration = "5m"
    database_pool_checkout_timeouts: Duration = "1m"
    api_target_down: Duration = "1m"
    metrics_scrape_empty: Duration = "1m"
    # MetricsWritesDropped, MetricsSamplesFolded: a single dropped write (folded
    # observation) keeps the increase over the rate window above 0 for that whole window,
    # so with a `for` shorter than the window one is enough to fire.
    metrics_writes_dropped: Duration = "1m"
    metrics_samples_folded: Duration = "1m"
    postgres_down: Duration = "1m"
    postgres_exporter_down: Duration = "1m"
    postgres_too_many_connections: Duration = "5m"
    postgres_deadlocks: Duration = "1m"
    postgres_long_transaction: Duration = "1m"
    postgres_idle_in_transaction: Duration = "1m"
    postgres_lock_waits: Duration = "1m"


@dataclass(frozen=True)
class Intervals:
    """Scrape, evaluation and notification timing."""

    # Prometheus global scrape interval (design note: 15s).
    scrape_interval: Duration = "15s"
    # The API job is scraped more often (design note: 5s).
    api_scrape_interval: Duration = "5s"
    scrape_timeout: Duration = "5s"
    # Rule evaluation interval for every rule group.
    evaluation_interval: Duration = "15s"
    # Range of the rates inside alert and recording rules.
    rate_window: Duration = "5m"
    # Alertmanager grouping.
    group_wait: Duration = "30s"
    group_interval: Duration = "5m"
    repeat_interval: Duration = "4h"
    # Alertmanager considers an alert resolved when not re-sent for this long.
    resolve_timeout: Duration = "5m"


@dataclass(frozen=True)
class Ports:
    """Ports on the host (loopback) where each service listens by default."""

    api: Port = 8000
    prometheus: Port = 9090
    alertmanager: Port = 9093
    grafana: Port = 3001
    postgres: Port = 5432
    postgres_exporter: Port = 9187
    mail_web: Port = 8025
    mail_smtp: Port = 1025


@dataclass(frozen=True)
class Grafana:
    """Grafana-side names: uids, folder, URLs used in links."""

    url: str = "http://localhost:3001"
    # The name every dashboard title starts with ("Genonaut: main development") and the
    # dashboard list link is named after ("Genonaut dashboards"): the app's name.
    title: str = "Genonaut"
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
            "postgres": "genonaut-postgres",
            "slo": "genonaut-slo",
        }
    )
    # Where Grafana reaches each datasource (datasources.yaml); compose service names.
    prometheus_url: str = "http://prometheus:9090"
    alertmanager_url: str = "http://alertmanager:9093"
    # Where compose mounts out/grafana/dashboards inside Grafana (dashboards.yaml provider path).
    dashboards_path: str = "/var/lib/grafana/dashboards/genonaut"
    tags: tuple[str, ...] = ("genonaut", "generated")
    refresh: Duration = "10s"
    timezone: str = "browser"
    time_from: str = "now-1h"
    # Routes (templates or RE2 regexes) the dashboards' $route picker leaves out, and so
    # every route panel, besides each service's metrics_path: probes and debug endpoints
    # say nothing about the API's users (alerts.promql.hidden_routes_matcher).
    hidden_routes: tuple[RoutePattern, ...] = (
        "/health",
        "/healthz",
        "/livez",
        "/readyz",
        "/debug/.*",
    )


@dataclass(frozen=True)
class Service:
    """One instrumented application: a Prometheus scrape job and the targets it scrapes.

    Its name is the job label on every series it exposes: alert rules select and
    group by it, and the dashboards' job variable lists every service.
    """

    name: Name
    targets: tuple[Address, ...]
    metrics_path: UrlPath = "/metrics"
    # None: Intervals.api_scrape_interval.
    scrape_interval: Duration | None = None
    # Kubernetes target (its ServiceMonitor): the named port of the app's Service...
    port_name: PortName = "http"
    # ...the labels that select that Service (None: app.kubernetes.io/name=<name>)...
    selector: Labels | None = None
    # ...and the Service's namespace (None: Kubernetes.namespace, beside the monitoring).
    namespace: DnsLabel | None = None


@dataclass(frozen=True)
class Slo:
    """A service level objective: the share of one service's requests that must be good.

    ``sli`` says what good means: ``availability`` (not answered with a 5xx status) or
    ``latency`` (answered within ``latency_seconds``, which must be a bucket boundary of
    the request-duration histogram). ``routes`` (route templates) or ``route_regex``
    narrow it to a group of routes; neither means every route. Each SLO gets SLI
    recording rules, the burn-rate alerts of SloAlerting and a row on the SLO dashboard.
    """

    name: SloName
    sli: SliKind
    objective: Objective
    # A name from Config.services: the Prometheus job whose requests count. None: the
    # first service, so renaming the one service of a project keeps its SLOs working.
    service: Name | None = None
    latency_seconds: Seconds | None = None
    routes: tuple[str, ...] = ()
    route_regex: str = ""


@dataclass(frozen=True)
class BurnRate:
    """One multi-window burn-rate condition: both windows burn budget faster than ``factor``.

    A burn rate of 1 spends exactly the error budget over SloAlerting.period; the
    long window makes a short blip harmless, the short one lets the alert end soon
    after the burn does (the SRE workbook's "multiwindow, multi-burn-rate alerts").
    """

    long: Duration
    short: Duration
    factor: Factor


@dataclass(frozen=True)
class SloAlerting:
    """How the SLO alerts read the error budget (SloErrorBudgetFastBurn, SloErrorBudgetSlowBurn).

    The default factors are the SRE workbook's for a 30-day period: each is the share
    of the budget spent within the long window, times period / long window.
    """

    # The period every objective holds over; the budget is (1 - objective) of its requests.
    period: Duration = "30d"
    # SloErrorBudgetFastBurn (critical, pages): 2% of the budget in 1h, or 5% in 6h.
    page: tuple[BurnRate, ...] = (BurnRate("1h", "5m", 14.4), BurnRate("6h", "30m", 6.0))
    # SloErrorBudgetSlowBurn (warning, a ticket): 10% of the budget in 1d, or 10% in 3d.
    ticket: tuple[BurnRate, ...] = (BurnRate("1d", "2h", 3.0), BurnRate("3d", "6h", 1.0))
    # `for` of each: the windows already smooth; this only skips one-evaluation artefacts
    # (a counter reset, a target restart) and keeps a full outage paging within minutes.
    page_for: Duration = "2m"
    ticket_for: Duration = "15m"


@dataclass(frozen=True)
class Targets:
    """Where Prometheus finds Alertmanager."""

    alertmanager: tuple[Address, ...] = ("localhost:9093",)


@dataclass(frozen=True)
class Postgres:
    """The PostgreSQL server, seen from its side by prometheus-community's postgres_exporter.

    The exporter's connection string is never here nor in a generated file: it reads it
    from its environment (``DATA_SOURCE_NAME``, or ``DATA_SOURCE_URI`` with
    ``DATA_SOURCE_USER`` and ``DATA_SOURCE_PASS``/``DATA_SOURCE_PASS_FILE``).
    """

    # Prometheus job of the exporter; the postgres alerts and dashboard select it.
    job: Name = "postgres"
    # Exporter addresses. Empty: no scrape job and no PostgreSQL alerts (no PostgreSQL).
    targets: tuple[Address, ...] = ("localhost:9187",)
    # None: Intervals.scrape_interval and Intervals.scrape_timeout.
    scrape_interval: Duration | None = None
    scrape_timeout: Duration | None = None
    # The read-only login the exporter uses, a member of pg_monitor; created by the
    # stack's init (compose's postgres init script, `genonaut-monitoring up`).
    monitor_role: SqlName = "genonaut_monitor"
    # pg_stat_statements: statements exported (top by total time), bounding the series.
    top_statements: Count = 20
    # pg_stat_statements: characters of statement text kept in the query label.
    statement_text_length: Count = 160
    # Kubernetes target (the exporter's ServiceMonitor): the named port of its Service...
    port_name: PortName = "http"
    # ...the labels selecting that Service (None: app.kubernetes.io/name=
    # prometheus-postgres-exporter, as prometheus-community's Helm chart labels it)...
    selector: Labels | None = None
    # ...and its namespace (None: Kubernetes.namespace).
    namespace: DnsLabel | None = None

    def as_service(self, intervals: Intervals) -> Service | None:
        """The exporter as a scraped service (Kubernetes' ServiceMonitor); None without one."""
        if not self.targets:
            return None
        return Service(
            self.job,
            self.targets,
            scrape_interval=self.scrape_interval or intervals.scrape_interval,
            port_name=self.port_name,
            selector=self.selector or {"app.kubernetes.io/name": "prometheus-postgres-exporter"},
            namespace=self.namespace,
        )


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
    # Alertmanager as people open it (its --web.external-url, which `genonaut-monitoring
    # up` and docker-compose.yml pass): the silence link in every notification.
    alertmanager_external_url: BaseUrl = "http://localhost:9093"


@dataclass(frozen=True)
class Multiprocess:
    """Workers sharing PROMETHEUS_MULTIPROC_DIR (exporters.mpstore and exporters.mpdir)."""

    # mpstore: a worker that could not open or grow a metrics file tries again after this
    # long; its values wait in memory meanwhile (a failed try costs a system call or two).
    retry_seconds: Seconds = 10.0
    # mpdir: one ERROR line per cause (full, read-only, missing, ...) at most this often.
    error_log_seconds: Seconds = 60.0
    # mpdir: how long a scrape or a starting worker waits for another worker's merge of
    # dead workers' files before going on without pruning.
    lock_timeout_seconds: Seconds = 2.0


@dataclass(frozen=True)
class RemoteWrite:
    """A store that Prometheus sends every sample to: prometheus.yml's ``remote_write``.

    Grafana Mimir, Cortex and Thanos Receive take Prometheus' remote-write protocol.
    Credentials are files Prometheus reads at run time, never values in the config.
    """

    url: HttpUrl
    # Basic auth: the user name, and the file holding the password.
    username: str = ""
    password_file: AbsolutePath | None = None
    # Or a bearer token read from this file (Authorization: Bearer).
    bearer_token_file: AbsolutePath | None = None
    # Extra HTTP headers, such as X-Scope-OrgID naming a Mimir or Cortex tenant.
    headers: HttpHeaders = field(default_factory=dict)


@dataclass(frozen=True)
class SecretRef:
    """One key of a Kubernetes Secret, which the AlertmanagerConfig reads a value from."""

    name: DnsSubdomain
    key: SecretKey


@dataclass(frozen=True)
class Kubernetes:
    """``build --target kubernetes``: what the Prometheus Operator and Grafana's sidecar match.

    The defaults suit kube-prometheus-stack installed as the Helm release
    ``kube-prometheus-stack``.
    """

    # Every resource's namespace (and kustomization.yaml's). The operator routes to the
    # AlertmanagerConfig only alerts labelled namespace=<this>, so every alert carries it.
    namespace: DnsLabel = "monitoring"
    # On every resource (kustomization.yaml's labels as well).
    common_labels: Labels = field(
        default_factory=lambda: {"app.kubernetes.io/part-of": "genonaut-monitoring"}
    )
    # On the PrometheusRules, ServiceMonitors and AlertmanagerConfig: kube-prometheus-stack's
    # Prometheus selects rules and service monitors labelled release=<Helm release name>.
    release_labels: Labels = field(default_factory=lambda: {"release": "kube-prometheus-stack"})
    # Grafana's dashboard sidecar loads ConfigMaps with this label and value
    # (chart values grafana.sidecar.dashboards.label and labelValue).
    dashboard_label: LabelKey = "grafana_dashboard"
    dashboard_label_value: LabelValue = "1"
    # The annotation naming the folder (Grafana.folder) that the sidecar files the
    # dashboards under (chart value grafana.sidecar.dashboards.folderAnnotation).
    folder_annotation: LabelKey = "grafana_folder"
    # Secrets the AlertmanagerConfig reads: the Slack webhook URL, and the SMTP password
    # (used only when Notifications.smtp_auth_username is set).
    slack_webhook: SecretRef = SecretRef("genonaut-alertmanager", "slack-webhook-url")
    smtp_password: SecretRef = SecretRef("genonaut-alertmanager", "smtp-password")


@dataclass(frozen=True)
class Exporter:
    """Defaults of the exporters an application runs; instrument() arguments override them."""

    # instrument(max_series_per_metric=...): the most series one metric exposes, buckets
    # included; past it, new label sets are recorded under route="other" and counted in
    # metrics_folded_samples_total. 20,000 is about 900 method/route pairs of the
    # request-duration histogram.
    max_series_per_metric: Count = 20_000


@dataclass(frozen=True)
class Config:
    """The whole configuration; ``CONFIG`` is the one the project ships."""

    profile: str = "default"
    thresholds: Thresholds = field(default_factory=Thresholds)
    durations: AlertDurations = field(default_factory=AlertDurations)
    intervals: Intervals = field(default_factory=Intervals)
    ports: Ports = field(default_factory=Ports)
    grafana: Grafana = field(default_factory=Grafana)
    # The applications Prometheus scrapes, one job each (design note: the API on :8000).
    services: tuple[Service, ...] = (Service("genonaut-api", ("localhost:8000",)),)
    # Service level objectives (design note: pagination performance is what matters):
    # recording rules, SloErrorBudget* alerts and the SLO dashboard are generated from them.
    slos: tuple[Slo, ...] = (
        Slo("api-availability", "availability", 0.995),
        Slo(
            "pagination-latency",
            "latency",
            0.95,
            latency_seconds=0.5,
            routes=("/api/v1/content", "/api/v1/content/cursor"),
        ),
    )
    slo_alerting: SloAlerting = field(default_factory=SloAlerting)
    targets: Targets = field(default_factory=Targets)
    postgres: Postgres = field(default_factory=Postgres)
    notifications: Notifications = field(default_factory=Notifications)
    exporter: Exporter = field(default_factory=Exporter)
    # Remote-write stores (prometheus.yml); none by default.
    remote_write: tuple[RemoteWrite, ...] = ()
    kubernetes: Kubernetes = field(default_factory=Kubernetes)
    multiprocess: Multiprocess = field(default_factory=Multiprocess)
    # Base of every alert's runbook_url; the alert name is the anchor.
    runbook_base_url: str = "https://github.com/genonaut/genonaut-monitoring/blob/main/RUNBOOK.md"

    @property
    def jobs(self) -> tuple[str, ...]:
        """The Prometheus job of every service, in config order."""
        return tuple(service.name for service in self.services)

    def slo_job(self, slo: Slo) -> str:
        """The job whose requests ``slo`` counts: its service, or the first one."""
        return slo.service or self.jobs[0]


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
    # postgres_exporter 0.11 takes about a second to answer while PostgreSQL is down; a 1s
    # timeout would take that for the exporter being down, and PostgresDown would never fire.
    postgres=replace(CONFIG.postgres, scrape_interval="2s", scrape_timeout="2s"),
    # Ages the end-to-end tests can reach in seconds on a throwaway PostgreSQL.
    thresholds=replace(
        CONFIG.thresholds,
        postgres_transaction_age_seconds=3.0,
        postgres_idle_in_transaction_seconds=3.0,
        postgres_lock_wait_seconds=2.0,
    ),
)

# What `docker compose up` runs (docker-compose.yml mounts `build.py --profile compose
# --out out-compose`): the default values, with every address a compose service name.
# The ports are the containers' own (the API image listens on 8000, the images' defaults
# for the rest); the host ports published on 127.0.0.1 come from Ports.
COMPOSE_CONFIG = replace(
    CONFIG,
    profile="compose",
    services=tuple(replace(s, targets=("api:8000",)) for s in CONFIG.services),
    targets=Targets(alertmanager=("alertmanager:9093",)),
    postgres=replace(CONFIG.postgres, targets=("postgres-exporter:9187",)),
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
