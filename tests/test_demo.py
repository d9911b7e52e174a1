"""The demo API on a real SQLite file: content, pagination, errors, faults and metrics."""

from __future__ import annotations

import base64
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from genonaut_monitoring.exporters import demo
from tests.conftest import ROOT, free_port

SEED_ROWS = 2_000
CONTENT = "/api/v1/content"
CURSOR = "/api/v1/content/cursor"


class Client:
    """A synchronous httpx client on an ASGI app whose lifespan runs in a portal thread."""

    def __init__(self, portal: Any, client: httpx.AsyncClient, app: Any, registry: Any) -> None:
        self._portal = portal
        self._client = client
        self.app = app
        self.registry = registry

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._portal.call(partial(self._client.request, method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def value(self, name: str, **labels: str) -> float:
        """A sample from this app's registry (0 when absent)."""
        return self.registry.get_sample_value(name, labels) or 0.0


@contextmanager
def running(app: Any, registry: CollectorRegistry) -> Iterator[Client]:
    """Start the app's lifespan (seeding) and yield a client; shut down afterwards."""
    with anyio.from_thread.start_blocking_portal() as portal:
        lifespan = app.router.lifespan_context(app)
        portal.call(lifespan.__aenter__)
        # raise_app_exceptions=False: an unhandled exception becomes the 500 a server sends.
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        client = httpx.AsyncClient(transport=transport, base_url="http://demo")
        try:
            yield Client(portal, client, app, registry)
        finally:
            portal.call(client.aclose)
            portal.call(lifespan.__aexit__, None, None, None)


def make_client(tmp_path: Path, registry: CollectorRegistry, **kwargs: Any) -> Callable[[], Any]:
    kwargs.setdefault("seed_rows", SEED_ROWS)
    # The count is cached for the whole test, so query counts are exact.
    kwargs.setdefault("count_cache_seconds", 3600)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    return lambda: running(demo.create_app(url, registry=registry, **kwargs), registry)


@pytest.fixture
def api(tmp_path: Path, registry: CollectorRegistry) -> Iterator[Client]:
    with make_client(tmp_path, registry, faults=False)() as client:
        yield client


@pytest.fixture
def faulty(tmp_path: Path, registry: CollectorRegistry) -> Iterator[Client]:
    with make_client(tmp_path, registry, faults=True)() as client:
        yield client


@pytest.fixture(scope="module")
def expected() -> list[dict[str, Any]]:
    """The seeded rows in API order (newest first, id breaking ties), as the API shows them."""
    rows = sorted(
        demo.seed_rows_data(SEED_ROWS), key=lambda r: (r["created_at"], r["id"]), reverse=True
    )
    return [
        {
            "id": r["id"],
            "title": r["title"],
            "created_at": r["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tags": r["tags"],
            "content_type": r["content_type"],
            "creator": r["creator"],
        }
        for r in rows
    ]


# --- Content and pagination ------------------------------------------------------------


def test_seed_data_has_timestamp_ties_so_keyset_needs_the_id(expected: list[dict[str, Any]]):
    stamps = [item["created_at"] for item in expected]
    assert len(set(stamps)) < len(stamps)


def test_offset_page_returns_the_window_in_newest_first_order(api: Client, expected):
    response = api.get(CONTENT, params={"page": 2, "page_size": 25})
    assert response.status_code == 200
    body = response.json()
    assert body["items"] == expected[25:50]
    assert body["pagination"] == {
        "mode": "offset",
        "page": 2,
        "page_size": 25,
        "offset": 25,
        "total_count": SEED_ROWS,
        "has_next": True,
    }


def test_skip_and_limit_address_the_same_rows_as_page_and_page_size(api: Client, expected):
    by_page = api.get(CONTENT, params={"page": 3, "page_size": 40}).json()
    by_skip = api.get(CONTENT, params={"skip": 80, "limit": 40}).json()
    assert by_skip == by_page
    assert api.get(CONTENT, params={"offset": 80, "limit": 40}).json() == by_page
    unaligned = api.get(CONTENT, params={"skip": 30, "limit": 25}).json()
    assert unaligned["items"] == expected[30:55]
    assert unaligned["pagination"]["page"] == 2
    assert unaligned["pagination"]["offset"] == 30


def test_default_window_is_the_first_fifty(api: Client, expected):
    body = api.get(CONTENT).json()
    assert body["items"] == expected[:50]
    assert body["pagination"]["page"] == 1
    assert body["pagination"]["page_size"] == demo.DEFAULT_PAGE_SIZE == 50


def test_last_page_and_beyond_have_no_next(api: Client, expected):
    last = api.get(CONTENT, params={"page": 80, "page_size": 25}).json()
    assert last["items"] == expected[1975:]
    assert last["pagination"]["has_next"] is False
    beyond = api.get(CONTENT, params={"page": 81, "page_size": 25}).json()
    assert beyond["items"] == []
    assert beyond["pagination"]["has_next"] is False
    assert beyond["pagination"]["total_count"] == SEED_ROWS
    full = api.get(CONTENT, params={"page": 4, "page_size": demo.MAX_PAGE_SIZE}).json()
    assert full["items"] == expected[1500:]
    assert full["pagination"]["has_next"] is False


def test_cursor_walk_visits_every_row_exactly_once_in_order(api: Client, expected):
    ids: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 137}
        if cursor is not None:
            params["cursor"] = cursor
        response = api.get(CURSOR, params=params)
        assert response.status_code == 200
        body = response.json()
        pages += 1
        ids.extend(item["id"] for item in body["items"])
        assert body["pagination"]["mode"] == "cursor"
        assert body["pagination"]["page_size"] == 137
        cursor = body["pagination"]["next_cursor"]
        assert (cursor is not None) is body["pagination"]["has_next"]
        if cursor is None:
            break
    assert pages == math.ceil(SEED_ROWS / 137)
    assert len(ids) == len(set(ids)) == SEED_ROWS
    assert ids == [item["id"] for item in expected]


def test_cursor_pages_match_offset_pages(api: Client):
    first = api.get(CURSOR, params={"limit": 30}).json()
    second = api.get(CURSOR, params={"limit": 30, "cursor": first["pagination"]["next_cursor"]})
    assert first["items"] == api.get(CONTENT, params={"page": 1, "page_size": 30}).json()["items"]
    assert (
        second.json()["items"]
        == api.get(CONTENT, params={"page": 2, "page_size": 30}).json()["items"]
    )


def test_item_by_id_returns_every_field_and_404_when_missing(api: Client):
    seeded = {row["id"]: row for row in demo.seed_rows_data(SEED_ROWS)}[1234]
    response = api.get(f"{CONTENT}/1234")
    assert response.status_code == 200
    assert response.json() == {
        "id": 1234,
        "title": seeded["title"],
        "created_at": seeded["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tags": seeded["tags"],
        "content_type": seeded["content_type"],
        "creator": seeded["creator"],
        "quality_score": seeded["quality_score"],
        "prompt": seeded["prompt"],
    }
    missing = api.get(f"{CONTENT}/{SEED_ROWS + 1}")
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"content item {SEED_ROWS + 1} does not exist"}


def test_health_checks_the_database(api: Client):
    response = api.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok", "database": "ok"})


def test_health_is_503_when_the_database_is_gone(tmp_path: Path, registry: CollectorRegistry):
    with make_client(tmp_path, registry)() as client:
        # Replace the file by a directory: every new connection now fails.
        client.app.state.engine.dispose()
        for leftover in tmp_path.glob("demo.db*"):
            leftover.unlink()
        (tmp_path / "demo.db").mkdir()
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["status"] == "error"
        assert response.json()["database"].startswith("OperationalError: ")
        (tmp_path / "demo.db").rmdir()


# --- Bad input: 4xx with a clear message, never a 500 -----------------------------------

BAD_REQUESTS = [
    (CONTENT, {"page": 0}, 422, "greater than or equal to 1"),
    (CONTENT, {"page": -3}, 422, "greater than or equal to 1"),
    (CONTENT, {"page_size": 100000}, 422, "less than or equal to 500"),
    (CONTENT, {"page_size": 501}, 422, "less than or equal to 500"),
    (CONTENT, {"page_size": 0}, 422, "greater than or equal to 1"),
    (CONTENT, {"skip": -1}, 422, "greater than or equal to 0"),
    (CONTENT, {"offset": -1}, 422, "greater than or equal to 0"),
    (CONTENT, {"offset": 5, "skip": 5}, 422, "offset is another name for skip: give one"),
    (CONTENT, {"offset": 5, "page": 1}, 422, "use either page/page_size or skip/limit"),
    (CONTENT, {"limit": 0}, 422, "greater than or equal to 1"),
    (CONTENT, {"page": "two"}, 422, "valid integer"),
    (CONTENT, {"skip": "1.5"}, 422, "valid integer"),
    (CONTENT, {"page": 10**30}, 422, "less than or equal to"),
    (CONTENT, {"page": demo.MAX_OFFSET, "page_size": 500}, 422, "use /api/v1/content/cursor"),
    (CONTENT, {"page": 1, "skip": 0}, 422, "use either page/page_size or skip/limit"),
    (CONTENT, {"page_size": 10, "limit": 10}, 422, "use either page/page_size or skip/limit"),
    (CURSOR, {"limit": 0}, 422, "greater than or equal to 1"),
    (CURSOR, {"limit": 100000}, 422, "less than or equal to 500"),
    (CURSOR, {"limit": "x"}, 422, "valid integer"),
    (CURSOR, {"cursor": "garbage!!"}, 400, "invalid cursor: cursor is not a base64url token"),
    (CURSOR, {"cursor": "Zm9v"}, 400, "invalid cursor: cursor is not a base64url token"),
    (CURSOR, {"cursor": "x" * 300}, 422, "at most 200 characters"),
    (f"{CONTENT}/abc", {}, 422, "valid integer"),
    (f"{CONTENT}/0", {}, 422, "greater than or equal to 1"),
    (f"{CONTENT}/{2**63}", {}, 422, "less than or equal to"),
]


@pytest.mark.parametrize(("path", "params", "status", "message"), BAD_REQUESTS)
def test_bad_parameters_get_a_clear_4xx(api: Client, path, params, status, message):
    response = api.get(path, params=params)
    assert response.status_code == status
    assert message in json.dumps(response.json())


def _token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"v": 1}, "cursor has the wrong shape"),
        ([1, "2024-01-01T00:00:00"], "cursor has the wrong shape"),
        ([2, "2024-01-01T00:00:00", 5], "cursor version 2 is not supported (expected 1)"),
        ([1, "yesterday", 5], "cursor holds an invalid timestamp"),
        ([1, "2024-01-01T00:00:00+05:00", 5], "cursor holds an invalid timestamp"),
        ([1.0, "2024-01-01T00:00:00", 5], "cursor version 1.0 is not supported (expected 1)"),
        ([1, "2024-01-01T00:00:00", "5"], "cursor has the wrong shape"),
        ([1, "2024-01-01T00:00:00", -5], "cursor has the wrong shape"),
        ([1, "2024-01-01T00:00:00", True], "cursor has the wrong shape"),
        ([1, 20240101, 5], "cursor has the wrong shape"),
    ],
)
def test_tampered_cursor_is_400_naming_the_problem(api: Client, value, message):
    response = api.get(CURSOR, params={"cursor": _token(value)})
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"invalid cursor: {message}; pass next_cursor from a previous response "
        "unchanged, or omit cursor to start from the newest item"
    }


