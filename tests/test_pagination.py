"""Pagination detection, the page-query timer and the pagination metrics."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, HTTPException, Query
from prometheus_client import CollectorRegistry

from genonaut_monitoring.exporters import PaginationParams, catalogue, instrument, pagination_query
from genonaut_monitoring.exporters.pagination import Page, detect
from tests.apps.driver import get

DEFAULTS = PaginationParams()


def parse(query: str, params: PaginationParams = DEFAULTS) -> tuple[Any, ...] | None:
    page = detect(query.encode(), params)
    return None if page is None else (page.mode, page.page_size, page.offset, page.page)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("page=1&page_size=50", ("offset", 50, 0, 1)),
        ("page=3&page_size=20", ("offset", 20, 40, 3)),
        ("page_size=25", ("offset", 25, 0, 1)),
        ("skip=0&limit=50", ("offset", 50, 0, 1)),
        ("skip=120&limit=50", ("offset", 50, 120, 3)),
        ("limit=10", ("offset", 10, 0, 1)),
        ("offset=2000&limit=100", ("offset", 100, 2000, 21)),
        ("cursor=abc.def&limit=50", ("cursor", 50, None, None)),
        ("cursor=abc&page_size=25", ("cursor", 25, None, None)),
        ("q=cats&page=2&page_size=10&sort=new", ("offset", 10, 10, 2)),
        ("page=1&page=4&page_size=10", ("offset", 10, 30, 4)),  # the last value wins
        ("page=2", ("offset", None, None, 2)),  # size unknown: incomplete
        ("cursor=abc", ("cursor", None, None, None)),
        ("cursor=&limit=5", ("offset", 5, 0, 1)),  # an empty cursor is the first page
        ("pa%67e=2&page%5Fsize=10", ("offset", 10, 10, 2)),  # encoded names
        ("cursor=a%2Bb+c&limit=3", ("cursor", 3, None, None)),
        ("q=a%26b&page=2&page_size=5&q2", ("offset", 5, 5, 2)),
    ],
)
def test_every_parameter_style_is_detected(query: str, expected: tuple[Any, ...]) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        "",
        "q=cats",
        "pages=3",  # contains a name, is not one
        "page=0&page_size=10",
        "page=-1&page_size=10",
        "page=abc&page_size=10",
        "page=1&page_size=0",
        "page=1&page_size=1e3",
        "page=1&page_size=",
        "skip=-5&limit=10",
        "skip=5&limit=0",
        "skip=5&limit=ten",
        "offset=1.5&limit=10",
        "page=99999999999999999999&page_size=10",
        "cursor=abc&limit=0",
        "page=%EF%BC%91&page_size=10",  # a full-width digit one: not ASCII
    ],
)
def test_invalid_or_absent_values_are_not_pagination(query: str) -> None:
    assert parse(query) is None


def test_parameter_names_are_configurable() -> None:
    params = PaginationParams(
        page=("p", "per_page"), offset=(("from", "size"),), cursor="after", cursor_size=("n",)
    )
    assert parse("p=2&per_page=30", params) == ("offset", 30, 30, 2)
    assert parse("from=10&size=5", params) == ("offset", 5, 10, 3)
    assert parse("after=xyz&n=7", params) == ("cursor", 7, None, None)
    assert parse("page=2&page_size=30", params) is None


def test_default_page_size_completes_a_bare_page_number() -> None:
    assert parse("page=3", PaginationParams(default_page_size=50)) == ("offset", 50, 100, 3)


def content_app(registry: CollectorRegistry, **options: Any) -> FastAPI:
    """Genonaut's pagination endpoints in miniature; pages hold ``count`` items."""
    app = FastAPI()

    @app.get("/content")
    async def content(
        page: int = Query(1, ge=1),
        page_size: int = Query(50, ge=1, le=500),
        skip: int | None = Query(None, ge=0),
        limit: int | None = Query(None, ge=1, le=500),
        count: int = 3,
    ) -> dict[str, int]:
        with pagination_query() as query:
            query.items = count
        return {"items": count}

    @app.get("/content/sync")
    def content_sync(
        page: int = Query(1, ge=1), page_size: int = Query(50, ge=1)
    ) -> dict[str, int]:
        # Runs in the threadpool with a copy of the context: the timer must still reach it.
        with pagination_query() as query:
            query.items = 2
        return {"items": 2}

    @app.get("/content/cursor")
    async def cursor(limit: int = Query(50, ge=1), cursor: str | None = None) -> dict[str, int]:
        with pagination_query(mode="cursor", page_size=limit) as query:
            query.items = limit
        return {"items": limit}

    @app.get("/content/untimed")
    async def untimed(page: int = 1, page_size: int = 50) -> dict[str, int]:
        return {"items": 0}

    @app.get("/content/broken")
    async def broken(page: int = 1, page_size: int = 50) -> dict[str, int]:
        raise HTTPException(503, "database away")

    instrument(app, registry=registry, **options)
    return app


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_page_and_page_size_record_offset_and_page_number(registry: CollectorRegistry) -> None:
    app = content_app(registry)
    assert get(app, "/content?page=3&page_size=20&count=20")[0].status_code == 200
    labels = {"route": "/content", "mode": "offset", "page_size_class": "11-25"}
    assert (
        value(
            registry,
            "pagination_request_duration_seconds_count",
            **labels,
            offset_range="1-100",
        )
        == 1
    )
    assert value(registry, "pagination_page_size_sum", route="/content", mode="offset") == 20
    assert (
        value(registry, "pagination_page_size_bucket", route="/content", mode="offset", le="20.0")
        == 1
    )
    assert (
        value(registry, "pagination_page_size_bucket", route="/content", mode="offset", le="10.0")
        == 0
    )
    assert value(registry, "pagination_offset_sum", route="/content") == 40
    assert value(registry, "pagination_offset_bucket", route="/content", le="50.0") == 1
    assert value(registry, "pagination_offset_bucket", route="/content", le="10.0") == 0
    assert value(registry, "pagination_page_number_sum", route="/content") == 3
    assert value(registry, "pagination_page_number_bucket", route="/content", le="3.0") == 1
    assert value(registry, "pagination_page_number_bucket", route="/content", le="2.0") == 0
    assert value(registry, "pagination_items_returned_sum", route="/content", mode="offset") == 20
    assert (
        value(
            registry,
            "pagination_query_duration_seconds_count",
            **labels,
            offset_range="1-100",
        )
        == 1
    )


