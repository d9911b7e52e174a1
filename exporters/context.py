"""Per-request state shared by the middleware, the pagination timer and the loggers.

The middleware puts one mutable :class:`RequestState` in a context variable
for each request. Code running inside the request reads it with
:func:`current` and mutates it; nothing inside the request ever calls
``.set()`` on the variable, because sync endpoints run in a thread with a
*copy* of the context: a new value set there would never reach the
middleware, while a mutation of the shared object does.

    >>> state = current()
    >>> state is None  # outside a request
    True
"""

from __future__ import annotations

import logging
import time
from collections.abc import MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from genonaut_monitoring.exporters.catalogue import UNMATCHED_ROUTE

if TYPE_CHECKING:
    from genonaut_monitoring.exporters.middleware import Recorder
    from genonaut_monitoring.exporters.pagination import Page
    from genonaut_monitoring.exporters.routes import Target

_log = logging.getLogger("genonaut_monitoring.exporters")

# Seconds between two logged metric faults; a broken collector must not flood the logs.
FAULT_LOG_INTERVAL = 60.0
_last_fault = -FAULT_LOG_INTERVAL


class RequestState:
    """What the middleware knows about the request being served."""

    __slots__ = ("page", "path", "recorder", "request_id", "root_path", "scope", "target")

    def __init__(
        self,
        scope: MutableMapping[str, Any],
        root_path: str,
        request_id: str,
        recorder: Recorder,
        path: str = "",
    ) -> None:
        self.scope = scope
        # root_path and path (without it) when the request entered the middleware.
        self.root_path = root_path
        self.path = path
        self.request_id = request_id
        self.recorder = recorder
        # The route's label and pagination, once the router has matched (routes.Target).
        self.target: Target | None = None
        # The page, read at most once from the route's parameters (pagination_query()
        # may complete it); _UNREAD until then.
        self.page: Any = _UNREAD

    def route_target(self) -> Target:
        """The matched route's label and pagination (``unmatched`` until the router matched)."""
        target = self.target
        if target is None:
            target = self.recorder.target(self)
            if target.label != UNMATCHED_ROUTE:
                self.target = target
        return target

    @property
    def route(self) -> str:
        """Route template label of this request (``unmatched`` until the router matched)."""
        return self.route_target().label

    def pagination(self) -> Page | None:
        """This request's page, read from its route's parameters on first use after routing."""
        page = self.page
        if page is _UNREAD:
            paging = self.route_target().paging
            if self.target is None:
                return None  # not routed yet: ask again later
            page = self.page = (
                paging.parse(self.scope.get("query_string", b"")) if paging is not None else None
            )
        return page


# RequestState.page before the route's parameters were read.
_UNREAD = object()


_current: ContextVar[RequestState | None] = ContextVar("genonaut_request", default=None)


def current() -> RequestState | None:
    """The state of the request being served, or None outside a request."""
    return _current.get()


def report_fault(where: str) -> None:
    """Log a failure in metrics code, at most once per FAULT_LOG_INTERVAL seconds.

    Call it from an ``except`` block: the traceback of the current exception is logged.
    """
    global _last_fault
    now = time.monotonic()
    if now - _last_fault >= FAULT_LOG_INTERVAL:
        _last_fault = now
        _log.exception(
            "metrics recording failed in %s; the request was served, this is logged "
            "at most every %.0f s",
            where,
            FAULT_LOG_INTERVAL,
        )
