"""Server-side cache recorder and the frontend cache report endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from genonaut_monitoring.exporters import cache, instrument
from genonaut_monitoring.exporters.catalogue import OTHER
from tests.apps.driver import get, request

REPORT_PATH = "/api/v1/telemetry/frontend"
CACHES = ("content-items", "content-pages", "thumbnails")


def cache_value(registry: CollectorRegistry, cache_name: str, result: str) -> float | None:
    labels = {"cache": cache_name, "result": result}
    return registry.get_sample_value("frontend_cache_requests_total", labels)


def prefetch_value(registry: CollectorRegistry, cache_name: str, outcome: str) -> float | None:
    labels = {"cache": cache_name, "outcome": outcome}
    return registry.get_sample_value("frontend_prefetch_total", labels)


def frontend_totals(registry: CollectorRegistry) -> dict[tuple[str, str, str], float]:
    return {
        (
            sample.name,
            sample.labels["cache"],
            sample.labels.get("result", sample.labels.get("outcome", "")),
        ): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name in ("frontend_cache_requests_total", "frontend_prefetch_total")
    }


@pytest.fixture
def app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()
    instrument(app, registry=registry)
    return app


def post(app: FastAPI, body: Any, **kwargs: Any) -> Any:
    return request(app, "POST", REPORT_PATH, json=body, **kwargs)


# --- server-side recorder --------------------------------------------------------


def test_server_cache_recorder_starts_at_zero_and_counts(registry: CollectorRegistry) -> None:
    instrumentation = instrument(FastAPI(), registry=registry)
    pages = instrumentation.cache("content-pages")
    labels = {"cache": "content-pages"}
    assert registry.get_sample_value("cache_requests_total", {**labels, "result": "hit"}) == 0
    assert registry.get_sample_value("cache_requests_total", {**labels, "result": "miss"}) == 0
    pages.hit()
    pages.hit(3)
    pages.miss(2)
    assert instrumentation.cache("content-pages") is pages
    assert registry.get_sample_value("cache_requests_total", {**labels, "result": "hit"}) == 4
    assert registry.get_sample_value("cache_requests_total", {**labels, "result": "miss"}) == 2


def test_server_cache_names_beyond_the_cap_fold_into_other(registry: CollectorRegistry) -> None:
    instrumentation = instrument(FastAPI(), registry=registry)
    for index in range(cache.MAX_SERVER_CACHES):
        instrumentation.cache(f"cache-{index}")
    extra = instrumentation.cache("one-too-many")
    assert extra is instrumentation.cache("yet-another")
    extra.miss()
    assert (
        registry.get_sample_value("cache_requests_total", {"cache": OTHER, "result": "miss"}) == 1
    )
    assert (
        registry.get_sample_value(
            "cache_requests_total", {"cache": "one-too-many", "result": "miss"}
        )
        is None
    )


def test_server_cache_name_must_be_a_string(registry: CollectorRegistry) -> None:
    instrumentation = instrument(FastAPI(), registry=registry)
    with pytest.raises(ValueError, match="non-empty string"):
        instrumentation.cache("")


# --- frontend reports: accepted -----------------------------------------------------


def test_allowed_caches_start_at_zero(app: FastAPI, registry: CollectorRegistry) -> None:
    totals = frontend_totals(registry)
    assert len(totals) == 12
    assert set(totals.values()) == {0.0}
    assert {name for _, name, _ in totals} == set(CACHES)


def test_reports_are_counted_exactly(app: FastAPI, registry: CollectorRegistry) -> None:
    first = {
        "caches": [
            {"cache": "content-pages", "hits": 3, "misses": 1},
            {"cache": "thumbnails", "hits": 0, "misses": 7},
        ],
        "prefetch": [{"cache": "content-pages", "used": 2, "wasted": 1}],
    }
    second = {"caches": [{"cache": "content-pages", "hits": 10, "misses": 0}]}
    for body in (first, second):
        response = post(app, body)
        assert response.status_code == 204
        assert response.content == b""
    assert cache_value(registry, "content-pages", "hit") == 13
    assert cache_value(registry, "content-pages", "miss") == 1
    assert cache_value(registry, "thumbnails", "hit") == 0
    assert cache_value(registry, "thumbnails", "miss") == 7
    assert prefetch_value(registry, "content-pages", "used") == 2
    assert prefetch_value(registry, "content-pages", "wasted") == 1
    assert cache_value(registry, "content-items", "hit") == 0
    assert (
        registry.get_sample_value(
            "http_requests_total", {"method": "POST", "route": REPORT_PATH, "status": "204"}
        )
        == 2
    )


def test_beacon_reports_sent_as_text_plain_are_accepted(
    app: FastAPI, registry: CollectorRegistry
) -> None:
    body = json.dumps({"prefetch": [{"cache": "thumbnails", "used": 0, "wasted": 4}]})
    response = request(
        app, "POST", REPORT_PATH, content=body, headers={"content-type": "text/plain;charset=UTF-8"}
    )
    assert response.status_code == 204
    assert prefetch_value(registry, "thumbnails", "wasted") == 4


def test_empty_report_is_accepted_and_counts_nothing(
    app: FastAPI, registry: CollectorRegistry
) -> None:
    assert post(app, {}).status_code == 204
    assert post(app, {"caches": [], "prefetch": []}).status_code == 204
    assert set(frontend_totals(registry).values()) == {0.0}


def test_allow_list_is_configurable(registry: CollectorRegistry) -> None:
    app = FastAPI()
    instrument(app, registry=registry, frontend_caches=("search",), frontend_path="/t")
    response = request(
        app, "POST", "/t", json={"caches": [{"cache": "search", "hits": 1, "misses": 2}]}
    )
    assert response.status_code == 204
    assert cache_value(registry, "search", "miss") == 2
    assert {name for _, name, _ in frontend_totals(registry)} == {"search"}
    rejected = request(
        app, "POST", "/t", json={"caches": [{"cache": "thumbnails", "hits": 1, "misses": 2}]}
    )
    assert rejected.status_code == 422
    assert "allowed values are search" in rejected.json()["detail"][0]["msg"]


# --- frontend reports: rejected -----------------------------------------------------


def entry(**overrides: Any) -> dict[str, Any]:
    return {"cache": "content-pages", "hits": 1, "misses": 1, **overrides}


REJECTED: list[tuple[str, Any, list[Any], str]] = [
    ("a list", [entry()], [], "must be a JSON object"),
    ("a string", "caches", [], "must be a JSON object"),
    ("unknown key", {"caches": [], "extra": 1}, ["extra"], "unknown key 'extra'"),
    ("caches not a list", {"caches": {"cache": "x"}}, ["caches"], "caches must be a list"),
    (
        "too many entries",
        {"caches": [entry(cache=c) for c in CACHES] * 11},
        ["caches"],
        f"more than {cache.MAX_ENTRIES} entries",
    ),
    ("entry not an object", {"caches": [3]}, ["caches", 0], "keys cache, hits, misses"),
    ("missing count", {"caches": [{"cache": "thumbnails", "hits": 1}]}, ["caches", 0], "keys"),
    ("extra field", {"caches": [entry(extra=1)]}, ["caches", 0], "keys cache, hits, misses"),
    (
        "prefetch keys on a cache entry",
        {"prefetch": [entry()]},
        ["prefetch", 0],
        "keys cache, used, wasted",
    ),
    (
        "unknown cache",
        {"caches": [entry(cache="user-1234")]},
        ["caches", 0, "cache"],
        "unknown cache 'user-1234': allowed values are content-items, content-pages, thumbnails",
    ),
    (
        "cache not a string",
        {"caches": [entry(cache=["x"])]},
        ["caches", 0, "cache"],
        "unknown cache",
    ),
    (
        "duplicate cache",
        {"caches": [entry(), entry()]},
        ["caches", 1, "cache"],
        "'content-pages' appears twice",
    ),
    ("negative count", {"caches": [entry(hits=-1)]}, ["caches", 0, "hits"], "integer from 0 to"),
    ("float count", {"caches": [entry(misses=1.0)]}, ["caches", 0, "misses"], "integer from 0"),
    ("boolean count", {"caches": [entry(hits=True)]}, ["caches", 0, "hits"], "not True"),
    ("string count", {"caches": [entry(hits="3")]}, ["caches", 0, "hits"], "not '3'"),
    ("null count", {"caches": [entry(hits=None)]}, ["caches", 0, "hits"], "not None"),
    (
        "count over the cap",
        {"caches": [entry(hits=cache.MAX_COUNT + 1)]},
        ["caches", 0, "hits"],
        f"from 0 to {cache.MAX_COUNT}",
    ),
    (
        "valid first entry, invalid second",
        {"caches": [entry(hits=5), entry(cache="thumbnails", misses=-3)]},
        ["caches", 1, "misses"],
        "integer",
    ),
]


@pytest.mark.parametrize(("case", "body", "loc", "message"), REJECTED, ids=[r[0] for r in REJECTED])
def test_invalid_reports_get_422_and_count_nothing(
    app: FastAPI, registry: CollectorRegistry, case: str, body: Any, loc: list[Any], message: str
) -> None:
    response = post(app, body)
    assert response.status_code == 422, case
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body", *loc]
    assert message in detail["msg"]
    assert set(frontend_totals(registry).values()) == {0.0}
    assert len(frontend_totals(registry)) == 12


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "body is not valid JSON: Expecting property name"),
        (b"\xff\xfe", "body is not valid JSON: "),
        (b"", "body is not valid JSON: Expecting value"),
        (b"NaN", "body must be a JSON object"),
        # Both fit under the size cap and make json.loads raise something else than a
        # JSONDecodeError: they must still be a 422, never a 500.
        (b"[" * 10_000, "body is not valid JSON: maximum recursion depth exceeded"),
        (
            b'{"caches": [{"cache": "thumbnails", "hits": ' + b"9" * 5_000 + b', "misses": 0}]}',
            "body is not valid JSON: Exceeds the limit (4300 digits)",
        ),
    ],
    ids=["truncated", "bom-only", "empty", "nan", "deep-nesting", "huge-integer"],
)
def test_malformed_json_gets_422(
    app: FastAPI, registry: CollectorRegistry, body: bytes, message: str
) -> None:
    response = request(
        app, "POST", REPORT_PATH, content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["body"]
    assert detail["msg"].startswith(message)
    assert set(frontend_totals(registry).values()) == {0.0}


def test_oversized_reports_get_413(app: FastAPI, registry: CollectorRegistry) -> None:
    padding = " " * cache.MAX_REPORT_BYTES
    declared = request(
        app,
        "POST",
        REPORT_PATH,
        content=json.dumps({"caches": []}) + padding,
        headers={"content-type": "application/json"},
    )
    assert declared.status_code == 413
    assert f"larger than {cache.MAX_REPORT_BYTES} bytes" in declared.json()["detail"][0]["msg"]

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the cap must hold while streaming.
        yield b'{"caches": []'
        for _ in range(20):
            yield b" " * 1024
        yield b"}"

    streamed = request(
        app, "POST", REPORT_PATH, content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    just_fits = json.dumps({"caches": [entry(hits=2)]}).encode()
    just_fits += b" " * (cache.MAX_REPORT_BYTES - len(just_fits))
    response = request(
        app, "POST", REPORT_PATH, content=just_fits, headers={"content-type": "application/json"}
    )
    assert response.status_code == 204
    assert cache_value(registry, "content-pages", "hit") == 2


def test_other_content_types_get_415(app: FastAPI, registry: CollectorRegistry) -> None:
    response = request(app, "POST", REPORT_PATH, data={"caches": "x"})
    assert response.status_code == 415
    assert "application/json, text/plain" in response.json()["detail"][0]["msg"]


def test_only_post_is_allowed(app: FastAPI) -> None:
    assert get(app, REPORT_PATH)[0].status_code == 405