def test_skip_and_limit_record_the_page_number(registry: CollectorRegistry) -> None:
    app = content_app(registry)
    get(app, "/content?skip=20000&limit=100", "/content?skip=0&limit=100")
    assert value(registry, "pagination_page_number_sum", route="/content") == 202
    assert value(registry, "pagination_offset_sum", route="/content") == 20000
    deep = {"route": "/content", "mode": "offset", "page_size_class": "51-100"}
    assert (
        value(
            registry,
            "pagination_request_duration_seconds_count",
            **deep,
            offset_range="10001-100000",
        )
        == 1
    )
    assert (
        value(registry, "pagination_request_duration_seconds_count", **deep, offset_range="0") == 1
    )


def test_offset_and_limit_parameters_are_offset_mode(registry: CollectorRegistry) -> None:
    app = FastAPI()

    @app.get("/rows")
    async def rows(offset: int = 0, limit: int = 10) -> list[int]:
        return []

    instrument(app, registry=registry)
    get(app, "/rows?offset=150&limit=50")
    assert value(registry, "pagination_offset_sum", route="/rows") == 150
    assert value(registry, "pagination_page_number_sum", route="/rows") == 4
    assert (
        value(
            registry,
            "pagination_request_duration_seconds_count",
            route="/rows",
            mode="offset",
            page_size_class="26-50",
            offset_range="101-1000",
        )
        == 1
    )
    # No timer ran: no query duration, no items.
    assert value(registry, "pagination_items_returned_count", route="/rows", mode="offset") is None