def test_cursor_round_trips_microseconds():
    stamp = datetime(2024, 5, 6, 7, 8, 9, 123456)
    assert demo.decode_cursor(demo.encode_cursor(stamp, 42)) == (stamp, 42)
    assert "=" not in demo.encode_cursor(stamp, 42)


# --- Faults -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_fault_routes_do_not_exist_when_faults_are_disabled(api: Client, method):
    response = api.request(method, "/debug/faults", json={"error_rate": 1.0})
    assert response.status_code == 404
    assert api.get(CONTENT).status_code == 200


def test_error_rate_one_fails_every_api_request_until_cleared(faulty: Client):
    assert faulty.get("/debug/faults").json() == {
        "error_rate": 0.0,
        "exception_rate": 0.0,
        "latency_seconds": 0.0,
        "route_prefix": "/api/",
    }
    put = faulty.request("PUT", "/debug/faults", json={"error_rate": 1.0})
    assert put.status_code == 200
    assert put.json() == {
        "error_rate": 1.0,
        "exception_rate": 0.0,
        "latency_seconds": 0.0,
        "route_prefix": "/api/",
    }
    statuses = [faulty.get(CONTENT).status_code for _ in range(20)]
    assert statuses == [500] * 20
    assert faulty.get(f"{CONTENT}/1").status_code == 500
    assert faulty.get(CONTENT).json() == {
        "detail": "injected fault (DELETE /debug/faults to clear)"
    }
    # Outside the prefix nothing changes.
    assert faulty.get("/health").status_code == 200
    assert faulty.get("/metrics").status_code == 200
    labels = {"method": "GET", "route": CONTENT}
    assert faulty.value("http_requests_total", status="500", **labels) == 21

    cleared = faulty.request("DELETE", "/debug/faults")
    assert cleared.json() == {
        "error_rate": 0.0,
        "exception_rate": 0.0,
        "latency_seconds": 0.0,
        "route_prefix": "/api/",
    }
    assert [faulty.get(CONTENT).status_code for _ in range(20)] == [200] * 20
    assert faulty.value("http_requests_total", status="500", **labels) == 21
    assert faulty.value("http_requests_total", status="200", **labels) == 20


