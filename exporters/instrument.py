"""``instrument(app)``: metrics middleware, ``/metrics``, frontend reports and DB listeners.

app = FastAPI()
instrumentation = instrument(app, engine=engine)
pages = instrumentation.cache("content-pages")
pages.hit()
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, ProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from genonaut_monitoring import config
from genonaut_monitoring.exporters import catalogue, mpdir, mpfile
from genonaut_monitoring.exporters.cache import CacheRecorder, CacheRecorders, frontend_endpoint
from genonaut_monitoring.exporters.context import report_fault
from genonaut_monitoring.exporters.exposition import CONTENT_TYPE, TextExposition
from genonaut_monitoring.exporters.middleware import MetricsMiddleware
from genonaut_monitoring.exporters.mpstore import install as install_safe_files
from genonaut_monitoring.exporters.pagination import Paginated, PaginationParams

DEFAULT_FRONTEND_CACHES = ("content-pages", "content-items", "thumbnails")
MULTIPROC_ENV = mpfile.ENV
# Multiprocess files are written so that a full or read-only directory never kills a
# worker (exporters.mpstore); done on import, before any collector is created.
install_safe_files()

_metrics_by_registry: weakref.WeakKeyDictionary[CollectorRegistry, catalogue.Metrics] = (
    weakref.WeakKeyDictionary()
)
_metrics_lock = threading.Lock()


def metrics_for(registry: CollectorRegistry | None = None) -> catalogue.Metrics:
    """The catalogue's collectors in ``registry`` (default REGISTRY), created once per registry.

    A custom registry also gets a ProcessCollector (REGISTRY has one already).
    """
    registry = REGISTRY if registry is None else registry
    with _metrics_lock:
        metrics = _metrics_by_registry.get(registry)
        if metrics is None:
            metrics = catalogue.Metrics(registry)
            if registry is not REGISTRY:
                ProcessCollector(registry=registry)
            # Zeros for alerts; in multiprocess mode this also creates the worker's counter
            # file now, with room for counting failed writes before any disk fills up.
            dropped = metrics[catalogue.METRICS_WRITES_DROPPED]
            for reason in catalogue.WRITE_DROP_REASONS:
                dropped.labels(reason)
            _metrics_by_registry[registry] = metrics
    return metrics


class Instrumentation:
    """What :func:`instrument` set up: the registry, the collectors, cache recorders.

    >>> instrumentation.cache("content-pages").miss()  # doctest: +SKIP
    """

    def __init__(self, registry: CollectorRegistry, metrics: catalogue.Metrics) -> None:
        self.registry = registry
        self.metrics = metrics
        self._caches = CacheRecorders(metrics)

    def cache(self, name: str) -> CacheRecorder:
        """The hit/miss recorder of server-side cache ``name`` (both counters start at 0)."""
        return self._caches.get(name)


def metrics_endpoint(
    registry: CollectorRegistry, lazy: LazyEngines | None = None
) -> Callable[[Request], Response]:
    """``GET /metrics``: the registry, or every worker's values in multiprocess mode."""
    multiproc_dir = os.environ.get(MULTIPROC_ENV)
    source: Any = registry
    if multiproc_dir:
        # Each worker writes its values to files in the directory; the collector prunes
        # dead workers' files and reads them all at every scrape. A missing or unusable
        # directory is reported (ERROR, rate-limited), never raised: workers still serve.
        source = mpdir.DirectoryCollector(multiproc_dir)
    exposition = TextExposition()

    # A sync endpoint: Starlette runs it in the threadpool, so a large scrape does
    # not stall the event loop serving API requests.
    def metrics(request: Request) -> Response:
        if lazy is not None:
            lazy.resolve()
        return Response(exposition.render(source), media_type=CONTENT_TYPE)

    return metrics


class LazyEngines:
    """``engine=`` given as a zero-argument callable, for apps that build engines late.

    The callable is called at the first request (or scrape), and again at later
    ones while it returns None or raises (reported, rate-limited); once it returns
    engines, their listeners are attached, exactly once.
    """

    def __init__(self, factory: Callable[[], Any], attach: Callable[[Any], None]) -> None:
        self._factory, self._attach = factory, attach
        self._lock = threading.Lock()
        self.pending = True

    def resolve(self) -> bool:
        """Attach the engines if the factory has them now; True once that is done."""
        if not self.pending:
            return True
        with self._lock:
            if self.pending:
                try:
                    engine = self._factory()
                    if engine is not None:
                        self._attach(engine)
                        self.pending = False
                except Exception:
                    report_fault("instrument(engine=callable): the engine factory")
        return not self.pending


def _engines(engine: Any) -> list[tuple[str | None, Any]]:
    if isinstance(engine, Mapping):
        return [(str(name), value) for name, value in engine.items()]
    if isinstance(engine, Sequence) and not isinstance(engine, (str, bytes)):
        return [(None, value) for value in engine]
    return [(None, engine)]


