"""What the request hot path keeps between requests changes no number it records.

A route keeps the pages of query strings it has parsed, and the pagination
children of each (route, mode, offset range); both must give exactly what a
fresh parse and a fresh lookup give, stay bounded, and leave the series cap
counting every folded request.
"""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Query
from prometheus_client import CollectorRegistry

from genonaut_monitoring.exporters import PaginationParams, catalogue, instrument
from genonaut_monitoring.exporters.catalogue import OTHER, offset_range
from genonaut_monitoring.exporters.paging import _KEPT_QUERIES, _KEPT_QUERY_LENGTH, route_paging
from tests.apps.driver import get

PARAMS = PaginationParams()
OFFSET_ROUTE = {"page": 1, "page_size": 50, "skip": None, "limit": None}
CURSOR_ROUTE = {"cursor": None, "limit": 30}
QUERIES = [
    "",
    "page=3&page_size=20",
    "page=3",
    "skip=120&limit=50",
    "page=1&page=4&page_size=10",
    "pa%67e=2&page%5Fsize=10",
    "page=0",
    "page=abc",
    "page_size=",
    "limit=10",
    "cursor=abc&limit=5",
    "cursor=",
]


@pytest.mark.parametrize("declared", [OFFSET_ROUTE, CURSOR_ROUTE], ids=["offset", "cursor"])
def test_a_query_string_parsed_again_gives_a_new_page_equal_to_a_fresh_parse(
    declared: dict[str, Any],
) -> None:
    kept = route_paging(declared, PARAMS)
    assert kept is not None
    for query in QUERIES:
        first = kept.parse(query.encode())
        if first is not None:
            # A request's page is its own: what pagination_query() changes stays in it.
            first.override("cursor" if first.mode == "offset" else "offset", 99, 7)
        again = kept.parse(query.encode())
        fresh = route_paging(declared, PARAMS)
        assert fresh is not None
        expected = fresh.parse(query.encode())
        assert (again is None) == (expected is None), query
        if again is not None and expected is not None:
            assert again is not first
            assert again.arguments == expected.arguments, query
            assert (again.query_seconds, again.items) == (None, None)


def test_only_short_query_strings_without_a_cursor_are_kept_and_never_too_many() -> None:
    paging = route_paging({**CURSOR_ROUTE, "page": 1, "page_size": 20}, PARAMS)
    assert paging is not None
    for n in range(3 * _KEPT_QUERIES):
        paging.parse(f"cursor=c{n}&limit=5".encode())
    assert len(paging._parsed) == 0
    paging.parse(b"page=2&q=" + b"x" * _KEPT_QUERY_LENGTH)
    assert len(paging._parsed) == 0
    for n in range(3 * _KEPT_QUERIES + 1):
        paging.parse(f"page={n + 1}&page_size=20".encode())
        assert len(paging._parsed) <= _KEPT_QUERIES


def paged_app(registry: CollectorRegistry, routes: int = 1, **options: Any) -> FastAPI:
    app = FastAPI()

    async def content(
        page: Annotated[int, Query(ge=1)] = 1, page_size: Annotated[int, Query(ge=1)] = 20
    ) -> dict[str, int]:
        return {"page": page}

    for n in range(routes):
        app.add_api_route(f"/content{n}", content, methods=["GET"], name=f"content{n}")
    instrument(app, registry=registry, **options)
    return app


def test_repeated_pages_record_what_each_request_asked_for(registry: CollectorRegistry) -> None:
    app = paged_app(registry)
    asked = [(3, 20)] * 5 + [(1, 20), (3, 20), (7, 10), (60, 25), (60, 25)]
    get(app, *(f"/content0?page={p}&page_size={s}" for p, s in asked))
    offsets = [(p - 1) * s for p, s in asked]

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"route": "/content0", **labels})

    assert sample("pagination_offset_sum") == sum(offsets)
    assert sample("pagination_offset_count") == len(asked)
    assert sample("pagination_page_number_sum") == sum(p for p, _ in asked)
    assert sample("pagination_page_size_sum", mode="offset") == sum(s for _, s in asked)
    for label in {offset_range(o) for o in offsets}:
        count = sample(
            "pagination_request_duration_seconds_count", mode="offset", offset_range=label
        )
        assert count == sum(1 for o in offsets if offset_range(o) == label), label


def test_past_the_series_cap_every_folded_paginated_request_is_counted(
    registry: CollectorRegistry,
) -> None:
    spec = catalogue.PAGINATION_REQUEST_DURATION
    ranges = len(catalogue.OFFSET_RANGES)
    # Room for the zero series of exactly one offset route: the second route folds.
    app = paged_app(registry, routes=2, max_series_per_metric=ranges * spec.series_per_child)
    folded = {"metric": spec.name}
    get(app, "/content0?page=2", "/content1?page=2")
    assert registry.get_sample_value("metrics_folded_samples_total", folded) == 1
    get(app, "/content1?page=2", "/content1?page=2", "/content0?page=2")
    assert registry.get_sample_value("metrics_folded_samples_total", folded) == 3
    count = "pagination_request_duration_seconds_count"
    by = {"mode": "offset", "offset_range": "1-100"}
    assert registry.get_sample_value(count, {"route": OTHER, **by}) == 3
    assert registry.get_sample_value(count, {"route": "/content0", **by}) == 2
    assert registry.get_sample_value(count, {"route": "/content1", **by}) is None