def test_exception_rate_raises_an_unhandled_exception_counted_by_type(faulty: Client):
    faulty.request("PUT", "/debug/faults", json={"exception_rate": 1.0}).raise_for_status()
    assert faulty.get(CONTENT).status_code == 500
    labels = {"method": "GET", "route": CONTENT}
    assert faulty.value("http_exceptions_total", exception="InjectedFault", **labels) == 1
    assert faulty.value("http_requests_total", status="500", **labels) == 1
    assert faulty.request("DELETE", "/debug/faults").status_code == 200
    assert faulty.get(CONTENT).status_code == 200


def test_route_prefix_limits_the_faults_and_never_locks_out_the_switch(faulty: Client):
    faulty.request(
        "PUT", "/debug/faults", json={"error_rate": 1.0, "route_prefix": CURSOR}
    ).raise_for_status()
    assert faulty.get(CURSOR).status_code == 500
    assert faulty.get(CONTENT).status_code == 200
    faulty.request("PUT", "/debug/faults", json={"error_rate": 1.0, "route_prefix": "/"})
    assert faulty.get("/health").status_code == 500
    assert faulty.request("DELETE", "/debug/faults").status_code == 200
    assert faulty.get("/health").status_code == 200


def test_latency_is_added_to_matching_requests(faulty: Client):
    faulty.request("PUT", "/debug/faults", json={"latency_seconds": 0.3}).raise_for_status()
    started = time.perf_counter()
    assert faulty.get(CONTENT, params={"page_size": 1}).status_code == 200
    assert time.perf_counter() - started >= 0.3
    # A path outside the prefix is not held back. The latency is one no stall of a busy
    # machine comes near, so only the fault itself could make the answer that late.
    held = 10.0
    faulty.request("PUT", "/debug/faults", json={"latency_seconds": held}).raise_for_status()
    started = time.perf_counter()
    assert faulty.get("/health").status_code == 200
    assert time.perf_counter() - started < held, "a path outside route_prefix was held back"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"error_rate": -0.1}, "error_rate"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_rate": "often"}, "error_rate"),
        ({"exception_rate": 2}, "exception_rate"),
        ({"latency_seconds": -1}, "latency_seconds"),
        ({"latency_seconds": 1e9}, "latency_seconds"),
        ({"route_prefix": "api/"}, "route_prefix"),
        ({"route_prefix": ""}, "route_prefix"),
    ],
)
def test_invalid_fault_settings_are_422_and_change_nothing(faulty: Client, body, field):
    response = faulty.request("PUT", "/debug/faults", json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]
    assert faulty.get("/debug/faults").json()["error_rate"] == 0.0


