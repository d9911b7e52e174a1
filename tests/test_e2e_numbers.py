"""The numbers a real Prometheus reads from the exporters: a rare deep page, a p95.

An instrumented FastAPI app runs in this process, driven by the raw ASGI
driver; its registry is served on the stack's API port, where the project's
own Prometheus (test profile: scrapes and evaluates every second) scrapes it.
The queries are the generated dashboards' own.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Query
from prometheus_client import CollectorRegistry, start_http_server

from benchmarks.asgi import AsgiDriver
from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording
from genonaut_monitoring.exporters import catalogue, instrument
from genonaut_monitoring.stack import Stack
from tests.conftest import require_tool
from tests.test_e2e_dashboards import prom, resolve_variables, substitute

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CFG = config.TEST_CONFIG
DEEP = catalogue.offset_range(50_000)
SHALLOW_SECONDS = 30
LATENCY = 1.5


def content_app(registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/content")
    async def content(skip: int = Query(0, ge=0), limit: int = Query(50, ge=1)) -> int:
        return skip

    @app.get("/api/v1/slow")
    async def slow() -> float:
        await asyncio.sleep(LATENCY)
        return LATENCY

    instrument(app, registry=registry, log_requests=False)
    return app


@contextmanager
def scraped(tmp_path: Path) -> Iterator[tuple[Stack, AsgiDriver]]:
    """The app's registry served where the stack's Prometheus scrapes the API; both running."""
    require_tool("prometheus")
    registry = CollectorRegistry()
    app = content_app(registry)
    stack = Stack(tmp_path, cfg=CFG, components={"prometheus"})
    server, thread = start_http_server(stack.ports.api, addr="127.0.0.1", registry=registry)
    try:
        with stack:
            driver = AsgiDriver(app)
            asyncio.run(driver.get("/api/v1/content"))  # reads the routes, like a first request
            stack.wait_for(lambda: stack.query(f'up{{job="{CFG.jobs[0]}"}} == 1'), 30, "a scrape")
            yield stack, driver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def panel(stack: Stack, uid: str, title: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A generated dashboard and one of its panels."""
    board = json.loads((stack.out / "grafana" / "dashboards" / f"{uid}.json").read_text())
    (found,) = [p for p in board["panels"] if p["title"] == title]
    return board, found


def test_one_burst_at_a_deep_offset_shows_after_thirty_seconds_of_shallow_traffic(
    tmp_path: Path,
) -> None:
    with scraped(tmp_path) as (stack, driver):

        async def traffic() -> None:
            deadline = time.monotonic() + SHALLOW_SECONDS
            n = 0
            while time.monotonic() < deadline:
                status, _ = await driver.get("/api/v1/content", f"skip={50 * (n % 20)}".encode())
                assert status == 200
                n += 1
                await asyncio.sleep(0.05)

        asyncio.run(traffic())
        start = time.time() - SHALLOW_SECONDS

        async def deep() -> list[int]:
            return [(await driver.get("/api/v1/content", b"skip=50000"))[0] for _ in range(20)]

        assert asyncio.run(deep()) == [200] * 20
        time.sleep(3)  # two scrapes at least
        end = time.time()
        increase = stack.query(
            f"sum(increase({catalogue.PAGINATION_REQUEST_DURATION.name}_count"
            f'{{offset_range="{DEEP}"}}[30s]))'
        )
        assert increase and float(increase[0]["value"][1]) > 0, increase
        # "Requests by offset range" over a range that starts before the burst: cumulative
        # buckets of the requested offsets, which Grafana's heatmap format de-accumulates.
        board, shown = panel(
            stack, CFG.grafana.dashboard_uids["pagination"], "Requests by offset range"
        )
        values = resolve_variables(stack, board, start, end)
        (target,) = shown["targets"]
        result = prom(stack, "/api/v1/query", query=substitute(target["expr"], values), time=end)
        upto = {float(r["metric"]["le"]): float(r["value"][1]) for r in result["result"]}
        deep_bar = upto[50_000] - upto[10_000]
        print(f"increase over 30s at {DEEP}: {increase[0]['value'][1]}; deep bar: {deep_bar}")
        assert deep_bar >= 10, upto  # 20 requests; increase() extrapolates at the edges


def test_a_constant_latency_of_one_and_a_half_seconds_reads_as_such_at_p95(
    tmp_path: Path,
) -> None:
    with scraped(tmp_path) as (stack, driver):

        async def traffic(seconds: float, workers: int) -> int:
            deadline = time.monotonic() + seconds

            async def worker() -> int:
                served = 0
                while time.monotonic() < deadline:
                    assert (await driver.get("/api/v1/slow"))[0] == 200
                    served += 1
                return served

            return sum(await asyncio.gather(*(worker() for _ in range(workers))))

        served = asyncio.run(traffic(4 * 10, 20))  # four rate windows of the test profile
        assert served >= 400
        board, shown = panel(
            stack, CFG.grafana.dashboard_uids["main"], "p95 response time by route"
        )
        now = time.time()
        values = resolve_variables(stack, board, now - 60, now)
        (target,) = shown["targets"]
        result = prom(stack, "/api/v1/query", query=substitute(target["expr"], values), time=now)
        p95 = {r["metric"]["route"]: float(r["value"][1]) for r in result["result"]}
        print(f"p95 of a constant {LATENCY}s over {served} requests: {p95['/api/v1/slow']:.4f}s")
        assert abs(p95["/api/v1/slow"] - LATENCY) <= 0.1 * LATENCY, p95
        # The same from the raw histogram, without the recording rule.
        raw = stack.query(
            "histogram_quantile(0.95, sum by (le) (rate("
            f'{catalogue.HTTP_REQUEST_DURATION.name}_bucket{{route="/api/v1/slow"}}[10s])))'
        )
        assert abs(float(raw[0]["value"][1]) - LATENCY) <= 0.1 * LATENCY, raw
        assert recording.http_duration_p95(CFG) in target["expr"]
