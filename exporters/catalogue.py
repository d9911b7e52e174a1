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
from collections.abc import Iterable, Iterator, Mapping
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
CACHE_RESULTS = ("hit", "miss")
PREFETCH_OUTCOMES = ("used", "wasted")

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
    def counter_like(self) -> bool:
        """True when its series only ever go up, so PromQL must rate them."""
        return self.kind in ("counter", "histogram")


_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
_DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_PAGINATION_LABELS = ("route", "mode", "page_size_class", "offset_range")

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
PAGINATION_REQUEST_DURATION = MetricSpec(
    "pagination_request_duration_seconds",
    "histogram",
    "Duration of paginated requests, by route, mode, page-size class and offset range.",
    _PAGINATION_LABELS,
    _LATENCY_BUCKETS,
)
PAGINATION_QUERY_DURATION = MetricSpec(
    "pagination_query_duration_seconds",
    "histogram",
    "Duration of the database query that fetches one page, timed by the repository.",
    _PAGINATION_LABELS,
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
    "Database statements that raised an error.",
    ("operation", "table"),
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


@dataclass(frozen=True)
class Problem:
    """One way an expression breaks the metric contract."""

    message: str

    def __str__(self) -> str:
        return self.message


def _children(node: Any) -> list[Any]:
    """Direct sub-expressions of a promql_parser node."""
    import promql_parser as pp

    if isinstance(node, pp.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, pp.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, pp.Call):
        return list(node.args)
    if isinstance(node, pp.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
        return [node.expr]
    return []


def _walk(node: Any, rated: bool = False) -> Iterator[tuple[Any, bool]]:
    """Every node below and including ``node``, with whether a range function rates it."""
    import promql_parser as pp

    yield node, rated
    inner = rated or (isinstance(node, pp.Call) and node.func.name in _RANGE_FUNCTIONS)
    for child in _children(node):
        yield from _walk(child, inner)


def check_expression(
    expr: str, extra_series: Mapping[str, frozenset[str]] | None = None
) -> list[Problem]:
    """Check a PromQL expression (Grafana variables already substituted).

    ``extra_series`` maps recording-rule names to the labels they keep. Returns
    the problems found: a parse error, an unknown metric, a label the metric
    lacks, a histogram quantile without ``_bucket``/``le``, a counter used
    outside ``rate``/``increase``. An empty list means the expression is sound.
    """
    import promql_parser as pp

    try:
        ast = pp.parse(expr)
    except ValueError as exc:
        return [Problem(f"does not parse: {exc}")]

    extra = dict(extra_series or {})
    problems: list[Problem] = []

    def series_labels(name: str) -> tuple[MetricSpec | None, frozenset[str]] | None:
        if name in extra:
            return None, extra[name] | TARGET_LABELS
        return lookup(name)

    def selector_labels(node: Any) -> frozenset[str]:
        """Labels available below ``node``: those of every metric it selects."""
        labels: set[str] = set()
        for child, _ in _walk(node):
            if isinstance(child, pp.VectorSelector) and child.name:
                found = series_labels(child.name)
                if found:
                    labels |= found[1]
            if isinstance(child, pp.Call) and child.func.name in ("label_replace", "label_join"):
                target = child.args[1]
                if isinstance(target, pp.StringLiteral):
                    labels.add(target.val)
        return frozenset(labels)

    for node, rated in _walk(ast):
        if isinstance(node, pp.VectorSelector):
            name = node.name
            if not name:
                problems.append(Problem("selects series without a metric name"))
                continue
            found = series_labels(name)
            if found is None:
                problems.append(
                    Problem(
                        f"metric {name!r} is not in the catalogue (exporters/catalogue.py), "
                        "nor recorded from another exporter (exporters/*.json), "
                        "nor produced by a recording rule"
                    )
                )
                continue
            spec, labels = found
            for matcher in node.matchers.matchers:
                if matcher.name != "__name__" and matcher.name not in labels:
                    problems.append(
                        Problem(
                            f"metric {name!r} has no label {matcher.name!r} "
                            f"(it has: {', '.join(sorted(labels))})"
                        )
                    )
            if spec is not None and spec.counter_like and not rated:
                problems.append(
                    Problem(
                        f"{spec.kind} {name!r} is used outside rate()/increase(): "
                        "its raw value only ever grows; wrap it in rate(...[$__rate_interval])"
                    )
                )
        elif isinstance(node, pp.AggregateExpr) and node.modifier is not None:
            available = selector_labels(node.expr)
            for label in node.modifier.labels:
                if label not in available:
                    problems.append(
                        Problem(
                            f"{node.op} groups by {label!r}, which none of its metrics has "
                            f"(they have: {', '.join(sorted(available)) or 'no labels'})"
                        )
                    )
        elif isinstance(node, pp.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            join = list(matching.labels) if matching is not None else []
            if matching is not None and matching.type == pp.LabelModifierType.Include:
                for side in (node.lhs, node.rhs):
                    available = selector_labels(side)
                    for label in join:
                        if label not in available:
                            problems.append(Problem(f"on({label}) names a label the operand lacks"))
        elif isinstance(node, pp.Call) and node.func.name == "histogram_quantile":
            inner = [n for n, _ in _walk(node.args[1]) if isinstance(n, pp.VectorSelector)]
            if not any(n.name and n.name.endswith("_bucket") for n in inner) and not any(
                n.name in extra for n in inner
            ):
                problems.append(
                    Problem("histogram_quantile() needs a *_bucket series (with its le label)")
                )
            for agg, _ in _walk(node.args[1]):
                if (
                    isinstance(agg, pp.AggregateExpr)
                    and agg.modifier is not None
                    and agg.modifier.type == pp.AggModifierType.By
                    and "le" not in agg.modifier.labels
                ):
                    problems.append(
                        Problem(f"histogram_quantile() over {agg.op} by (...) must keep 'le'")
                    )
    # One message per distinct problem, in a stable order.
    return list(dict.fromkeys(problems))


# Functions whose range-vector argument legitimately holds counters.
_RANGE_FUNCTIONS = frozenset(
    {
        "rate",
        "irate",
        "increase",
        "resets",
        "absent_over_time",
        "present_over_time",
        "count_over_time",
        "changes",
    }
)