# --- Metrics ----------------------------------------------------------------------------


def test_requests_pagination_queries_and_cache_are_counted_exactly(api: Client):
    select = {"operation": "SELECT", "table": "content_items"}
    selects_before = api.value("database_query_duration_seconds_count", **select)
    for page in (1, 2, 3):
        assert api.get(CONTENT, params={"page": page, "page_size": 10}).status_code == 200
    first = api.get(CURSOR, params={"limit": 20}).json()
    api.get(CURSOR, params={"limit": 20, "cursor": first["pagination"]["next_cursor"]})
    assert api.get(f"{CONTENT}/7").status_code == 200
    assert api.get(f"{CONTENT}/7").status_code == 200
    assert api.get(CONTENT, params={"page": 0}).status_code == 422

    def requests(route: str, status: str) -> float:
        return api.value("http_requests_total", method="GET", route=route, status=status)

    assert requests(CONTENT, "200") == 3
    assert requests(CONTENT, "422") == 1
    assert requests(CURSOR, "200") == 2
    assert requests(f"{CONTENT}/{{item_id}}", "200") == 2

    offset = {"route": CONTENT, "mode": "offset"}
    cursor = {"route": CURSOR, "mode": "cursor", "offset_range": "none"}
    for metric, extra in (
        ("pagination_request_duration_seconds", ({}, {})),
        ("pagination_query_duration_seconds", ({"page_size_class": "1-10"},
                                               {"page_size_class": "11-25"})),
    ):  # fmt: skip
        assert api.value(f"{metric}_count", offset_range="0", **offset, **extra[0]) == 1
        assert api.value(f"{metric}_count", offset_range="1-100", **offset, **extra[0]) == 2
        assert api.value(f"{metric}_count", **cursor, **extra[1]) == 2
    assert api.value("pagination_offset_sum", route=CONTENT) == 0 + 10 + 20
    assert api.value("pagination_page_number_sum", route=CONTENT) == 1 + 2 + 3
    assert api.value("pagination_page_size_sum", route=CURSOR, mode="cursor") == 40
    assert api.value("pagination_items_returned_sum", route=CONTENT, mode="offset") == 30
    assert api.value("pagination_items_returned_sum", route=CURSOR, mode="cursor") == 40

    # 3 offset pages + 1 count (then cached) + 2 cursor pages + 1 item (then cached).
    selects = api.value("database_query_duration_seconds_count", **select) - selects_before
    assert selects == 7
    assert api.value("cache_requests_total", cache="content-items", result="miss") == 1
    assert api.value("cache_requests_total", cache="content-items", result="hit") == 1


