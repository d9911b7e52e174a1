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

if TYPE_CHECKING:
    from genonaut_monitoring.exporters.middleware import Recorder
    from genonaut_monitoring.exporters.pagination import Page

_log = logging.getLogger("genonaut_monitoring.exporters")

# Seconds between two logged metric faults; a broken collector must not flood the logs.
FAULT_LOG_INTERVAL = 60.0
_last_fault = -FAULT_LOG_INTERVAL


class RequestState:
    """What the middleware knows about the request being served."""

    __slots__ = (
        "items",
        "page",
        "page_detected",
        "query_seconds",
        "recorder",
        "request_id",
        "root_path",
        "scope",
    )

    def __init__(
        self, scope: MutableMapping[str, Any], root_path: str, request_id: str, recorder: Recorder
    ) -> None:
        self.scope = scope
        # root_path when the request entered the middleware; its growth is the mount prefix.
        self.root_path = root_path
        self.request_id = request_id
        self.recorder = recorder
        # Pagination, detected lazily (at most once) and completed by pagination_query().
        self.page: Page | None = None
        self.page_detected = False
        # Set by pagination_query(): items in the page, and seconds spent in the queries.
        self.items: int | None = None
        self.query_seconds: float | None = None

    @property
    def route(self) -> str:
        """Route template label of this request (``unmatched`` until the router matched)."""
        return self.recorder.route_label(self.scope, self.root_path)

    def pagination(self) -> Page | None:
        """This request's pagination, detected from its query string on first use."""
        if not self.page_detected:
            self.page_detected = True
            self.page = self.recorder.detect_page(self)
        return self.page


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
