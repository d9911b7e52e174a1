"""The /metrics output of an app under load passes ``promtool check metrics``."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from genonaut_monitoring.exporters import catalogue, instrument, pagination_query
from genonaut_monitoring.exporters.exposition import TextExposition
from tests.conftest import require_tool


def loaded_app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/content")
    async def content(page: int = 1, page_size: int = 50) -> list[int]:
        with pagination_query() as query:
            query.items = page_size
        return []

    @app.get("/api/v1/content/cursor")
    def cursor(limit: int = 50, cursor: str | None = None) -> list[int]:
        with pagination_query(mode="cursor", page_size=limit) as query:
            query.items = limit
        return []

    @app.get("/api/v1/content/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        if item_id % 7 == 0:
            raise HTTPException(404, "gone")
        if item_id % 11 == 0:
            raise RuntimeError("database away")
        return {"id": item_id}

    instrumentation = instrument(app, registry=registry)
    pages = instrumentation.cache("content-pages")
    pages.hit(5)
    pages.miss()
    return app


async def load(app: FastAPI) -> str:
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for n in range(300):
            await client.get(f"/api/v1/content?page={n % 40 + 1}&page_size={(n % 5 + 1) * 20}")
            await client.get(f"/api/v1/content?skip={n * 97}&limit=25")
            await client.get(f"/api/v1/content/cursor?limit=30&cursor=c{n}")
            await client.get(f"/api/v1/content/{n}")
            await client.get(f"/random/{n}")
            await client.request("BREW", "/api/v1/content/1")
        report = {
            "caches": [{"cache": "content-pages", "hits": 4, "misses": 1}],
            "prefetch": [{"cache": "thumbnails", "used": 3, "wasted": 2}],
        }
        assert (await client.post("/api/v1/telemetry/frontend", json=report)).status_code == 204
        response = await client.get("/metrics")
        assert response.status_code == 200
        return response.text


def test_promtool_finds_nothing_to_complain_about(registry: CollectorRegistry) -> None:
    promtool = require_tool("promtool")
    text = asyncio.run(load(loaded_app(registry)))
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_exposition_holds_exactly_the_catalogue(registry: CollectorRegistry) -> None:
    text = asyncio.run(load(loaded_app(registry)))
    families = {family.name: family for family in text_string_to_metric_families(text)}
    ours = {
        spec.name.removesuffix("_total") if spec.kind == "counter" else spec.name
        for spec in catalogue.CATALOGUE
    }
    process = {name for name in families if name.startswith("process_")}
    assert set(families) == ours | process
    assert not [s for f in families.values() for s in f.samples if s.name.endswith("_created")]
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    routes = {
        labels.get("route")
        for (name, labels_items) in samples
        for labels in [dict(labels_items)]
        if name == "http_requests_total"
    }
    # 300 random paths and 300 BREW requests add one label value each, not 300.
    assert routes == {
        "/api/v1/content",
        "/api/v1/content/cursor",
        "/api/v1/content/{item_id}",
        "/api/v1/telemetry/frontend",
        "unmatched",
    }
    assert (
        samples[
            (
                "http_requests_total",
                (("method", "other"), ("route", "/api/v1/content/{item_id}"), ("status", "405")),
            )
        ]
        == 300
    )
    # Items 0, 7, 14, ... are 404s (43 of 300); 11, 22, ... but not 77, 154, 231 fail (24).
    assert (
        samples[
            (
                "http_exceptions_total",
                (
                    ("exception", "RuntimeError"),
                    ("method", "GET"),
                    ("route", "/api/v1/content/{item_id}"),
                ),
            )
        ]
        == 24
    )
    assert (
        samples[
            (
                "http_requests_total",
                (("method", "GET"), ("route", "/api/v1/content/{item_id}"), ("status", "404")),
            )
        ]
        == 43
    )
    assert (
        samples[("frontend_prefetch_total", (("cache", "thumbnails"), ("outcome", "wasted")))] == 2
    )
    assert samples[("cache_requests_total", (("cache", "content-pages"), ("result", "hit")))] == 5


class WithoutCreated:
    """Reference: the registry's families minus *_created samples, for generate_latest."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self.registry.collect():
            copy = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            copy.samples = [s for s in metric.samples if s.name != metric.name + "_created"]
            yield copy


class Custom:
    """A collector with the OpenMetrics-only types and timestamps."""

    def collect(self) -> Iterator[Metric]:
        family = GaugeHistogramMetricFamily("queue_wait", "Wait.\nTwo lines \\ back", labels=["q"])
        family.add_metric(["a"], [("1.0", 4), ("+Inf", 6)], gsum_value=3.5)
        yield family
        gauge = GaugeMetricFamily("temperature_celsius", "Temp.", labels=["room"])
        gauge.add_metric(["lab"], 21.5, timestamp=1700000000.25)
        yield gauge
        yield CounterMetricFamily("jobs", "Jobs.", value=1e21)


def varied_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    counter = Counter("events", "Events.", ["kind"], registry=registry)
    counter.labels('quote " back \\ newline \n ünï').inc(3)
    counter.labels("plain").inc()
    Histogram("latency_seconds", "Latency.", ["route"], registry=registry).labels("/a/{b}").observe(
        0.3
    )
    Summary("size_bytes", "Size.", registry=registry).observe(512)
    Gauge("in_flight", "In flight.", registry=registry).set(-2)
    Gauge("ratio", "Ratio.", registry=registry).set(float("nan"))
    Info("build", "Build.", registry=registry).info({"version": "1.2.3"})
    Enum("state", "State.", states=["up", "down"], registry=registry).state("down")
    Counter("empty", "Never incremented, labelled.", ["x"], registry=registry)
    registry.register(Custom())
    return registry


def test_exposition_is_generate_latest_without_created() -> None:
    registry = varied_registry()
    exposition = TextExposition()
    expected = generate_latest(cast(Any, WithoutCreated(registry)))
    assert exposition.render(registry) == expected
    assert b"_created" not in expected
    # Second scrape from the cache, after values changed: still identical.
    events = cast(Any, registry._names_to_collectors["events_total"])
    events.labels("plain").inc(41)
    again = exposition.render(registry)
    assert again == generate_latest(cast(Any, WithoutCreated(registry)))
    assert b'events_total{kind="plain"} 42.0\n' in again
    assert b"queue_wait_gsum" in again and b" 1700000000250\n" in again


def test_exposition_forgets_its_cache_past_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = varied_registry()
    exposition = TextExposition()
    monkeypatch.setattr(TextExposition, "MAX_CACHED", 3)
    first = exposition.render(registry)
    assert len(exposition._prefixes) > 3
    assert exposition.render(registry) == first
    assert len(exposition._prefixes) == len(
        {line for line in first.splitlines() if not line.startswith(b"#")}
    )