def test_count_is_recomputed_after_its_ttl(tmp_path: Path, registry: CollectorRegistry):
    select = {"operation": "SELECT", "table": "content_items"}
    with make_client(tmp_path, registry, count_cache_seconds=0)() as client:
        before = client.value("database_query_duration_seconds_count", **select)
        for _ in range(3):
            client.get(CONTENT, params={"page_size": 5})
        # Every request: the page and the count.
        assert client.value("database_query_duration_seconds_count", **select) - before == 6


def test_count_cache_serves_the_cached_value_within_its_ttl():
    cache = demo.CountCache(ttl=60)
    values = iter([10, 20])
    assert cache.get(lambda: next(values)) == 10
    assert cache.get(lambda: next(values)) == 10
    uncached = demo.CountCache(ttl=0)
    assert [uncached.get(lambda: next(values)), uncached.get(lambda: 30)] == [20, 30]


def test_item_cache_evicts_the_least_recently_used(registry: CollectorRegistry):
    from fastapi import FastAPI

    from genonaut_monitoring.exporters import instrument

    recorder = instrument(FastAPI(), registry=registry).cache("lru-test")
    cache = demo.LruCache(2, recorder)
    cache.put(1, {"id": 1})
    cache.put(2, {"id": 2})
    assert cache.get(1) == {"id": 1}
    cache.put(3, {"id": 3})
    assert cache.get(2) is None
    assert cache.get(3) == {"id": 3}
    hits = registry.get_sample_value("cache_requests_total", {"cache": "lru-test", "result": "hit"})
    misses = registry.get_sample_value(
        "cache_requests_total", {"cache": "lru-test", "result": "miss"}
    )
    assert (hits, misses) == (2, 1)