def test_cursor_mode_has_no_offset(registry: CollectorRegistry) -> None:
    app = content_app(registry)
    get(app, "/content/cursor?limit=30&cursor=opaque", "/content/cursor?limit=30")
    labels = {"route": "/content/cursor", "mode": "cursor", "page_size_class": "26-50"}
    # The first page has no cursor parameter: pagination_query(mode="cursor") says what it is.
    assert (
        value(registry, "pagination_request_duration_seconds_count", **labels, offset_range="none")
        == 2
    )
    assert (
        value(registry, "pagination_query_duration_seconds_count", **labels, offset_range="none")
        == 2
    )
    assert (
        value(registry, "pagination_items_returned_sum", route="/content/cursor", mode="cursor")
        == 60
    )
    assert value(registry, "pagination_offset_count", route="/content/cursor") is None
    assert value(registry, "pagination_page_number_count", route="/content/cursor") is None
    assert (
        value(
            registry,
            "pagination_request_duration_seconds_count",
            **{**labels, "mode": "offset"},
            offset_range="0",
        )
        is None
    )


def test_query_timer_works_in_sync_endpoints(registry: CollectorRegistry) -> None:
    app = content_app(registry)
    get(app, "/content/sync?page=2&page_size=5")
    labels = {"route": "/content/sync", "mode": "offset", "page_size_class": "1-10"}
    assert (
        value(registry, "pagination_query_duration_seconds_count", **labels, offset_range="1-100")
        == 1
    )
    assert (
        value(registry, "pagination_items_returned_sum", route="/content/sync", mode="offset") == 2
    )


def test_values_the_app_rejects_are_not_recorded(registry: CollectorRegistry) -> None:
    app = content_app(registry)
    responses = get(
        app,
        "/content?page=0&page_size=10",
        "/content?page=1&page_size=abc",
        "/content?page=1&page_size=501",  # valid number, over the app's limit: 422
        "/content?skip=-1&limit=10",
    )
    assert [r.status_code for r in responses] == [422, 422, 422, 422]
    names = {
        sample.name
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name.startswith("pagination_")
    }
    assert names == set()
    assert (
        registry.get_sample_value(
            "http_requests_total", {"method": "GET", "route": "/content", "status": "422"}
        )
        == 4
    )


def test_unmatched_paths_with_page_parameters_are_not_pagination(
    registry: CollectorRegistry,
) -> None:
    app = content_app(registry)
    assert get(app, "/nowhere?page=1&page_size=10")[0].status_code == 404
    assert value(registry, "pagination_page_size_count", route="unmatched", mode="offset") is None


def test_server_errors_on_paginated_requests_are_still_timed(registry: CollectorRegistry) -> None:
    app = content_app(registry)
    assert get(app, "/content/broken?page=1&page_size=10")[0].status_code == 503
    assert (
        value(
            registry,
            "pagination_request_duration_seconds_count",
            route="/content/broken",
            mode="offset",
            page_size_class="1-10",
            offset_range="0",
        )
        == 1
    )


def test_incomplete_pagination_is_not_recorded(registry: CollectorRegistry) -> None:
    app = content_app(registry)
    get(app, "/content/untimed?page=2")  # the app's default page size is not in the query
    assert value(registry, "pagination_page_number_count", route="/content/untimed") is None
    app2 = content_app(CollectorRegistry(), pagination=PaginationParams(default_page_size=50))
    registry2 = app2.state.genonaut_instrumentation.registry
    get(app2, "/content/untimed?page=2")
    assert value(registry2, "pagination_offset_sum", route="/content/untimed") == 50


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
    assert page.labels()[2] in [label for _, label in catalogue.OFFSET_RANGES]
    page.override("cursor", 20, None)
    assert (page.offset, page.page, page.labels()) == (None, None, ("cursor", "11-25", "none"))


