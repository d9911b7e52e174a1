"""Pagination read from the routes, the page-query timer and the pagination metrics."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from genonaut_monitoring.exporters import (
    PaginationParams,
    catalogue,
    instrument,
    paginated,
    pagination_query,
)
from genonaut_monitoring.exporters.pagination import Page
from genonaut_monitoring.exporters.paging import RoutePaging, route_paging
from tests.apps.driver import get

DEFAULTS = PaginationParams()
COUNT = "pagination_request_duration_seconds_count"
RANGES = [label for _, label in catalogue.OFFSET_RANGES]


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def pagination_series(registry: CollectorRegistry, route: str) -> dict[tuple[str, str], float]:
    """``(mode, offset_range)`` -> count of every pagination_request_duration series of a route."""
    return {
        (sample.labels["mode"], sample.labels["offset_range"]): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == COUNT and sample.labels["route"] == route
    }


def counted(registry: CollectorRegistry, route: str) -> dict[tuple[str, str], float]:
    """Only the series of a route that counted something."""
    return {key: n for key, n in pagination_series(registry, route).items() if n}


# --- Reading a route's parameters ---------------------------------------------------------


def parse(paging: RoutePaging | None, query: str) -> tuple[Any, ...] | None:
    assert paging is not None
    page = paging.parse(query.encode())
    return None if page is None else (page.mode, page.page_size, page.offset, page.page)


GENONAUT = {"page": 1, "page_size": 50, "skip": None, "limit": None}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ("offset", 50, 0, 1)),  # the route's defaults
        ("page=3&page_size=20", ("offset", 20, 40, 3)),
        ("page_size=25", ("offset", 25, 0, 1)),
        ("page=3", ("offset", 50, 100, 3)),
        ("skip=120&limit=50", ("offset", 50, 120, 3)),
        ("q=cats&page=2&page_size=10&sort=new", ("offset", 10, 10, 2)),
        ("page=1&page=4&page_size=10", ("offset", 10, 30, 4)),  # the last value wins
        ("pa%67e=2&page%5Fsize=10", ("offset", 10, 10, 2)),  # encoded names
        ("cursor=abc&offset=7", ("offset", 50, 0, 1)),  # not the route's parameters
    ],
)
def test_an_offset_route_reads_its_parameters_and_defaults(
    query: str, expected: tuple[Any, ...]
) -> None:
    assert parse(route_paging(GENONAUT, DEFAULTS), query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ("cursor", 30, None, None)),  # the first page
        ("limit=10", ("cursor", 10, None, None)),  # the first page, not offset 0
        ("cursor=abc.def&limit=5", ("cursor", 5, None, None)),
        ("cursor=a%2Bb+c", ("cursor", 30, None, None)),
        ("cursor=", ("cursor", 30, None, None)),
    ],
)
def test_a_cursor_route_is_cursor_from_its_first_page(
    query: str, expected: tuple[Any, ...]
) -> None:
    assert parse(route_paging({"cursor": None, "limit": 30}, DEFAULTS), query) == expected


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=abc",
        "page_size=0",
        "page_size=1e3",
        "page_size=",
        "page=99999999999999999999",
        "page=%EF%BC%91",  # a full-width digit one: not ASCII
    ],
)
def test_values_the_application_rejects_are_not_a_page(query: str) -> None:
    assert parse(route_paging(GENONAUT, DEFAULTS), query) is None


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 10},  # a top-N list
        {"page_size": 10},
        {"q": None, "sort": None},
        {},
    ],
)
def test_a_size_alone_or_no_pagination_parameter_is_not_pagination(params: dict) -> None:
    assert route_paging(params, DEFAULTS) is None


def test_a_declaration_makes_a_top_n_list_paginated_or_a_route_not_paginated() -> None:
    top = route_paging({"limit": 20}, DEFAULTS, paginated("offset"))
    assert parse(top, "limit=5") == ("offset", 5, 0, 1)
    assert parse(top, "") == ("offset", 20, 0, 1)
    assert route_paging(GENONAUT, DEFAULTS, paginated(None)) is None
    # Parameters the signature does not show (read by hand) are read by their configured names.
    hidden = route_paging({}, DEFAULTS, paginated("cursor", page_size=25))
    assert parse(hidden, "cursor=x") == ("cursor", 25, None, None)
    assert parse(hidden, "") == ("cursor", 25, None, None)


def test_parameter_names_are_configurable() -> None:
    params = PaginationParams(
        page=("p", "per_page"), offset=(("from", "size"),), cursor="after", cursor_size=("n",)
    )
    offset = route_paging({"p": 1, "per_page": 30, "from": 0, "size": None}, params)
    assert parse(offset, "p=2&per_page=30") == ("offset", 30, 30, 2)
    assert parse(offset, "from=10&size=5") == ("offset", 5, 10, 3)
    assert parse(route_paging({"after": None, "n": 7}, params), "after=xyz") == (
        "cursor",
        7,
        None,
        None,
    )
    assert route_paging(GENONAUT, params) is None


def test_default_page_size_completes_a_size_the_route_does_not_give() -> None:
    paging = route_paging({"page": 1, "page_size": None}, PaginationParams(default_page_size=50))
    assert parse(paging, "page=3") == ("offset", 50, 100, 3)
    assert parse(route_paging({"page": 1, "page_size": None}, DEFAULTS), "page=3") == (
        "offset",
        None,
        None,
        3,
    )


@pytest.mark.parametrize(("mode", "size"), [("keyset", None), ("offset", 0), ("cursor", "10")])
def test_bad_declarations_are_refused(mode: str, size: Any) -> None:
    with pytest.raises(ValueError, match="paginated"):
        paginated(mode, page_size=size)


# --- Through an instrumented app ----------------------------------------------------------


class Window(BaseModel):
    page: int = 1
    page_size: int = 20


class Pages:
    """A dependency class carrying the pagination parameters, as many apps have."""

    def __init__(self, page: int = Query(1, ge=1), page_size: int = Query(25, ge=1, le=100)):
        self.page, self.page_size = page, page_size


def shaped_app(registry: CollectorRegistry, **options: Any) -> FastAPI:
    """Routes of every shape: dependencies, a router prefix, cursor, top-N, declared, plain."""
    app = FastAPI()
    api = APIRouter(prefix="/api/v1")

    @api.get("/content")
    def content(pages: Annotated[Pages, Depends()]) -> dict[str, int]:
        return {"page": pages.page}

    @api.get("/feed")
    async def feed(
        limit: Annotated[int, Query(ge=1, le=100)] = 30, cursor: str | None = None
    ) -> dict[str, int]:
        return {"limit": limit}

    @api.get("/tags/popular")
    async def popular(limit: int = Query(10, ge=1)) -> list[int]:
        return []

    @api.get("/tags/recent")
    @paginated("offset")
    async def recent(limit: int = 15) -> list[int]:
        return []

    @api.get("/windows")
    async def windows(window: Annotated[Window, Query()]) -> int:
        return window.page

    @api.get("/content/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @api.get("/broken")
    async def broken(page: int = 1, page_size: int = 10) -> None:
        raise HTTPException(503, "database away")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(api)
    instrument(app, registry=registry, **options)
    return app


def test_every_request_of_a_paginated_route_counts_with_its_defaults(
    registry: CollectorRegistry,
) -> None:
    app = shaped_app(registry)
    responses = get(app, "/api/v1/content", "/api/v1/content?page=3", "/api/v1/windows?page=2")
    assert [r.status_code for r in responses] == [200, 200, 200]
    # Defaults come from the dependency class: page 1 and 3 of 25 rows.
    assert counted(registry, "/api/v1/content") == {("offset", "0"): 1, ("offset", "1-100"): 1}
    assert value(registry, "pagination_offset_sum", route="/api/v1/content") == 50
    assert value(registry, "pagination_page_size_sum", route="/api/v1/content", mode="offset") == 50
    # A query-parameter model carries its own defaults.
    assert value(registry, "pagination_offset_sum", route="/api/v1/windows") == 20


def test_a_cursor_route_counts_its_first_page_as_cursor(registry: CollectorRegistry) -> None:
    app = shaped_app(registry)
    get(app, "/api/v1/feed", "/api/v1/feed?limit=10", "/api/v1/feed?limit=10&cursor=abc")
    assert counted(registry, "/api/v1/feed") == {("cursor", "none"): 3}
    assert value(registry, "pagination_page_size_sum", route="/api/v1/feed", mode="cursor") == 50
    assert value(registry, "pagination_offset_count", route="/api/v1/feed") is None


def test_top_n_lists_and_routes_without_pagination_parameters_are_not_pagination(
    registry: CollectorRegistry,
) -> None:
    app = shaped_app(registry)
    responses = get(
        app,
        "/api/v1/tags/popular?limit=5",
        "/health?page=1&page_size=10",
        "/api/v1/content/7?page=2&page_size=10&skip=5&limit=3",
    )
    assert [r.status_code for r in responses] == [200, 200, 200]
    routes = {
        sample.labels["route"]
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name.startswith("pagination_")
    }
    assert routes == {"/api/v1/content", "/api/v1/feed", "/api/v1/tags/recent", "/api/v1/windows",
                      "/api/v1/broken"}  # fmt: skip


def test_a_declared_top_n_list_counts_as_pages_from_offset_zero(
    registry: CollectorRegistry,
) -> None:
    app = shaped_app(registry)
    get(app, "/api/v1/tags/recent", "/api/v1/tags/recent?limit=5")
    assert counted(registry, "/api/v1/tags/recent") == {("offset", "0"): 2}
    assert (
        value(registry, "pagination_page_size_sum", route="/api/v1/tags/recent", mode="offset")
        == 20
    )


def test_declarations_by_template_win_over_what_the_route_says(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    routes = {
        "/api/v1/tags/popular": paginated("offset"),
        "/api/v1/content": None,
        "/api/v1/nowhere": paginated("cursor"),
    }
    with caplog.at_level(logging.WARNING, logger="genonaut_monitoring.exporters"):
        app = shaped_app(registry, pagination_routes=routes)
        get(app, "/api/v1/tags/popular?limit=3", "/api/v1/content?page=2")
    assert counted(registry, "/api/v1/tags/popular") == {("offset", "0"): 1}
    assert pagination_series(registry, "/api/v1/content") == {}
    warnings = [r.getMessage() for r in caplog.records if "pagination_routes" in r.getMessage()]
    assert len(warnings) == 1 and "'/api/v1/nowhere'" in warnings[0]


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ({"api/v1": paginated("offset")}, "must be a route template"),
        ({"/api/v1": "cursor"}, "maps to 'cursor'"),
    ],
)
def test_bad_pagination_routes_are_refused(routes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        instrument(FastAPI(), registry=CollectorRegistry(), pagination_routes=routes)


def test_every_class_of_a_paginated_route_exists_at_zero_before_traffic(
    registry: CollectorRegistry,
) -> None:
    app = shaped_app(registry)
    get(app, "/health")  # any first request reads the whole route table
    assert pagination_series(registry, "/api/v1/content") == {("offset", r): 0 for r in RANGES}
    assert pagination_series(registry, "/api/v1/feed") == {("cursor", "none"): 0}
    # The page query's children exist for the route's default page-size class.
    assert (
        value(
            registry,
            "pagination_query_duration_seconds_count",
            route="/api/v1/content",
            mode="offset",
            page_size_class="11-25",
            offset_range="10001-100000",
        )
        == 0
    )
    for name in ("pagination_offset_count", "pagination_page_number_count"):
        assert value(registry, name, route="/api/v1/content") == 0
    for name in ("pagination_page_size_count", "pagination_items_returned_count"):
        assert value(registry, name, route="/api/v1/feed", mode="cursor") == 0


def paging_series(registry: CollectorRegistry, route: str) -> int:
    return sum(
        1
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name.startswith("pagination_")
        and not sample.name.endswith("_created")
        and sample.labels.get("route") == route
    )


def test_the_series_a_paginated_route_adds_are_bounded_and_as_documented(
    registry: CollectorRegistry,
) -> None:
    app = shaped_app(registry)
    get(app, "/health")
    per = {spec: spec.series_per_child for spec in catalogue.CATALOGUE}
    offset = (
        6 * per[catalogue.PAGINATION_REQUEST_DURATION]
        + 6 * per[catalogue.PAGINATION_QUERY_DURATION]
        + per[catalogue.PAGINATION_PAGE_SIZE]
        + per[catalogue.PAGINATION_ITEMS_RETURNED]
        + per[catalogue.PAGINATION_OFFSET]
        + per[catalogue.PAGINATION_PAGE_NUMBER]
    )
    cursor = (
        per[catalogue.PAGINATION_REQUEST_DURATION]
        + per[catalogue.PAGINATION_QUERY_DURATION]
        + per[catalogue.PAGINATION_PAGE_SIZE]
        + per[catalogue.PAGINATION_ITEMS_RETURNED]
    )
    assert (offset, cursor) == (320, 71)  # the figures README.md and catalogue.py state
    assert paging_series(registry, "/api/v1/content") == offset
    assert paging_series(registry, "/api/v1/feed") == cursor
    assert paging_series(registry, "/api/v1/tags/popular") == 0
    # Pages of every size and depth add nothing until a page query is timed.
    get(app, *(f"/api/v1/content?page={p}&page_size={s}" for p in (1, 9, 4000)
               for s in (1, 11, 26, 51, 100)))  # fmt: skip
    assert paging_series(registry, "/api/v1/content") == offset
    # Each page-size class whose page query is timed adds its six offset ranges, once.
    timed = timed_app(CollectorRegistry())
    timed_registry = timed.state.genonaut_instrumentation.registry
    get(timed, "/health")
    start = paging_series(timed_registry, "/content")
    get(timed, *(f"/content?page={p}&page_size={s}" for p in (1, 9, 4000)
                 for s in (1, 11, 26, 51, 251)))  # fmt: skip
    # 1-10, 11-25, 51-100 and 251+: 26-50 is the route's default, there from the start.
    classes = 4
    query = per[catalogue.PAGINATION_QUERY_DURATION]
    assert paging_series(timed_registry, "/content") == start + classes * 6 * query


def test_values_the_app_rejects_are_not_recorded(registry: CollectorRegistry) -> None:
    app = shaped_app(registry)
    responses = get(
        app,
        "/api/v1/content?page=0&page_size=10",
        "/api/v1/content?page=1&page_size=abc",
        "/api/v1/content?page=1&page_size=101",  # valid number, over the app's limit: 422
    )
    assert [r.status_code for r in responses] == [422, 422, 422]
    assert counted(registry, "/api/v1/content") == {}
    assert (
        value(registry, "http_requests_total", method="GET", route="/api/v1/content", status="422")
        == 3
    )


def test_server_errors_on_paginated_requests_are_still_timed(registry: CollectorRegistry) -> None:
    app = shaped_app(registry)
    assert get(app, "/api/v1/broken?page=1&page_size=10")[0].status_code == 503
    assert counted(registry, "/api/v1/broken") == {("offset", "0"): 1}


def test_unmatched_paths_with_page_parameters_are_not_pagination(
    registry: CollectorRegistry,
) -> None:
    app = shaped_app(registry)
    assert get(app, "/nowhere?page=1&page_size=10")[0].status_code == 404
    assert pagination_series(registry, "unmatched") == {}


# --- The explicit timer -------------------------------------------------------------------


def timed_app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()

    @app.get("/content")
    async def content(page: int = Query(1, ge=1), page_size: int = 50, count: int = 3) -> int:
        with pagination_query() as query:
            query.items = count
        return count

    @app.get("/content/sync")
    def content_sync(page: int = Query(1, ge=1), page_size: int = Query(50, ge=1)) -> int:
        # Runs in the threadpool with a copy of the context: the timer must still reach it.
        with pagination_query() as query:
            query.items = 2
        return 2

    @app.get("/top")
    async def top(limit: int = 10) -> int:
        # Not paginated by its parameters; the timer's mode makes this request a page.
        with pagination_query(mode="offset", page_size=limit, offset=0) as query:
            query.items = limit
        return limit

    instrument(app, registry=registry)
    return app


def test_the_timer_records_the_page_query_and_its_items(registry: CollectorRegistry) -> None:
    app = timed_app(registry)
    get(app, "/content?page=3&page_size=20&count=20", "/content/sync?page=2&page_size=5")
    query = "pagination_query_duration_seconds_count"
    labels = {"route": "/content", "mode": "offset", "page_size_class": "11-25"}
    assert value(registry, query, **labels, offset_range="1-100") == 1
    assert value(registry, "pagination_items_returned_sum", route="/content", mode="offset") == 20
    sync = {"route": "/content/sync", "mode": "offset", "page_size_class": "1-10"}
    assert value(registry, query, **sync, offset_range="1-100") == 1
    assert (
        value(registry, "pagination_items_returned_sum", route="/content/sync", mode="offset") == 2
    )


def test_the_timer_can_make_a_request_a_page(registry: CollectorRegistry) -> None:
    app = timed_app(registry)
    get(app, "/top?limit=7")
    assert counted(registry, "/top") == {("offset", "0"): 1}
    assert value(registry, "pagination_items_returned_sum", route="/top", mode="offset") == 7


def test_decorator_times_sync_and_async_functions_and_counts_their_rows(
    registry: CollectorRegistry,
) -> None:
    app = FastAPI()

    @pagination_query()
    def fetch_sync(limit: int) -> list[int]:
        return list(range(limit))

    @pagination_query(mode="offset")
    async def fetch_async(limit: int) -> tuple[int, ...]:
        return tuple(range(limit - 1))

    @app.get("/a")
    def a(skip: int = 0, limit: int = 10) -> int:
        return len(fetch_sync(limit))

    @app.get("/b")
    async def b(skip: int = 0, limit: int = 10) -> int:
        return len(await fetch_async(limit))

    instrument(app, registry=registry)
    assert [r.json() for r in get(app, "/a?skip=0&limit=4", "/b?skip=0&limit=4")] == [4, 3]
    for route, items in (("/a", 4), ("/b", 3)):
        assert value(registry, "pagination_items_returned_sum", route=route, mode="offset") == items
        assert (
            value(
                registry,
                "pagination_query_duration_seconds_count",
                route=route,
                mode="offset",
                page_size_class="1-10",
                offset_range="0",
            )
            == 1
        )
    # Called twice, the decorated function times twice (a fresh timer per call).
    get(app, "/a?skip=4&limit=4")
    assert value(registry, "pagination_items_returned_sum", route="/a", mode="offset") == 8


def test_outside_a_request_the_timer_only_runs_the_block(registry: CollectorRegistry) -> None:
    instrument(FastAPI(), registry=registry)
    with pagination_query(mode="cursor", page_size=10) as query:
        query.items = 10
    assert query.items == 10
    assert [
        s for m in registry.collect() for s in m.samples if s.name.startswith("pagination_")
    ] == []


def test_a_timer_object_times_one_block() -> None:
    query = pagination_query()
    with query:
        pass
    with pytest.raises(RuntimeError, match="times one block"), query:
        pass


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "keyset"}, "mode must be one of"),
        ({"page_size": 0}, "must be at least 1"),
        ({"offset": -1}, "must be at least 0"),
    ],
)
def test_bad_timer_arguments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pagination_query(**kwargs)


def test_page_labels_fold_into_catalogue_values() -> None:
    page = Page("offset", 75, 12_345, None)
    page.override(None, None, None)
    assert page.page == 165
    assert page.labels() == ("offset", "51-100", "10001-100000")
    assert page.labels()[2] in RANGES
    page.override("cursor", 20, None)
    assert (page.offset, page.page, page.labels()) == (None, None, ("cursor", "11-25", "none"))
