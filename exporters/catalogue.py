"""The metric catalogue: every metric this project exports, defined once.

The exporters create their collectors from these specs; the dashboards and
alert rules name metrics through them; ``build.py`` checks every PromQL
expression against them (:func:`check_expression`). A metric that is not here
does not exist.

Label values are bounded by construction: routes are templates, offsets and
page sizes are folded into the fixed classes below, tables and caches are
capped by the exporters.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

Kind = Literal["counter", "gauge", "histogram"]

# Label values used when the real value is unknown or would be unbounded.
UNMATCHED_ROUTE = "unmatched"  # any path that matched no route
OTHER = "other"  # a table or cache beyond the configured cap
NO_OFFSET = "none"  # offset_range of cursor-paginated requests

# Offset ranges: (inclusive upper bound, label). Deep offsets are what makes
# offset pagination slow; cursors keep a constant cost.
OFFSET_RANGES: tuple[tuple[float, str], ...] = (
    (0, "0"),
    (100, "1-100"),
    (1_000, "101-1000"),
    (10_000, "1001-10000"),
    (100_000, "10001-100000"),
    (float("inf"), "100001+"),
)
# Page-size classes: (inclusive upper bound, label).
PAGE_SIZE_CLASSES: tuple[tuple[float, str], ...] = (
    (10, "1-10"),
    (25, "11-25"),
    (50, "26-50"),
    (100, "51-100"),
    (250, "101-250"),
    (float("inf"), "251+"),
)
PAGINATION_MODES = ("offset", "cursor")
# database_errors_total{kind}: the connection failed (to open, or while a statement ran),
# no pooled connection came free within the pool timeout, or a statement raised.
DB_ERROR_KINDS = ("connection", "pool_timeout", "statement")
CACHE_RESULTS = ("hit", "miss")
PREFETCH_OUTCOMES = ("used", "wasted")
# Why a worker could not write a metric to PROMETHEUS_MULTIPROC_DIR (exporters.mpstore).
WRITE_DROP_REASONS = ("missing", "read_only", "full", "error")

_OFFSET_EDGES = [edge for edge, _ in OFFSET_RANGES]
_PAGE_SIZE_EDGES = [edge for edge, _ in PAGE_SIZE_CLASSES]


def offset_range(offset: int) -> str:
    """Fold an offset into its bounded ``offset_range`` label value."""
    return OFFSET_RANGES[bisect.bisect_left(_OFFSET_EDGES, max(offset, 0))][1]


def page_size_class(page_size: int) -> str:
    """Fold a page size into its bounded ``page_size_class`` label value."""
    return PAGE_SIZE_CLASSES[bisect.bisect_left(_PAGE_SIZE_EDGES, max(page_size, 1))][1]


def offset_ranges_from(min_offset: int) -> list[str]:
    """The ``offset_range`` values whose offsets are all at least ``min_offset``."""
    labels, lower = [], 0
    for upper, label in OFFSET_RANGES:
        if lower >= min_offset:
            labels.append(label)
        lower = int(upper) + 1 if upper != float("inf") else lower
    return labels


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its exposition name, type, help sentence, labels and buckets."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] | None = None
    # How gauges from several worker processes combine (prometheus_client multiprocess).
    multiprocess_mode: str = "livesum"
    # Exported by someone else (prometheus_client's process collector, Prometheus itself).
    external: bool = False

    @property
    def series(self) -> dict[str, frozenset[str]]:
        """The names PromQL can select for this metric, each with its labels."""
        labels = frozenset(self.labels)
        if self.kind == "histogram":
            return {
                f"{self.name}_bucket": labels | {"le"},
                f"{self.name}_sum": labels,
                f"{self.name}_count": labels,
            }
        return {self.name: labels}

    @property
    def series_per_child(self) -> int:
        """Series one label set adds to ``/metrics`` (``_created`` is never exposed)."""
        if self.kind == "histogram":
            # One per boundary, +Inf, _sum and _count.
            return len(self.buckets or ()) + 3
        return 1

    @property
    def counter_like(self) -> bool:
        """True when its series only ever go up, so PromQL must rate them."""
        return self.kind in ("counter", "histogram")


# Duration buckets. Between 50ms and 5s no two adjacent boundaries are more than 1.6x
# apart (contract.bucket_problems), so histogram_quantile()'s interpolation inside a
# bucket stays close; 1-2.5s, where API latency alerts live, is finer still (a constant
# 1.5s reads as a p95 of about 1.58s). Every threshold config.Thresholds compares a
# quantile with is a boundary (the build checks it): 0.25, 0.5 and 1.
_LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.16, 0.25, 0.35, 0.5, 0.75,
    1.0, 1.25, 1.6, 2.0, 2.5, 3.5, 5.0, 10.0,
)  # fmt: skip
_DB_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.16, 0.25, 0.35,
    0.5, 0.75, 1.0, 1.6, 2.5, 3.5, 5.0,
)  # fmt: skip

# --- HTTP -------------------------------------------------------------------
HTTP_REQUESTS = MetricSpec(
    "http_requests_total",
    "counter",
    "HTTP requests served, by method, route template and status code.",
    ("method", "route", "status"),
)
HTTP_REQUEST_DURATION = MetricSpec(
    "http_request_duration_seconds",
    "histogram",
    "Time from receiving an HTTP request to sending the end of its response.",
    ("method", "route"),
    _LATENCY_BUCKETS,
)
HTTP_REQUESTS_IN_PROGRESS = MetricSpec(
    "http_requests_in_progress",
    "gauge",
    "HTTP requests being served right now.",
    ("method",),
)
HTTP_EXCEPTIONS = MetricSpec(
    "http_exceptions_total",
    "counter",
    "Exceptions that escaped a request handler (each also counted as a 500 response).",
    ("method", "route", "exception"),
)

# --- Pagination ---------------------------------------------------------------
# Every paginated route gets its series at zero when the routes are read
# (exporters/series.py): 320 per offset route (at most 980 as it serves more
# page-size classes), 71 per cursor route (at most 181); other routes none.
PAGINATION_REQUEST_DURATION = MetricSpec(
    "pagination_request_duration_seconds",
    "histogram",
    "Duration of paginated requests, by route, mode and offset range.",
    # No page-size class: every offset range of a paginated route is created at zero
    # (a deep page seen once must show in rate()), so a sixfold label would cost 6x.
    ("route", "mode", "offset_range"),
    _LATENCY_BUCKETS,
)
PAGINATION_QUERY_DURATION = MetricSpec(
    "pagination_query_duration_seconds",
    "histogram",
    "Duration of the database statements that fetch one page of a paginated request.",
    ("route", "mode", "page_size_class", "offset_range"),
    _DB_BUCKETS,
)
PAGINATION_PAGE_SIZE = MetricSpec(
    "pagination_page_size",
    "histogram",
    "Page sizes requested.",
    ("route", "mode"),
    (1, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000),
)
PAGINATION_OFFSET = MetricSpec(
    "pagination_offset",
    "histogram",
    "Row offsets requested by offset-paginated requests.",
    ("route",),
    (0, 10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000),
)
PAGINATION_PAGE_NUMBER = MetricSpec(
    "pagination_page_number",
    "histogram",
    "Page numbers requested by offset-paginated requests (1 is the first page).",
    ("route",),
    (1, 2, 3, 4, 5, 10, 20, 50, 100, 500, 1_000, 5_000),
)
PAGINATION_ITEMS_RETURNED = MetricSpec(
    "pagination_items_returned",
    "histogram",
    "Items returned in one page.",
    ("route", "mode"),
    (0, 1, 5, 10, 25, 50, 100, 250, 500, 1000),
)

# --- Database -----------------------------------------------------------------
DB_QUERY_DURATION = MetricSpec(
    "database_query_duration_seconds",
    "histogram",
    "Database statement execution time, by operation and main table.",
    ("operation", "table"),
    _DB_BUCKETS,
)
DB_QUERY_ERRORS = MetricSpec(
    "database_query_errors_total",
    "counter",
    "Database statements that raised an error, by operation and main table.",
    ("operation", "table"),
)
DB_ERRORS = MetricSpec(
    "database_errors_total",
    "counter",
    "Database faults by pool and kind: connection failures, pool checkout timeouts and "
    "statement errors.",
    ("pool", "kind"),
)
DB_SLOW_QUERIES = MetricSpec(
    "database_slow_queries_total",
    "counter",
    "Database statements slower than the slow-query threshold.",
    ("operation", "table"),
)
DB_POOL_SIZE = MetricSpec(
    "database_connection_pool_size",
    "gauge",
    "Configured number of connections the pool keeps.",
    ("pool",),
)
DB_POOL_MAX_OVERFLOW = MetricSpec(
    "database_connection_pool_max_overflow",
    "gauge",
    "Connections the pool may open beyond its size.",
    ("pool",),
)
DB_POOL_CHECKED_OUT = MetricSpec(
    "database_connection_pool_checked_out",
    "gauge",
    "Connections currently checked out of the pool.",
    ("pool",),
)
DB_POOL_OVERFLOW = MetricSpec(
    "database_connection_pool_overflow",
    "gauge",
    "Connections currently open beyond the pool size.",
    ("pool",),
)
DB_POOL_CHECKOUT_TIMEOUTS = MetricSpec(
    "database_connection_pool_checkout_timeouts_total",
    "counter",
    "Connection checkouts that gave up waiting for a free connection.",
    ("pool",),
)

# --- Caches -------------------------------------------------------------------
CACHE_REQUESTS = MetricSpec(
    "cache_requests_total",
    "counter",
    "Server-side cache lookups, by cache and result (hit or miss).",
    ("cache", "result"),
)
FRONTEND_CACHE_REQUESTS = MetricSpec(
    "frontend_cache_requests_total",
    "counter",
    "Frontend cache lookups reported by browsers, by cache and result (hit or miss).",
    ("cache", "result"),
)
FRONTEND_PREFETCHES = MetricSpec(
    "frontend_prefetch_total",
    "counter",
    "Pages the frontend prefetched, by outcome (used or wasted).",
    ("cache", "outcome"),
)

# --- The exporter itself ---------------------------------------------------------
FOLDED_SAMPLES = MetricSpec(
    "metrics_folded_samples_total",
    "counter",
    'Observations recorded under route="other" because their metric reached its series cap.',
    ("metric",),
)
METRICS_WRITES_DROPPED = MetricSpec(
    "metrics_writes_dropped_total",
    "counter",
    "Metric writes a worker could not make to its multiprocess directory, by reason; "
    "the values wait in the worker's memory until the directory has room.",
    ("reason",),
)

# --- Exported by others -------------------------------------------------------
# prometheus_client's process collector (not in multiprocess mode).
PROCESS_CPU = MetricSpec("process_cpu_seconds_total", "counter", "CPU time.", external=True)
PROCESS_RESIDENT_MEMORY = MetricSpec(
    "process_resident_memory_bytes", "gauge", "Resident memory.", external=True
)
PROCESS_VIRTUAL_MEMORY = MetricSpec(
    "process_virtual_memory_bytes", "gauge", "Virtual memory.", external=True
)
PROCESS_OPEN_FDS = MetricSpec("process_open_fds", "gauge", "Open fds.", external=True)
PROCESS_MAX_FDS = MetricSpec("process_max_fds", "gauge", "Max fds.", external=True)
PROCESS_START_TIME = MetricSpec("process_start_time_seconds", "gauge", "Start.", external=True)
# Prometheus itself, per target and for alerts.
UP = MetricSpec("up", "gauge", "Target scraped successfully.", external=True)
SCRAPE_DURATION = MetricSpec("scrape_duration_seconds", "gauge", "Scrape time.", external=True)
SCRAPE_SAMPLES = MetricSpec("scrape_samples_scraped", "gauge", "Samples.", external=True)
ALERTS = MetricSpec(
    "ALERTS", "gauge", "Active alerts.", ("alertname", "alertstate", "severity"), external=True
)

# Labels every scraped series carries, added by Prometheus.
TARGET_LABELS = frozenset({"job", "instance"})

CATALOGUE: tuple[MetricSpec, ...] = tuple(
    spec for spec in list(globals().values()) if isinstance(spec, MetricSpec) and not spec.external
)
EXTERNAL: tuple[MetricSpec, ...] = tuple(
    spec for spec in list(globals().values()) if isinstance(spec, MetricSpec) and spec.external
)


def _index(specs: Iterable[MetricSpec]) -> dict[str, tuple[MetricSpec, frozenset[str]]]:
    return {name: (spec, labels) for spec in specs for name, labels in spec.series.items()}


SERIES: Mapping[str, tuple[MetricSpec, frozenset[str]]] = _index((*CATALOGUE, *EXTERNAL))


def lookup(series_name: str) -> tuple[MetricSpec, frozenset[str]] | None:
    """The spec and the labels (target labels included) behind a PromQL series name.

    Series of other exporters come from their recorded fixtures (:mod:`external`).
    """
    found = SERIES.get(series_name)
    if found is None:
        # Imported here: only the build checks expressions, and only it reads fixtures.
        from genonaut_monitoring.exporters import external

        found = external.series().get(series_name)
    if found is None:
        return None
    spec, labels = found
    return spec, labels | TARGET_LABELS


# --- Collectors ---------------------------------------------------------------


class Metrics:
    """The catalogue's collectors, registered in one registry.

    >>> from prometheus_client import CollectorRegistry
    >>> m = Metrics(CollectorRegistry())
    >>> m[HTTP_REQUESTS].labels("GET", "/items", "200").inc()
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        import prometheus_client as pc

        self.registry = registry
        self._collectors: dict[str, Any] = {}
        for spec in CATALOGUE:
            # prometheus_client appends _total itself and rejects names that end in it.
            base = spec.name.removesuffix("_total") if spec.kind == "counter" else spec.name
            kwargs: dict[str, Any] = {"labelnames": spec.labels, "registry": registry}
            collector: Any
            if spec.kind == "counter":
                collector = pc.Counter(base, spec.help, **kwargs)
            elif spec.kind == "gauge":
                kwargs["multiprocess_mode"] = spec.multiprocess_mode
                collector = pc.Gauge(base, spec.help, **kwargs)
            else:
                kwargs["buckets"] = spec.buckets
                collector = pc.Histogram(base, spec.help, **kwargs)
            self._collectors[spec.name] = collector

    def __getitem__(self, spec: MetricSpec) -> Any:
        return self._collectors[spec.name]


# --- PromQL contract ------------------------------------------------------------


def check_expression(
    expr: str, extra_series: Mapping[str, frozenset[str]] | None = None
) -> list[Any]:
    """Check a PromQL expression against the catalogue (see :mod:`.contract`)."""
    # Imported here: the contract needs promql_parser, which the runtime never loads.
    from genonaut_monitoring.exporters import contract

    return list(contract.check_expression(expr, extra_series))
