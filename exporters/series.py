"""Label children made once and capped by series, and the pagination series of each route.

:class:`Children` caches the label children of one metric (``labels()``
validates and locks on every call) and enforces a hard cap on the series the
metric exposes: past ``max_series`` (counted in series, so a histogram child
counts its buckets, ``_sum`` and ``_count``), a new label set is recorded under
``route="other"`` instead, and ``metrics_folded_samples_total{metric}`` counts
each observation folded that way.

:class:`PaginationSeries` records paginated requests and creates, when a route
is first known to paginate, the series a rare request would otherwise be born
in: a series that first appears with a non-zero value is invisible to
``rate()``/``increase()``. Per paginated route that is, created at zero:

- ``pagination_request_duration_seconds``: one child per offset range
  (6, offset routes) or ``none`` (1, cursor routes);
- ``pagination_query_duration_seconds``: one child per offset range for the
  route's default page-size class, and for each further class on its first use;
- ``pagination_page_size``, ``pagination_items_returned`` (per mode),
  ``pagination_offset``, ``pagination_page_number`` (offset routes): one each.

    >>> from prometheus_client import CollectorRegistry
    >>> children = Children(catalogue.Metrics(CollectorRegistry()), catalogue.HTTP_REQUESTS, 100, 1)
    >>> children.get(("GET", "/items/{id}", "200")).inc()
"""

from __future__ import annotations

from typing import Any

from genonaut_monitoring.exporters import catalogue
from genonaut_monitoring.exporters.catalogue import (
    NO_OFFSET,
    OFFSET_RANGES,
    OTHER,
    UNMATCHED_ROUTE,
    MetricSpec,
    page_size_class,
)
from genonaut_monitoring.exporters.pagination import Page
from genonaut_monitoring.exporters.paging import RoutePaging

_RANGES = {"offset": tuple(label for _, label in OFFSET_RANGES), "cursor": (NO_OFFSET,)}


class Children:
    """The label children of one metric, each made once; at most ``max_series`` series."""

    __slots__ = ("_folded", "_limit", "_metric", "_route_at", "cache")

    def __init__(
        self, metrics: catalogue.Metrics, spec: MetricSpec, max_series: int, route_at: int
    ) -> None:
        self._metric = metrics[spec]
        self._limit = max(1, max_series // spec.series_per_child)
        # Created now: the folded count reads 0, not absent, until the cap is reached.
        self._folded = metrics[catalogue.FOLDED_SAMPLES].labels(spec.name)
        self._route_at = route_at
        # Label set -> child. The hot path reads it directly and calls make() on a miss.
        self.cache: dict[tuple[str, ...], Any] = {}

    def get(self, key: tuple[str, ...]) -> Any:
        """The child to record one observation in (``route`` folded past the cap)."""
        child = self.cache.get(key)
        if child is None:
            child = self.make(key)
        return child

    def make(self, key: tuple[str, ...]) -> Any:
        """Create the child of a label set not cached yet (or fold it past the cap)."""
        cache, at = self.cache, self._route_at
        if len(cache) >= self._limit and key[at] != OTHER:
            # Not cached under the original key: every folded observation is counted.
            self._folded.inc()
            key = (*key[:at], OTHER, *key[at + 1 :])
            found = cache.get(key)
            if found is not None:
                return found
        child = cache[key] = self._metric.labels(*key)
        return child

    def ensure(self, key: tuple[str, ...]) -> None:
        """Create a child at zero, unless the cap is reached (nothing is folded for it)."""
        if key not in self.cache and len(self.cache) < self._limit:
            self.cache[key] = self._metric.labels(*key)


class PaginationSeries:
    """The pagination metrics of every route, and their zeros (module docstring)."""

    def __init__(self, metrics: catalogue.Metrics, max_series: int) -> None:
        self.duration = Children(metrics, catalogue.PAGINATION_REQUEST_DURATION, max_series, 0)
        self.query = Children(metrics, catalogue.PAGINATION_QUERY_DURATION, max_series, 0)
        self.size = Children(metrics, catalogue.PAGINATION_PAGE_SIZE, max_series, 0)
        self.items = Children(metrics, catalogue.PAGINATION_ITEMS_RETURNED, max_series, 0)
        self.offset = Children(metrics, catalogue.PAGINATION_OFFSET, max_series, 0)
        self.number = Children(metrics, catalogue.PAGINATION_PAGE_NUMBER, max_series, 0)
        # (route, mode, page-size class) whose query children exist at zero; bounded by
        # routes x 2 modes x 6 classes.
        self._query_classes: set[tuple[str, str, str]] = set()
        # (route, mode, offset range) -> its duration, page-size, offset and page-number
        # children: one lookup per request instead of four. Bounded like the duration
        # children; a set with a folded child is never kept, so each fold is counted.
        self._requests: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}

    def prepare(self, route: str, paging: RoutePaging) -> None:
        """Create a paginated route's series at zero."""
        if route in (OTHER, UNMATCHED_ROUTE):
            return
        size = paging.size
        for mode in paging.modes:
            for folded in _RANGES[mode]:
                self.duration.ensure((route, mode, folded))
            self.size.ensure((route, mode))
            self.items.ensure((route, mode))
            if size is not None:
                self._query_class(route, mode, page_size_class(size))
            if mode == "offset":
                self.offset.ensure((route,))
                self.number.ensure((route,))

    def _query_class(self, route: str, mode: str, size_class: str) -> None:
        key = (route, mode, size_class)
        if key not in self._query_classes and route not in (OTHER, UNMATCHED_ROUTE):
            self._query_classes.add(key)
            for folded in _RANGES[mode]:
                self.query.ensure((*key, folded))

    def observe_query(self, route: str, page: Page, seconds: float) -> None:
        """One page query (timed by the listeners or by pagination_query) of a complete page."""
        mode, size_class, folded = page.labels()
        if (route, mode, size_class) not in self._query_classes:
            self._query_class(route, mode, size_class)
        self.query.get((route, mode, size_class, folded)).observe(seconds)

    def observe_request(self, route: str, page: Page, duration: float, items: int | None) -> None:
        """One finished, complete, paginated request."""
        mode = page.mode
        key = (route, mode, page.range)
        children = self._requests.get(key)
        if children is None:
            children = self._request_children(key)
        by_duration, by_size, by_offset, by_number = children
        by_duration.observe(duration)
        by_size.observe(page.page_size)
        offset = page.offset
        if by_offset is not None and offset is not None:
            by_offset.observe(offset)
            if page.page is not None:
                by_number.observe(page.page)
        if items is not None:
            self.items.get((route, mode)).observe(items)

    def _request_children(self, key: tuple[str, str, str]) -> tuple[Any, Any, Any, Any]:
        route, mode, _ = key
        wanted: list[tuple[Children, tuple[str, ...]]] = [
            (self.duration, key),
            (self.size, (route, mode)),
        ]
        if mode == "offset":
            wanted += [(self.offset, (route,)), (self.number, (route,))]
        found = [children.get(label_set) for children, label_set in wanted]
        bundle = (*found, None, None)[:4]
        # A label set past the cap was folded into route="other" and is not cached under
        # its own key: then neither is the bundle, so every folded request is counted.
        if all(c.cache.get(k) is child for (c, k), child in zip(wanted, found, strict=True)):
            self._requests[key] = bundle
        return bundle
