"""The pure-ASGI middleware that records request metrics and writes the access log line.

Per request it does a handful of dictionary lookups and ``inc()``/``observe()``
calls on cached label children; the route label and the route's pagination come
from the route object the router already matched (:mod:`.routes`), never from
a re-match of the path.

    app.add_middleware(MetricsMiddleware, metrics=Metrics(registry))
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genonaut_monitoring import config
from genonaut_monitoring.exporters import catalogue
from genonaut_monitoring.exporters.catalogue import OTHER, UNMATCHED_ROUTE
from genonaut_monitoring.exporters.context import _UNREAD, RequestState, _current, report_fault
from genonaut_monitoring.exporters.logs import ACCESS_LOGGER, log_request
from genonaut_monitoring.exporters.pagination import Page, Paginated, PaginationParams
from genonaut_monitoring.exporters.routes import RouteTable, Target
from genonaut_monitoring.exporters.series import Children, PaginationSeries

# Methods kept as label values; anything else a client sends folds into "other".
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
# nginx's status for a client that closed the connection before the response started.
CLIENT_CLOSED_REQUEST = 499
# Methods whose requests carry a body, whose reading sees a client that leaves.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE", OTHER})
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
        self,
        metrics: catalogue.Metrics,
        pagination: PaginationParams,
        log_requests: bool,
        *,
        pagination_routes: Mapping[str, Paginated | None] | None = None,
        max_series: int | None = None,
    ) -> None:
        if max_series is None:
            max_series = config.CONFIG.exporter.max_series_per_metric
        self.metrics = metrics
        self.pagination = pagination
        self.log_requests = log_requests
        self.pages = PaginationSeries(metrics, max_series)
        self.routes = RouteTable(pagination, pagination_routes or {}, self.pages.prepare)
        self._requests = Children(metrics, catalogue.HTTP_REQUESTS, max_series, 1)
        self._duration = Children(metrics, catalogue.HTTP_REQUEST_DURATION, max_series, 1)
        self._exceptions = Children(metrics, catalogue.HTTP_EXCEPTIONS, max_series, 1)
        self._in_progress = metrics[catalogue.HTTP_REQUESTS_IN_PROGRESS]
        self._in_progress_children: dict[str, Any] = {}

    def in_progress(self, method: str) -> Any:
        """The in-progress gauge child of a (folded) method."""
        child = self._in_progress_children.get(method)
        if child is None:
            child = self._in_progress_children[method] = self._in_progress.labels(method)
        return child

    def target(self, state: RequestState) -> Target:
        """The route target (label, pagination) of a request, from what the router left."""
        return self.routes.lookup(state.scope, state.path, state.root_path)

    def observe_query(self, route: str, page: Page, seconds: float) -> None:
        """Record one timed page query (from pagination_query)."""
        self.pages.observe_query(route, page, seconds)

    def finish(
        self,
        state: RequestState,
        method: str,
        status: int,
        duration: float,
        exception: str | None,
    ) -> None:
        """Record one finished request and write its access log line."""
        target = state.target
        if target is None:
            target = self.routes.lookup(state.scope, state.path, state.root_path)
        route = target.label
        # The children caches are read here directly: this runs for every request.
        counted = (method, route, str(status))
        child = self._requests.cache.get(counted)
        if child is None:
            child = self._requests.make(counted)
        child.inc()
        timed = (method, route)
        child = self._duration.cache.get(timed)
        if child is None:
            child = self._duration.make(timed)
        child.observe(duration)
        if exception is not None:
            self._exceptions.get((method, route, exception)).inc()

        page = state.page
        if page is _UNREAD:
            paging = target.paging
            page = None if paging is None else paging.parse(state.scope.get("query_string", b""))
        # A 4xx paginated request asked for something invalid; its timing says nothing
        # about pagination. 5xx ones stay: deep offsets that time out are the point.
        if (
            page is not None
            and page.complete
            and route != UNMATCHED_ROUTE
            and route != OTHER
            and not 400 <= status < 500
        ):
            seconds, items = page.measured
            if page.query_seconds is None and seconds is not None:
                # No pagination_query() ran: the statements the listeners saw page.
                self.pages.observe_query(route, page, seconds)
            self.pages.observe_request(route, page, duration, items)
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
            seconds, fields["items_returned"] = page.measured
            fields["pagination_query_ms"] = None if seconds is None else round(seconds * 1e3, 3)
        log_request(
            fields, "%s %s %d %.1fms", scope["method"], scope["path"], status, duration * 1e3
        )


class MetricsMiddleware:
    """Pure ASGI middleware: RED metrics by route template, pagination, access log.

    Non-HTTP scopes and ``excluded_paths`` pass straight through. A failure in
    the recording is logged (rate-limited) and never fails the request. A
    client that disconnects before the response starts is recorded as status
    499 (nginx's "client closed request"), never as a 5xx or an exception.

        app.add_middleware(MetricsMiddleware, metrics=metrics, excluded_paths=("/metrics",))
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: catalogue.Metrics,
        pagination: PaginationParams | None = None,
        pagination_routes: Mapping[str, Paginated | None] | None = None,
        max_series_per_metric: int | None = None,
        excluded_paths: Iterable[str] = (),
        log_requests: bool = True,
        first_requests: Callable[[], bool] | None = None,
    ) -> None:
        self.app = app
        self.recorder = Recorder(
            metrics,
            pagination or PaginationParams(),
            log_requests,
            pagination_routes=pagination_routes,
            max_series=max_series_per_metric,
        )
        self.excluded_paths = frozenset(excluded_paths)
        # Called before each request until it returns True (lazy engines attach there).
        self.first_requests = first_requests
        self._prepared = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                # Start-up: read the routes now, so paginated routes have their series at
                # zero before the first scrape.
                self._prepare(scope)
            await self.app(scope, receive, send)
            return
        if not self._prepared:
            self._prepare(scope)
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
        state = RequestState(scope, root_path, request_id(scope["headers"]), recorder, path)
        echoed = (REQUEST_ID_HEADER, state.request_id.encode("ascii"))
        # 0 until a response starts; then its status. A request that ends without one
        # is a 500 (the server answers that), unless the client had left.
        status = 0
        # Whether the client disconnected before the response started.
        left = False

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                for name, _ in headers:
                    if name == REQUEST_ID_HEADER:
                        break
                else:
                    message = {**message, "headers": [*headers, echoed]}
            await send(message)

        # Only a request with a body can see its client leave halfway through sending it;
        # the others keep the server's own receive (one closure less on the hot path).
        watched = receive
        if method in BODY_METHODS:

            async def receive_watching() -> Message:
                nonlocal left
                message = await receive()
                if message["type"] == "http.disconnect" and not status:
                    left = True
                return message

            watched = receive_watching

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
            await self.app(scope, watched, send_with_status)
        except ClientDisconnect:
            # The client left before its request was read: nobody to answer, nothing broke.
            if status and not left:
                raise
            left = True
            ACCESS_LOGGER.debug(
                "client disconnected before the response: %s %s", method, scope["path"]
            )
        except Exception as exc:
            status = 500
            exception = type(exc).__name__
            raise
        finally:
            duration = time.perf_counter() - start
            _current.reset(token)
            if left and exception is None:
                status = CLIENT_CLOSED_REQUEST
            elif not status:
                status = 500
            try:
                if in_progress is not None:
                    in_progress.dec()
                recorder.finish(state, method, status, duration, exception)
            except Exception:
                report_fault("MetricsMiddleware")

    def _prepare(self, scope: Scope) -> None:
        self._prepared = True
        try:
            self.recorder.routes.prepare(scope.get("app"))
        except Exception:
            report_fault("MetricsMiddleware (reading the routes)")
