"""Prometheus metrics, structured logs and a demo API for Genonaut's FastAPI services.

from exporters import instrument, pagination_query, configure_logging

configure_logging()
instrumentation = instrument(app, engine=engine)
"""

from exporters.cache import CacheRecorder
from exporters.context import RequestState, current
from exporters.instrument import (
    DEFAULT_FRONTEND_CACHES,
    Instrumentation,
    instrument,
    metrics_for,
)
from exporters.logs import configure_logging
from exporters.middleware import MetricsMiddleware
from exporters.pagination import PaginationParams, PaginationQuery, pagination_query

__all__ = [
    "DEFAULT_FRONTEND_CACHES",
    "CacheRecorder",
    "Instrumentation",
    "MetricsMiddleware",
    "PaginationParams",
    "PaginationQuery",
    "RequestState",
    "configure_logging",
    "current",
    "instrument",
    "metrics_for",
    "pagination_query",
]