def _is_factory(engine: Any) -> bool:
    """A zero-argument callable, not an engine (engines are not callable) nor a collection."""
    return callable(engine) and not isinstance(engine, (Mapping, Sequence, type))


def instrument(
    app: Any,
    *,
    engine: Any = None,
    registry: CollectorRegistry | None = None,
    pagination: PaginationParams | None = None,
    pagination_routes: Mapping[str, Paginated | None] | None = None,
    max_series_per_metric: int | None = None,
    slow_query_seconds: float | None = None,
    metrics_path: str = "/metrics",
    frontend_path: str = "/api/v1/telemetry/frontend",
    frontend_caches: Iterable[str] = DEFAULT_FRONTEND_CACHES,
    log_requests: bool = True,
    excluded_paths: Iterable[str] = (),
    sql_comments: bool = False,
) -> Instrumentation:
    """Instrument a FastAPI app in one call; returns the :class:`Instrumentation`.

    Adds the metrics middleware, ``GET metrics_path`` (not itself measured),
    ``POST frontend_path`` for frontend cache reports (cache names limited to
    ``frontend_caches``), and SQLAlchemy listeners on ``engine`` (an Engine or
    AsyncEngine, a sequence of them, a mapping of pool name to engine, or a
    zero-argument callable returning one of those, called at the first request
    or scrape, for engines an app creates late; see :class:`LazyEngines`).
    Every metric goes to ``registry`` (default: prometheus_client's REGISTRY);
    instrumenting several apps with one registry shares its collectors.
    With PROMETHEUS_MULTIPROC_DIR set, ``/metrics`` serves all workers' values; live
    gauges of exited workers stop counting at the next scrape (exporters.mpdir).
    ``sql_comments=True`` appends ``/*request_id='…',route='…'*/`` (sqlcommenter) to
    every statement run in a request, so ``pg_stat_activity`` names the route.

    Pagination is read from each route's declared parameters (names from
    ``pagination``); ``pagination_routes`` maps route templates to
    :func:`paginated` declarations for routes whose parameters say too little.
    No metric exposes more than ``max_series_per_metric`` series (default
    ``config.Exporter.max_series_per_metric``): past it,
    new label sets are recorded under ``route="other"`` and counted in
    ``metrics_folded_samples_total``.

        app = FastAPI()
        instrument(app, engine=engine, slow_query_seconds=0.2,
                   pagination_routes={"/tags/popular": paginated("offset", page_size=20)})
    """
    if getattr(app.state, "genonaut_instrumentation", None) is not None:
        raise RuntimeError("instrument(app): this app is already instrumented; call it once")
    routes = dict(pagination_routes or {})
    for template, declared in routes.items():
        if not isinstance(template, str) or not template.startswith("/"):
            raise ValueError(
                f"instrument(pagination_routes=...): key {template!r} must be a route template "
                "such as '/api/v1/content'"
            )
        if declared is not None and not isinstance(declared, Paginated):
            raise ValueError(
                f"instrument(pagination_routes=...): {template!r} maps to {declared!r}; give "
                "paginated('offset'), paginated('cursor', page_size=50) or None (not paginated)"
            )
    if max_series_per_metric is None:
        max_series_per_metric = config.CONFIG.exporter.max_series_per_metric
    if type(max_series_per_metric) is not int or max_series_per_metric < 1:
        raise ValueError(
            f"instrument(max_series_per_metric={max_series_per_metric!r}): give a positive integer"
        )
    registry = REGISTRY if registry is None else registry
    metrics = metrics_for(registry)
    instrumentation = Instrumentation(registry, metrics)
    slow = (
        config.CONFIG.thresholds.slow_query_seconds
        if slow_query_seconds is None
        else slow_query_seconds
    )

    def attach(engines: Any) -> None:
        # Imported here: SQLAlchemy is only needed by apps that pass an engine.
        from genonaut_monitoring.exporters import db

        for name, each in _engines(engines):
            db.instrument_engine(
                each,
                metrics=metrics,
                slow_query_seconds=slow,
                name=name,
                sql_comments=sql_comments,
            )

    lazy = LazyEngines(engine, attach) if _is_factory(engine) else None
    endpoint = metrics_endpoint(registry, lazy)

    app.add_middleware(
        MetricsMiddleware,
        metrics=metrics,
        pagination=pagination,
        pagination_routes=routes,
        max_series_per_metric=max_series_per_metric,
        excluded_paths=(metrics_path, *excluded_paths),
        log_requests=log_requests,
        first_requests=lazy.resolve if lazy is not None else None,
    )
    app.add_route(metrics_path, endpoint, methods=["GET"], include_in_schema=False)
    # An API route: FastAPI records those in scope["route"], so the endpoint gets its label.
    app.add_api_route(
        frontend_path,
        frontend_endpoint(metrics, tuple(frontend_caches)),
        methods=["POST"],
        status_code=204,
        include_in_schema=False,
    )
    if engine is not None and lazy is None:
        attach(engine)
    app.state.genonaut_instrumentation = instrumentation
    return instrumentation
