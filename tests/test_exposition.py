"""The /metrics output of an app under load passes ``promtool check metrics``."""

from __future__ import annotations

import asyncio
import subprocess

import httpx
from fastapi import FastAPI, HTTPException
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from exporters import catalogue, instrument, pagination_query
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
