"""Pagination: detect it from query parameters, time the page query, record the metrics.

Detection reads ``scope["query_string"]`` once, and only when it contains one
of the configured parameter names. Values the application would reject
(garbage, negative, zero page sizes) make the request count as not paginated:
the application answers 422 and nothing is recorded.

Repository code times its page query with :func:`pagination_query`:

    >>> with pagination_query() as page:      # inside a request handler
    ...     rows = [1, 2, 3]                   # session.execute(...).all()
    ...     page.items = len(rows)
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar, cast
from urllib.parse import unquote_plus

from genonaut_monitoring.exporters import catalogue
from genonaut_monitoring.exporters.catalogue import (
    NO_OFFSET,
    PAGINATION_MODES,
    offset_range,
    page_size_class,
)
from genonaut_monitoring.exporters.context import current, report_fault

F = TypeVar("F", bound=Callable[..., Any])

# Longer numbers are garbage for a page, a size or an offset; int() on them would only cost time.
_MAX_DIGITS = 12


@dataclass(frozen=True)
class PaginationParams:
    """Query parameter names that mark a paginated request (defaults: Genonaut's API).

    Checked in this order: ``cursor`` (keyset mode, size from the first of
    ``cursor_size`` present), then ``page`` (page number, page size), then each
    pair in ``offset`` (row offset, limit). A missing page number means 1, a
    missing offset 0, a missing size ``default_page_size`` (None: unknown, so
    the request is only recorded if :func:`pagination_query` supplies it).

        instrument(app, pagination=PaginationParams(page=("p", "per_page"), cursor=None))
    """

    page: tuple[str, str] | None = ("page", "page_size")
    offset: tuple[tuple[str, str], ...] = (("skip", "limit"), ("offset", "limit"))
    cursor: str | None = "cursor"
    cursor_size: tuple[str, ...] = ("limit", "page_size")
    default_page_size: int | None = None

    @functools.cached_property
    def wanted(self) -> frozenset[str]:
        """Every parameter name."""
        return frozenset(name.decode() for name in self.names)

    @functools.cached_property
    def mentioned(self) -> Callable[[bytes], re.Match[bytes] | None]:
        """Cheap pre-check on the raw query string: does it mention any parameter name?"""
        return re.compile(b"|".join(re.escape(name) for name in self.names)).search

    @functools.cached_property
    def names(self) -> tuple[bytes, ...]:
        """Every parameter name, as bytes."""
        names: set[str] = set(self.cursor_size) if self.cursor else set()
        if self.cursor:
            names.add(self.cursor)
        if self.page:
            names.update(self.page)
        for pair in self.offset:
            names.update(pair)
        return tuple(sorted(name.encode() for name in names))


class Page:
    """One request's pagination: mode, page size, offset and page number (offset mode).

    ``ambiguous`` marks a page read from a size parameter alone (``?limit=50``):
    the first page of an offset route and of a cursor route look the same.
    """

    __slots__ = ("ambiguous", "mode", "offset", "page", "page_size")

    def __init__(
        self,
        mode: str,
        page_size: int | None,
        offset: int | None,
        page: int | None,
        *,
        ambiguous: bool = False,
    ) -> None:
        self.mode = mode
        self.page_size = page_size
        self.offset = offset
        self.page = page
        self.ambiguous = ambiguous

    @property
    def complete(self) -> bool:
        """True when every label can be computed."""
        return self.page_size is not None and (self.mode == "cursor" or self.offset is not None)

    def labels(self) -> tuple[str, str, str]:
        """``(mode, page_size_class, offset_range)``; only for a complete page."""
        assert self.page_size is not None
        folded = NO_OFFSET if self.offset is None else offset_range(self.offset)
        return self.mode, page_size_class(self.page_size), folded

    def override(self, mode: str | None, page_size: int | None, offset: int | None) -> None:
        """Apply what the endpoint knows better than the query string."""
        if mode is not None:
            self.mode = mode
            self.ambiguous = False
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
        if self.mode == "cursor":
            folded: str | None = NO_OFFSET
        else:
            folded = offset_range(self.offset) if self.offset is not None else None
        return {
            "pagination_mode": self.mode,
            "page": self.page,
            "page_size": self.page_size,
            "offset": self.offset,
            "offset_range": folded,
            "page_size_class": psc,
        }


class _Invalid(Exception):
    """A pagination parameter the application would reject."""


def _number(values: Mapping[str, str], name: str, minimum: int, default: int | None) -> int | None:
    raw = values.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > _MAX_DIGITS:
        raise _Invalid(name)
    number = int(raw)
    if number < minimum:
        raise _Invalid(name)
    return number


def _values(query: str, wanted: frozenset[str]) -> dict[str, str]:
    """The wanted parameters of a query string; the last value wins, as in FastAPI.

    Cheaper than ``parse_qsl``: other parameters are skipped without decoding them.
    """
    values: dict[str, str] = {}
    for part in query.split("&"):
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if name in wanted:
            values[name] = unquote_plus(value) if "%" in value or "+" in value else value
    return values


def detect(query_string: bytes, params: PaginationParams) -> Page | None:
    """The pagination a raw query string asks for, or None (not paginated or invalid)."""
    if not query_string or params.mentioned(query_string) is None:
        return None
    values = _values(query_string.decode("latin-1"), params.wanted)
    try:
        if params.cursor and values.get(params.cursor):
            size = params.default_page_size
            for name in params.cursor_size:
                if name in values:
                    size = _number(values, name, 1, None)
                    break
            return Page("cursor", size, None, None)
        if params.page and (params.page[0] in values or params.page[1] in values):
            number = _number(values, params.page[0], 1, 1)
            size = _number(values, params.page[1], 1, params.default_page_size)
            assert number is not None
            offset = (number - 1) * size if size is not None else None
            return Page("offset", size, offset, number, ambiguous=params.page[0] not in values)
        # A pair whose offset is present wins; "limit" alone belongs to the first pair.
        pairs = [pair for pair in params.offset if pair[0] in values]
        pairs += [pair for pair in params.offset if pair[1] in values]
        if pairs:
            offset_name, limit_name = pairs[0]
            offset = _number(values, offset_name, 0, 0)
            size = _number(values, limit_name, 1, params.default_page_size)
            assert offset is not None
            number = offset // size + 1 if size else None
            return Page("offset", size, offset, number, ambiguous=offset_name not in values)
    except _Invalid:
        return None
    return None


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
            state.query_seconds = (state.query_seconds or 0.0) + elapsed
            if self.items is not None:
                state.items = self.items
            page = state.page
            complete = page is not None and page.complete
            if complete or self.mode is not None:
                route = state.route
                if self.mode is not None:
                    state.recorder.declare_mode(route, self.mode)
                if page is not None and complete:
                    state.recorder.observe_query(route, page, elapsed)
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

    Records ``pagination_query_duration_seconds`` under the request's route and
    pagination labels. Arguments override what the query string says (the
    cursor endpoint's first page has no cursor parameter: pass
    ``mode="cursor"``). A ``mode`` given here is remembered for the route and
    applied to its later requests that carry only a size parameter, so one that
    fails before the handler runs (a dependency raising) keeps the route's mode.
    Outside a request the block just runs: with no route to label by and no
    instrumented app to record into, nothing is recorded.

        with pagination_query(mode="cursor", page_size=limit) as page:
            rows = session.execute(stmt).all()
            page.items = len(rows)

        @pagination_query()
        def fetch_page(session, offset, limit) -> list[Row]: ...
    """
    return PaginationQuery(mode, page_size, offset)


def record_request(
    metrics: catalogue.Metrics,
    children: dict[tuple[str, ...], Any],
    route: str,
    page: Page,
    duration: float,
    items: int | None,
) -> None:
    """Record the pagination metrics of one finished, complete, paginated request."""
    mode, size_class, folded = page.labels()
    key = (route, mode, size_class, folded)
    found = children.get(key)
    if found is None:
        # One lookup per request for every child this label set needs. Offset, page
        # number and items children are made on first use: a cursor route has no offsets.
        found = children[key] = [
            metrics[catalogue.PAGINATION_REQUEST_DURATION].labels(*key),
            metrics[catalogue.PAGINATION_PAGE_SIZE].labels(route, mode),
            None,
            None,
            None,
        ]
    found[0].observe(duration)
    assert page.page_size is not None
    found[1].observe(page.page_size)
    if mode == "offset" and page.offset is not None:
        if found[2] is None:
            found[2] = metrics[catalogue.PAGINATION_OFFSET].labels(route)
            found[3] = metrics[catalogue.PAGINATION_PAGE_NUMBER].labels(route)
        found[2].observe(page.offset)
        if page.page is not None:
            found[3].observe(page.page)
    if items is not None:
        if found[4] is None:
            found[4] = metrics[catalogue.PAGINATION_ITEMS_RETURNED].labels(route, mode)
        found[4].observe(items)
