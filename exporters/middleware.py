"""The pure-ASGI middleware that records request metrics and writes the access log line.

Per request it does a handful of dictionary lookups and ``inc()``/``observe()``
calls on cached label children; the route label is the template the router
already matched (``scope["route"]``), never a re-match of the path.

    app.add_middleware(MetricsMiddleware, metrics=Metrics(registry))
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genonaut_monitoring.exporters import catalogue
from genonaut_monitoring.exporters.catalogue import OTHER, UNMATCHED_ROUTE
from genonaut_monitoring.exporters.context import RequestState, _current, report_fault
from genonaut_monitoring.exporters.logs import ACCESS_LOGGER, log_request
from genonaut_monitoring.exporters.pagination import Page, PaginationParams, detect, record_request

# Methods kept as label values; anything else a client sends folds into "other".
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
# Distinct route labels that carry a mount prefix. Mounts whose own path has
# parameters grow root_path by raw values; past this many labels they fold into "other".
MAX_MOUNTED_ROUTE_LABELS = 500
REQUEST_ID_HEADER = b"x-request-id"
# An incoming X-Request-ID is echoed and logged only when it is short and plain.
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class _RequestIds:
    """Unique request ids: a random per-process prefix and a counter (cheaper than uuid4)."""

    def __init__(self) -> None:
        self.reset()
        # A forked worker must not repeat its parent's ids.
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = os.urandom(8).hex()
        # next() on itertools.count is atomic under the GIL: safe from any thread.
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_ids = _RequestIds()


def request_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The request's X-Request-ID when it is safe to echo, else a new unique one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SAFE_REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return _ids.next()


class Recorder:
    """Collectors, cached label children and the labelling rules, shared by all requests."""

    def __init__(
        self, metrics: catalogue.Metrics, pagination: PaginationParams, log_requests: bool
    ) -> None:
        self.metrics = metrics
        self.pagination = pagination
        self.log_requests = log_requests
        self._requests = metrics[catalogue.HTTP_REQUESTS]
        self._duration = metrics[catalogue.HTTP_REQUEST_DURATION]
        self._in_progress = metrics[catalogue.HTTP_REQUESTS_IN_PROGRESS]
        self._exceptions = metrics[catalogue.HTTP_EXCEPTIONS]
        self._query = metrics[catalogue.PAGINATION_QUERY_DURATION]
        # labels() validates and locks on every call; these caches make it once per label set.
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._duration_children: dict[tuple[str, str], Any] = {}
        self._in_progress_children: dict[str, Any] = {}
        self._exception_children: dict[tuple[str, str, str], Any] = {}
        self._query_children: dict[tuple[str, str, str, str], Any] = {}
        self._pagination_children: dict[tuple[str, ...], Any] = {}
        self._mounted_labels: set[str] = set()
        # Route label -> mode its endpoint declared through pagination_query(mode=...).
        # Bounded by the route labels; resolves pages the query string leaves ambiguous.
        self._declared_modes: dict[str, str] = {}

    def in_progress(self, method: str) -> Any:
        """The in-progress gauge child of a (folded) method."""
        child = self._in_progress_children.get(method)
        if child is None:
            child = self._in_progress_children[method] = self._in_progress.labels(method)
        return child

    def route_label(self, scope: MutableMapping[str, Any], root_path: str) -> str:
        """Route template of a request, with the prefix of the mounts it went through."""
        route = scope.get("route")
        if route is None:
            return UNMATCHED_ROUTE
        template = getattr(route, "path_format", None)
        fastapi_scope = scope.get("fastapi")
        if fastapi_scope:
            # FastAPI serves a route of an included router through an "effective" copy
            # whose template carries the include prefix; the route object itself does not.
            context = fastapi_scope.get("effective_route_context")
            if context is not None and (
                context.original_route is route or context.starlette_route is route
            ):
                effective = context.starlette_route or context
                template = getattr(effective, "path_format", None) or template
        if not template:
            return UNMATCHED_ROUTE
        grown = scope.get("root_path", "")
        if grown == root_path:
            return str(template)
        prefix = grown[len(root_path) :] if grown.startswith(root_path) else grown
        if isinstance(route, Mount):
            # A mounted app that is not a router (static files), or matched nothing:
            # the mount's own template "/static/{path}" already holds its path.
            prefix = prefix.removesuffix(route.path)
        label = prefix + template
        if label not in self._mounted_labels:
            if len(self._mounted_labels) >= MAX_MOUNTED_ROUTE_LABELS:
                return OTHER
            self._mounted_labels.add(label)
        return label

    def detect_page(self, state: RequestState) -> Page | None:
        """Pagination requested by the query string, or None.

        A size parameter alone (``?limit=50``) reads as offset 0; on a route whose
        endpoint declared another mode it takes that mode, so a request failing
        before its handler runs is labelled like the ones the handler served.
        """
        page = detect(state.scope.get("query_string", b""), self.pagination)
        if page is not None and page.ambiguous and self._declared_modes:
            declared = self._declared_modes.get(state.route)
            if declared is not None:
                page.override(declared, None, None)
        return page

    def declare_mode(self, route: str, mode: str) -> None:
        """Remember the pagination mode an endpoint declared for its route."""
        if self._declared_modes.get(route) != mode:
            self._declared_modes[route] = mode

    def observe_query(self, route: str, page: Page, seconds: float) -> None:
        """Record one timed page query (from pagination_query)."""
        key = (route, *page.labels())
        child = self._query_children.get(key)
        if child is None:
            child = self._query_children[key] = self._query.labels(*key)
        child.observe(seconds)

    def finish(
        self,
        state: RequestState,
        method: str,
        status: int,
        duration: float,
        exception: str | None,
    ) -> None:
        """Record one finished request and write its access log line."""
        route = self.route_label(state.scope, state.root_path)
        key = (method, route, status)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self._requests.labels(method, route, str(status))
        child.inc()
        duration_key = (method, route)
        timer = self._duration_children.get(duration_key)
        if timer is None:
            timer = self._duration_children[duration_key] = self._duration.labels(*duration_key)
        timer.observe(duration)
        if exception is not None:
            exception_key = (method, route, exception)
            counter = self._exception_children.get(exception_key)
            if counter is None:
                counter = self._exception_children[exception_key] = self._exceptions.labels(
                    *exception_key
                )
            counter.inc()

        page = state.pagination()
        # A 4xx paginated request asked for something invalid; its timing says nothing
        # about pagination. 5xx ones stay: deep offsets that time out are the point.
        if (
            page is not None
            and page.complete
            and route != UNMATCHED_ROUTE
            and route != OTHER
            and not 400 <= status < 500
        ):
            record_request(
                self.metrics, self._pagination_children, route, page, duration, state.items
            )
        if self.log_requests and ACCESS_LOGGER.isEnabledFor(logging.INFO):
            self._log(state, route, status, duration, page)

    @staticmethod
    def _log(
        state: RequestState, route: str, status: int, duration: float, page: Page | None
    ) -> None:
        scope = state.scope
        fields: dict[str, Any] = {
            "event": "request",
            "request_id": state.request_id,
            "method": scope["method"],
            "route": route,
            "path": scope["path"],
            "status": status,
            "duration_ms": round(duration * 1000.0, 3),
        }
        if page is not None:
            fields.update(page.log_fields())
            fields["items_returned"] = state.items
            seconds = state.query_seconds
            fields["pagination_query_ms"] = None if seconds is None else round(seconds * 1e3, 3)
        log_request(
            fields, "%s %s %d %.1fms", scope["method"], scope["path"], status, duration * 1e3
        )


class MetricsMiddleware:
    """Pure ASGI middleware: RED metrics by route template, pagination, access log.

    Non-HTTP scopes and ``excluded_paths`` pass straight through. A failure in
    the recording is logged (rate-limited) and never fails the request.

        app.add_middleware(MetricsMiddleware, metrics=metrics, excluded_paths=("/metrics",))
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: catalogue.Metrics,
        pagination: PaginationParams | None = None,
        excluded_paths: Iterable[str] = (),
        log_requests: bool = True,
        first_requests: Callable[[], bool] | None = None,
    ) -> None:
        self.app = app
        self.recorder = Recorder(metrics, pagination or PaginationParams(), log_requests)
        self.excluded_paths = frozenset(excluded_paths)
        # Called before each request until it returns True (lazy engines attach there).
        self.first_requests = first_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.first_requests is not None and self.first_requests():
            self.first_requests = None
        root_path = scope.get("root_path", "")
        path = scope["path"]
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        if path in self.excluded_paths:
            await self.app(scope, receive, send)
            return

        recorder = self.recorder
        method = scope["method"]
        if method not in METHODS:
            method = OTHER
        state = RequestState(scope, root_path, request_id(scope["headers"]), recorder)
        echoed = (REQUEST_ID_HEADER, state.request_id.encode("ascii"))
        # Until a response starts, the server answers 500 for us (or an exception does).
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if not any(name == REQUEST_ID_HEADER for name, _ in headers):
                    headers.append(echoed)
                    message = {**message, "headers": headers}
            await send(message)

        # Set only once inc() succeeded: a failed increment must not be decremented.
        in_progress = None
        try:
            gauge = recorder.in_progress(method)
            gauge.inc()
            in_progress = gauge
        except Exception:
            report_fault("MetricsMiddleware (start)")
        token = _current.set(state)
        exception: str | None = None
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_status)
        except Exception as exc:
            status = 500
            exception = type(exc).__name__
            raise
        finally:
            duration = time.perf_counter() - start
            _current.reset(token)
            try:
                if in_progress is not None:
                    in_progress.dec()
                recorder.finish(state, method, status, duration, exception)
            except Exception:
                report_fault("MetricsMiddleware")
