"""Pagination: parameter names, one request's page, the page-query timer, route declarations.

Which routes paginate, and how, is read from the routes themselves
(:mod:`.paging`): the query parameters a FastAPI route declares, with their
defaults. What cannot be read there is declared with :func:`paginated`, on the
endpoint or by route template in ``instrument(app, pagination_routes=...)``.

The statements a paginated request runs to fetch its page are timed by the
database listeners without any code (:mod:`.db`). Repository code may still
time its page query itself, which then wins over the automatic timing:

    >>> with pagination_query() as page:      # inside a request handler
    ...     rows = [1, 2, 3]                   # session.execute(...).all()
    ...     page.items = len(rows)
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, cast

from genonaut_monitoring.exporters.catalogue import (
    NO_OFFSET,
    PAGINATION_MODES,
    offset_range,
    page_size_class,
)
from genonaut_monitoring.exporters.context import current, report_fault

F = TypeVar("F", bound=Callable[..., Any])

# Attribute a @paginated(...) endpoint carries its declaration in.
DECLARATION_ATTR = "__genonaut_pagination__"


@dataclass(frozen=True)
class PaginationParams:
    """Query parameter names that paginate (defaults: Genonaut's API).

    A route paginates when it declares a position: ``cursor`` (keyset mode,
    size from the first of ``cursor_size`` it declares), ``page`` (page number
    and page size) or a pair in ``offset`` (row offset and limit). A route that
    declares only a size (``limit`` alone) is a top-N list, not pagination,
    unless :func:`paginated` says otherwise. ``default_page_size`` is the last
    resort for a size the request leaves out and the route's default does not
    give (None: such requests are recorded only when a timer supplies it).

        instrument(app, pagination=PaginationParams(page=("p", "per_page"), cursor=None))
    """

    page: tuple[str, str] | None = ("page", "page_size")
    offset: tuple[tuple[str, str], ...] = (("skip", "limit"), ("offset", "limit"))
    cursor: str | None = "cursor"
    cursor_size: tuple[str, ...] = ("limit", "page_size")
    default_page_size: int | None = None


@dataclass(frozen=True)
class Paginated:
    """A route's pagination, declared where its parameters cannot be read.

    ``mode`` None declares the route not paginated, whatever its parameters.
    ``page_size`` is the size the route uses when the request gives none. A
    declaration is also a decorator for the endpoint (above or below the route
    decorator); the same object serves as a value of ``pagination_routes``.
    """

    mode: str | None
    page_size: int | None = None

    def __post_init__(self) -> None:
        if self.mode is not None and self.mode not in PAGINATION_MODES:
            raise ValueError(
                f"paginated(mode={self.mode!r}): mode must be one of {PAGINATION_MODES} or None"
            )
        if self.page_size is not None and (type(self.page_size) is not int or self.page_size < 1):
            raise ValueError(f"paginated(page_size={self.page_size!r}): must be at least 1")

    def __call__(self, endpoint: F) -> F:
        setattr(endpoint, DECLARATION_ATTR, self)
        return endpoint


def paginated(mode: str | None, *, page_size: int | None = None) -> Paginated:
    """Declare a route's pagination mode (``"offset"``, ``"cursor"``, or None: not paginated).

    @app.get("/tags/popular")
    @paginated("offset", page_size=20)   # a top-N list, counted as pages from offset 0
    def popular(limit: int = 20): ...

    instrument(app, pagination_routes={"/search": paginated("cursor", page_size=25)})
    """
    return Paginated(mode, page_size)


class Page:
    """One request's pagination: mode, page size, offset and page number (offset mode).

    It also gathers what the page query measured: ``query_seconds`` and ``items``
    from :func:`pagination_query`, ``auto_seconds`` and ``auto_items`` from the
    database listeners (used when no timer ran).
    """

    __slots__ = (
        "auto_items",
        "auto_seconds",
        "items",
        "mode",
        "offset",
        "page",
        "page_size",
        "query_seconds",
    )

    def __init__(
        self, mode: str, page_size: int | None, offset: int | None, page: int | None
    ) -> None:
        self.mode = mode
        self.page_size = page_size
        self.offset = offset
        self.page = page
        self.query_seconds: float | None = None
        self.items: int | None = None
        self.auto_seconds: float | None = None
        self.auto_items: int | None = None

    @property
    def arguments(self) -> tuple[str, int | None, int | None, int | None]:
        """What ``Page(*arguments)`` takes to make this page again (unmeasured)."""
        return self.mode, self.page_size, self.offset, self.page

    @property
    def measured(self) -> tuple[float | None, int | None]:
        """Seconds and items of the page query: the timer's, else the listeners'."""
        if self.query_seconds is not None:
            return self.query_seconds, self.items
        return self.auto_seconds, self.items if self.items is not None else self.auto_items

    @property
    def complete(self) -> bool:
        """True when every label can be computed."""
        return self.page_size is not None and (self.mode == "cursor" or self.offset is not None)

    @property
    def range(self) -> str:
        """The ``offset_range`` label: the folded offset, ``none`` for cursors."""
        if self.mode == "cursor" or self.offset is None:
            return NO_OFFSET
        return offset_range(self.offset)

    def labels(self) -> tuple[str, str, str]:
        """``(mode, page_size_class, offset_range)``; only for a complete page."""
        assert self.page_size is not None
        return self.mode, page_size_class(self.page_size), self.range

    def override(self, mode: str | None, page_size: int | None, offset: int | None) -> None:
        """Apply what the endpoint knows better than the route's parameters."""
        if mode is not None:
            self.mode = mode
        if page_size is not None:
            self.page_size = page_size
        if offset is not None:
            self.offset = offset
        if self.mode == "cursor":
            self.offset = self.page = None
        elif self.offset is not None and self.page_size:
            self.page = self.offset // self.page_size + 1

    def log_fields(self) -> dict[str, Any]:
        """The pagination fields of the access log line."""
        psc = page_size_class(self.page_size) if self.page_size is not None else None
        folded = self.range if self.mode == "cursor" or self.offset is not None else None
        return {
            "pagination_mode": self.mode,
            "page": self.page,
            "page_size": self.page_size,
            "offset": self.offset,
            "offset_range": folded,
            "page_size_class": psc,
        }


class PaginationQuery:
    """Times one page query; a context manager and a decorator (sync and async).

    Use :func:`pagination_query` to make one.
    """

    def __init__(self, mode: str | None, page_size: int | None, offset: int | None) -> None:
        if mode is not None and mode not in PAGINATION_MODES:
            raise ValueError(
                f"pagination_query(mode={mode!r}): mode must be one of {PAGINATION_MODES}"
            )
        if page_size is not None and page_size < 1:
            raise ValueError(f"pagination_query(page_size={page_size!r}): must be at least 1")
        if offset is not None and offset < 0:
            raise ValueError(f"pagination_query(offset={offset!r}): must be at least 0")
        self.mode = mode
        self.page_size = page_size
        self.offset = offset
        # Items returned by the query; set it inside the block.
        self.items: int | None = None
        self._start: float | None = None

    def _fresh(self) -> PaginationQuery:
        return PaginationQuery(self.mode, self.page_size, self.offset)

    def __enter__(self) -> PaginationQuery:
        if self._start is not None:
            raise RuntimeError("a pagination_query() object times one block; make a new one")
        state = current()
        if state is not None:
            try:
                page = state.pagination()
                if page is None and (self.mode or self.offset is not None):
                    # Not paginated by its parameters (or not routed yet): the timer says it is.
                    page = state.page = Page(
                        self.mode or "offset", self.page_size, self.offset, None
                    )
                if page is not None:
                    page.override(self.mode, self.page_size, self.offset)
            except Exception:
                report_fault("pagination_query")
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._start is not None
        elapsed = time.perf_counter() - self._start
        state = current()
        if state is None:
            return
        try:
            page = state.page
            if page is None:
                return  # not a paginated request, and the timer named no mode
            page.query_seconds = (page.query_seconds or 0.0) + elapsed
            if self.items is not None:
                page.items = self.items
            if page.complete:
                state.recorder.observe_query(state.route, page, elapsed)
        except Exception:
            report_fault("pagination_query")

    async def __aenter__(self) -> PaginationQuery:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    def __call__(self, func: F) -> F:
        """Decorate a repository function; a list or tuple it returns sets ``items``."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                with self._fresh() as query:
                    result = await func(*args, **kwargs)
                    query.items = _count(result)
                return result

            return cast(F, timed_async)

        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._fresh() as query:
                result = func(*args, **kwargs)
                query.items = _count(result)
            return result

        return cast(F, timed)


def _count(result: Any) -> int | None:
    return len(result) if isinstance(result, (list, tuple)) else None


def pagination_query(
    *, mode: str | None = None, page_size: int | None = None, offset: int | None = None
) -> PaginationQuery:
    """Time the database query that fetches one page, and report the items it returned.

    Optional: the database listeners already time the statements that page
    (``LIMIT``/``OFFSET``/``FETCH``) of a paginated request. A request that
    runs this timer is recorded from it instead, under the request's route and
    pagination labels; arguments override what the route's parameters say.
    Outside a request the block just runs and nothing is recorded.

        with pagination_query(mode="cursor", page_size=limit) as page:
            rows = session.execute(stmt).all()
            page.items = len(rows)

        @pagination_query()
        def fetch_page(session, offset, limit) -> list[Row]: ...
    """
    return PaginationQuery(mode, page_size, offset)