# --- Seeding ----------------------------------------------------------------------------


def _rows(path: Path) -> tuple[int, int | None]:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            count = conn.execute(sa.text("SELECT count(*) FROM content_items")).scalar_one()
            seeded = conn.execute(sa.text("SELECT seed_rows FROM demo_seed")).scalar()
        return count, seeded
    finally:
        engine.dispose()


def test_restart_keeps_the_data_and_logs_a_different_row_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    with make_client(tmp_path, CollectorRegistry(), seed_rows=300)() as first:
        first_page = first.get(CONTENT).json()
    caplog.clear()
    second_app = make_client(tmp_path, CollectorRegistry(), seed_rows=900)
    with caplog.at_level(logging.INFO, logger="genonaut_monitoring.demo"), second_app() as second:
        assert second.get(CONTENT).json() == first_page
        assert second.get(CONTENT).json()["pagination"]["total_count"] == 300
    assert _rows(tmp_path / "demo.db") == (300, 300)
    messages = [r.getMessage() for r in caplog.records if r.name == "genonaut_monitoring.demo"]
    assert messages == [
        "content_items already holds 300 rows; DEMO_SEED_ROWS=900 is ignored and the data kept "
        "(drop the tables or use a new database to reseed)"
    ]


def test_workers_starting_together_seed_once(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    results: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        engine = demo.make_engine(url)
        try:
            results.append(demo.prepare_database(engine, 5_000))
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [5_000] * 4
    assert _rows(tmp_path / "demo.db") == (5_000, 5_000)


def test_existing_table_not_seeded_by_the_demo_is_left_alone(tmp_path: Path):
    engine = demo.make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    try:
        demo.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(demo.content_items.insert(), list(demo.seed_rows_data(10)))
        assert demo.prepare_database(engine, 1_000) == 10
    finally:
        engine.dispose()
    assert _rows(tmp_path / "demo.db") == (10, None)


def test_zero_seed_rows_gives_an_empty_catalogue(tmp_path: Path, registry: CollectorRegistry):
    with make_client(tmp_path, registry, seed_rows=0)() as client:
        body = client.get(CONTENT).json()
        assert body["items"] == []
        assert body["pagination"]["total_count"] == 0
        assert client.get(CURSOR).json()["pagination"] == {
            "mode": "cursor",
            "page_size": 50,
            "next_cursor": None,
            "has_next": False,
        }


# --- Settings from the environment ------------------------------------------------------


def test_settings_come_from_the_environment(
    tmp_path: Path, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv("DEMO_SEED_ROWS", "123")
    monkeypatch.setenv("DEMO_FAULTS", "1")
    with running(demo.create_app(registry=registry), registry) as client:
        assert client.get(CONTENT).json()["pagination"]["total_count"] == 123
        assert client.get("/debug/faults").status_code == 200
    assert (tmp_path / "env.db").exists()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEMO_SEED_ROWS", "lots", "DEMO_SEED_ROWS='lots' is not an integer"),
        ("DEMO_SEED_ROWS", "-5", "seed_rows (DEMO_SEED_ROWS) must be >= 0, got -5"),
        ("DEMO_FAULTS", "maybe", "DEMO_FAULTS='maybe' is not a flag: set it to 1 or 0"),
        ("SLOW_QUERY_SECONDS", "slow", "SLOW_QUERY_SECONDS='slow' is not a number of seconds"),
    ],
)
def test_bad_environment_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as info:
        demo.create_app(registry=CollectorRegistry())
    assert message in str(info.value)