@pytest.mark.parametrize(
    ("query", "ambiguous"),
    [
        ("limit=10", True),
        ("page_size=25", True),
        ("cursor=&limit=5", True),  # an empty cursor is a first page, of either kind
        ("skip=0&limit=10", False),
        ("offset=0&limit=10", False),
        ("page=1&page_size=25", False),
        ("page=2", False),
        ("cursor=abc&limit=5", False),
    ],
)
def test_a_size_parameter_alone_is_ambiguous(query: str, ambiguous: bool) -> None:
    page = detect(query.encode(), DEFAULTS)
    assert page is not None
    assert page.ambiguous is ambiguous


def feed_app(registry: CollectorRegistry) -> FastAPI:
    """A cursor route and an offset route behind a dependency that fails on ``?fail=1``."""
    from fastapi import Depends

    def gate(fail: int = 0) -> None:
        if fail:
            raise HTTPException(503, "upstream away")

    app = FastAPI(dependencies=[Depends(gate)])

    @app.get("/feed")
    async def feed(limit: int = Query(50, ge=1), cursor: str | None = None) -> int:
        with pagination_query(mode="cursor", page_size=limit) as query:
            query.items = limit
        return limit

    @app.get("/rows")
    async def rows(skip: int = 0, limit: int = Query(50, ge=1)) -> int:
        with pagination_query(mode="offset") as query:
            query.items = limit
        return limit

    instrument(app, registry=registry)
    return app


def pagination_series(registry: CollectorRegistry, route: str) -> set[tuple[str, str]]:
    """``(mode, offset_range)`` of every pagination_request_duration series of a route."""
    return {
        (sample.labels["mode"], sample.labels["offset_range"])
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "pagination_request_duration_seconds_count"
        and sample.labels["route"] == route
    }


def test_a_failed_request_takes_the_mode_its_route_declared(registry: CollectorRegistry) -> None:
    app = feed_app(registry)
    cursor = {"route": "/feed", "mode": "cursor", "page_size_class": "1-10"}
    # Before the endpoint ever ran, "limit" alone can only read as offset 0.
    assert get(app, "/feed?limit=10&fail=1")[0].status_code == 503
    assert pagination_series(registry, "/feed") == {("offset", "0")}
    responses = get(app, "/feed?limit=10", "/feed?limit=10&fail=1", "/feed?limit=10&fail=1")
    assert [r.status_code for r in responses] == [200, 503, 503]
    count = "pagination_request_duration_seconds_count"
    assert value(registry, count, **cursor, offset_range="none") == 3
    assert value(registry, count, **{**cursor, "mode": "offset"}, offset_range="0") == 1
    assert value(registry, "pagination_offset_count", route="/feed") == 1
    assert (
        value(registry, "pagination_query_duration_seconds_count", **cursor, offset_range="none")
        == 1
    )
    # An explicit position is what the client asked for: never overridden.
    get(app, "/feed?skip=20&limit=10&fail=1")
    assert value(registry, "pagination_offset_sum", route="/feed") == 20


def test_a_declared_offset_route_keeps_offset_labels(registry: CollectorRegistry) -> None:
    app = feed_app(registry)
    responses = get(app, "/rows?limit=10", "/rows?limit=10&fail=1", "/feed?limit=10")
    assert [r.status_code for r in responses] == [200, 503, 200]
    assert pagination_series(registry, "/rows") == {("offset", "0")}
    assert (
        value(
            registry,
            "pagination_request_duration_seconds_count",
            route="/rows",
            mode="offset",
            page_size_class="1-10",
            offset_range="0",
        )
        == 2
    )
    assert value(registry, "pagination_page_number_sum", route="/rows") == 2
