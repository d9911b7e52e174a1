"""``instrument(app)``: metrics middleware, ``/metrics``, frontend reports and DB listeners.

app = FastAPI()
instrumentation = instrument(app, engine=engine)
pages = instrumentation.cache("content-pages")
pages.hit()
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, ProcessCollector
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.requests import Request
from starlette.responses import Response

import config
from exporters import catalogue
from exporters.cache import CacheRecorder, CacheRecorders, frontend_endpoint
from exporters.exposition import CONTENT_TYPE, TextExposition
from exporters.middleware import MetricsMiddleware
from exporters.pagination import PaginationParams

DEFAULT_FRONTEND_CACHES = ("content-pages", "content-items", "thumbnails")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

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


def metrics_endpoint(registry: CollectorRegistry) -> Callable[[Request], Response]:
    """``GET /metrics``: the registry, or every worker's values in multiprocess mode."""
    multiproc_dir = os.environ.get(MULTIPROC_ENV)
    source: Any = registry
    if multiproc_dir:
        if not os.path.isdir(multiproc_dir):
            raise ValueError(
                f"{MULTIPROC_ENV}={multiproc_dir!r} is not a directory: create it (empty) "
                "before starting the workers, or unset it to serve one process's metrics"
            )
        # Each worker writes its values to files in the directory; the collector keeps
        # no state and reads them all at every scrape, so one is made here, not per scrape.
        source = MultiProcessCollector(None, path=multiproc_dir)
    exposition = TextExposition()

    # A sync endpoint: Starlette runs it in the threadpool, so a large scrape does
    # not stall the event loop serving API requests.
    def metrics(request: Request) -> Response:
        return Response(exposition.render(source), media_type=CONTENT_TYPE)

    return metrics


def _engines(engine: Any) -> list[tuple[str | None, Any]]:
    if isinstance(engine, Mapping):
        return [(str(name), value) for name, value in engine.items()]
    if isinstance(engine, Sequence) and not isinstance(engine, (str, bytes)):
        return [(None, value) for value in engine]
    return [(None, engine)]


def instrument(
    app: Any,
    *,
    engine: Any = None,
    registry: CollectorRegistry | None = None,
    pagination: PaginationParams | None = None,
    slow_query_seconds: float | None = None,
    metrics_path: str = "/metrics",
    frontend_path: str = "/api/v1/telemetry/frontend",
    frontend_caches: Iterable[str] = DEFAULT_FRONTEND_CACHES,
    log_requests: bool = True,
    excluded_paths: Iterable[str] = (),
) -> Instrumentation:
    """Instrument a FastAPI app in one call; returns the :class:`Instrumentation`.

    Adds the metrics middleware, ``GET metrics_path`` (not itself measured),
    ``POST frontend_path`` for frontend cache reports (cache names limited to
    ``frontend_caches``), and SQLAlchemy listeners on ``engine`` (an Engine or
    AsyncEngine, a sequence of them, or a mapping of pool name to engine).
    Every metric goes to ``registry`` (default: prometheus_client's REGISTRY);
    instrumenting several apps with one registry shares its collectors.
    With PROMETHEUS_MULTIPROC_DIR set, ``/metrics`` serves all workers' values.

        app = FastAPI()
        instrument(app, engine=engine, slow_query_seconds=0.2)
    """
    if getattr(app.state, "genonaut_instrumentation", None) is not None:
        raise RuntimeError("instrument(app): this app is already instrumented; call it once")
    registry = REGISTRY if registry is None else registry
    # First: it refuses a bad PROMETHEUS_MULTIPROC_DIR before the app is changed.
    endpoint = metrics_endpoint(registry)
    metrics = metrics_for(registry)
    instrumentation = Instrumentation(registry, metrics)
    slow = (
        config.CONFIG.thresholds.slow_query_seconds
        if slow_query_seconds is None
        else slow_query_seconds
    )

    app.add_middleware(
        MetricsMiddleware,
        metrics=metrics,
        pagination=pagination,
        excluded_paths=(metrics_path, *excluded_paths),
        log_requests=log_requests,
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
    if engine is not None:
        # Imported here: SQLAlchemy is only needed by apps that pass an engine.
        from exporters import db

        for name, each in _engines(engine):
            db.instrument_engine(each, metrics=metrics, slow_query_seconds=slow, name=name)
    multiproc_dir = os.environ.get(MULTIPROC_ENV)
    if multiproc_dir:
        # Live gauges (requests in progress) of a worker that exits must stop counting.
        # The pid is read at exit (a worker forked after this call has its own) and the
        # directory now (the environment may have changed by then).
        atexit.register(lambda: mark_process_dead(os.getpid(), multiproc_dir))
    app.state.genonaut_instrumentation = instrumentation
    return instrumentation