def test_uvicorn_serves_the_module_level_app(tmp_path: Path):
    port = free_port()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'served.db'}",
        DEMO_SEED_ROWS="250",
        DEMO_FAULTS="0",
        PYTHONPATH=str(ROOT),
    )
    log = (tmp_path / "uvicorn.log").open("wb")
    args = [sys.executable, "-m", "uvicorn", "exporters.demo:app", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*args, "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base}/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail((tmp_path / "uvicorn.log").read_text())
                time.sleep(0.1)
        assert health.json() == {"status": "ok", "database": "ok"}
        page = httpx.get(f"{base}{CONTENT}", params={"page_size": 5}).json()
        assert page["pagination"]["total_count"] == 250
        metrics = httpx.get(f"{base}/metrics").text
        assert 'http_requests_total{method="GET",route="/health",status="200"} 1.0' in metrics
        assert httpx.get(f"{base}/debug/faults").status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
    lines = (tmp_path / "uvicorn.log").read_text().splitlines()
    seeded = [json.loads(line) for line in lines if line.startswith("{") and '"seed"' in line]
    assert [entry["message"].split(" in ")[0] for entry in seeded] == [
        "seeded content_items with 250 rows"
    ]


def test_a_first_cursor_page_that_fails_early_is_a_cursor_page(
    faulty: Client, caplog: pytest.LogCaptureFixture
):
    # The route declares a cursor parameter: its first page (no cursor yet) is a cursor page,
    # even when the fault dependency fails it before the handler runs.
    faulty.request("PUT", "/debug/faults", json={"error_rate": 1.0}).raise_for_status()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="genonaut_monitoring.access"):
        assert faulty.get(CURSOR, params={"limit": 50}).status_code == 500
    faulty.request("DELETE", "/debug/faults").raise_for_status()
    assert faulty.get(CURSOR).status_code == 200  # no parameter at all: the route's defaults
    cursor = {"route": CURSOR, "mode": "cursor"}
    assert (
        faulty.value("pagination_request_duration_seconds_count", **cursor, offset_range="none")
        == 2
    )
    # Only the successful request ran the page query.
    assert (
        faulty.value(
            "pagination_query_duration_seconds_count",
            **cursor,
            page_size_class="26-50",
            offset_range="none",
        )
        == 1
    )
    offset_series = [
        sample
        for metric in faulty.registry.collect()
        for sample in metric.samples
        if sample.name.startswith("pagination_")
        and sample.labels.get("route") == CURSOR
        and sample.labels.get("mode") != "cursor"
    ]
    assert offset_series == []
    assert faulty.value("pagination_offset_count", route=CURSOR) == 0
    (record, *_) = [r for r in caplog.records if r.name == "genonaut_monitoring.access"]
    fields = {
        name: getattr(record, name)
        for name in ("status", "pagination_mode", "page", "page_size", "offset", "offset_range")
    }
    assert fields == {
        "status": 500,
        "pagination_mode": "cursor",
        "page": None,
        "page_size": 50,
        "offset": None,
        "offset_range": "none",
    }
