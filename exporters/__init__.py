"""Prometheus metrics, structured logs and a demo API for Genonaut's FastAPI services.

from genonaut_monitoring.exporters import instrument, paginated, configure_logging

configure_logging()
instrumentation = instrument(app, engine=engine)
"""

from genonaut_monitoring.exporters.cache import CacheRecorder
from genonaut_monitoring.exporters.context import RequestState, current
from genonaut_monitoring.exporters.instrument import (
    DEFAULT_FRONTEND_CACHES,
    Instrumentation,
    instrument,
    metrics_for,
)
from genonaut_monitoring.exporters.logs import configure_logging
from genonaut_monitoring.exporters.middleware import MetricsMiddleware
from genonaut_monitoring.exporters.pagination import (
    Paginated,
    PaginationParams,
    PaginationQuery,
    paginated,
    pagination_query,
)

__all__ = [
    "DEFAULT_FRONTEND_CACHES",
    "CacheRecorder",
    "Instrumentation",
    "MetricsMiddleware",
    "Paginated",
    "PaginationParams",
    "PaginationQuery",
    "RequestState",
    "configure_logging",
    "current",
    "instrument",
    "metrics_for",
    "paginated",
    "pagination_query",
]
