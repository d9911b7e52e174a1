"""The kit on an app shaped unlike the demo (tests/apps/gallery.py), end to end.

Real processes on loopback: the gallery app under uvicorn, PostgreSQL, and a
Prometheus scraping it every second with the test profile's rules. Its
handlers never call ``pagination_query()``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from genonaut_monitoring import config, pgstack
from genonaut_monitoring.processes import Process
from genonaut_monitoring.stack import Stack
from tests.conftest import ROOT, free_port, require_tool
from tests.postgres import throwaway_server
from tests.test_e2e_dashboards import has_data, panel_queries, prom

CFG = config.TEST_CONFIG
TELEMETRY = {
    "caches": [{"cache": "content-pages", "hits": 3, "misses": 1}],
    "prefetch": [{"cache": "content-pages", "used": 2, "wasted": 1}],
}


@contextmanager
def gallery(workdir: Path, port: int, database_url: str, **env: str) -> Iterator[str]:
    """The gallery app under uvicorn on ``port``; yields its base URL once it answers."""
    args = [
        sys.executable, "-m", "uvicorn", "tests.apps.gallery:app", "--app-dir", str(ROOT),
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    environment = {**os.environ, "DATABASE_URL": database_url, "GALLERY_ROWS": "3000", **env}
    process = Process("gallery", args, workdir / "gallery.log", environment, ROOT)
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.alive(), f"the gallery app exited:\n{process.tail()}"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the gallery app did not start:\n{process.tail()}"
            time.sleep(0.2)
        yield url
    finally:
        process.stop()


def one_round(client: httpx.Client, n: int) -> None:
    """Every kind of request the gallery serves; asserts each status."""

    def get(path: str, expected: int = 200, **params: Any) -> httpx.Response:
        response = client.get(path, params=params)
        assert response.status_code == expected, (path, params, response.text[:200])
        return response

    for page in (1, 2, 8):
        get("/api/v2/images", page=page, page_size=(10, 20, 50)[page % 3])
    get("/api/v2/images")  # the route's defaults only
    get("/api/v2/images", page=150, page_size=100)  # offset 14,900: a deep page
    cursor = None
    for _ in range(3):
        body = get("/api/v2/images/feed", **({"cursor": cursor} if cursor else {})).json()
        cursor = body["next"]
    get(f"/api/v2/users/{n % 50}/gallery", skip=10, limit=5)
    get("/api/v2/tags/popular", limit=3)
    get("/api/v2/search", q="image 1")
    get(f"/api/v2/images/{n + 1}")
    get("/api/v2/images/999999", expected=404)
    # The handler with a bug: uvicorn closes the connection after the 500, so a new one.
    broken = httpx.get(client.base_url.join(f"/api/v2/images/{n + 2}/exif"), timeout=30)
    assert broken.status_code == 500, broken.text
    get("/api/v2/images", expected=422, page=0)
    assert client.post(f"/api/v2/images/{n + 1}/like").status_code == 204
    get(f"/orgs/org-{n}/admin/stats/monday")
    get("/assets/app.css")
    assert client.post("/api/v1/telemetry/frontend", json=TELEMETRY).status_code == 204


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.postgres
def test_every_panel_query_returns_data_on_the_gallery_app(tmp_path: Path) -> None:
    for tool in ("prometheus", "prometheus-postgres-exporter", "initdb"):
        require_tool(tool)
    # The stack's own PostgreSQL, watched by postgres_exporter: the PostgreSQL dashboard's
    # panels need data as much as the others.
    stack = Stack(tmp_path, cfg=CFG, components={"prometheus", *pgstack.COMPONENTS})
    with stack:
        database = stack.pg.database_url()
        assert database is not None
        with gallery(tmp_path, stack.ports.api, database, SLOW_QUERY_SECONDS="0") as url:
            run_gallery(stack, url)


def run_gallery(stack: Stack, url: str) -> None:
    """Load on the gallery app, then every panel query of every dashboard, with data."""
    start = time.time()
    stack.wait_for(lambda: stack.query(f'up{{job="{CFG.jobs[0]}"}} == 1'), 30, "a scrape")
    with httpx.Client(base_url=url, timeout=30) as client:
        for n in range(25):
            one_round(client, n)
            time.sleep(0.3)
    time.sleep(3)
    end = time.time()
    queries = panel_queries(stack, start, end)
    assert len(queries) >= 45
    empty = []
    for uid, title, expr, instant in queries:
        if instant:
            data = prom(stack, "/api/v1/query", query=expr, time=end)
        else:
            data = prom(stack, "/api/v1/query_range", query=expr, start=start, end=end, step=1)
        if not has_data(data["result"]):
            empty.append(f"{uid} / {title}: No data for {expr}")
    print(f"{len(queries) - len(empty)} of {len(queries)} panel queries return data")
    assert empty == [], f"{len(empty)} of {len(queries)} panel queries without data:\n" + (
        "\n".join(empty)
    )


class Traffic:
    """Gallery requests from a thread until stopped; counts the statuses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=15) as client:
            while not self._stop.is_set():
                try:
                    status = client.get("/api/v2/images", params={"page": 2}).status_code
                except httpx.TransportError:
                    status = 0
                self.statuses[status] = self.statuses.get(status, 0) + 1
                self._stop.wait(0.05)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def firing(stack: Stack, alert: str) -> list[dict[str, Any]]:
    alerts = prom(stack, "/api/v1/alerts")["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alert and a["state"] == "firing"]


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.postgres
def test_a_database_stopped_under_traffic_fires_database_query_errors(tmp_path: Path) -> None:
    require_tool("prometheus")
    server = throwaway_server()
    try:
        server.execute(["CREATE DATABASE gallery"])
        url = server.url("gallery", driver="psycopg2")
        stack = Stack(tmp_path, cfg=CFG, components={"prometheus"})
        with gallery(tmp_path, stack.ports.api, url) as api, stack, Traffic(api) as traffic:
            stack.wait_for(lambda: stack.query(f'up{{job="{CFG.jobs[0]}"}} == 1'), 30, "a scrape")
            time.sleep(3)
            assert firing(stack, "DatabaseQueryErrors") == []
            server.stop()  # the database goes away; the app and its traffic stay
            alerts = stack.wait_for(
                lambda: firing(stack, "DatabaseQueryErrors"), 90, "DatabaseQueryErrors firing"
            )
            kinds = {a["labels"]["kind"] for a in alerts}
            assert "connection" in kinds, alerts
            metrics = httpx.get(f"{api}/metrics", timeout=10).text
        assert traffic.statuses.get(500, 0) > 0, traffic.statuses
        errors = {
            sample.labels["kind"]: sample.value
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
            if sample.name == "database_errors_total"
        }
        assert errors["connection"] > 0 and set(errors) == {
            "connection",
            "pool_timeout",
            "statement",
        }
    finally:
        server.stop()
        server.remove()


def test_a_client_that_sends_half_a_body_and_leaves_is_499_not_500(tmp_path: Path) -> None:
    port = free_port()
    with gallery(tmp_path, port, f"sqlite:///{tmp_path / 'gallery.db'}") as url:
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(
                    b"POST /api/v1/telemetry/frontend HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
                )
        deadline = time.monotonic() + 10
        while True:
            text = httpx.get(f"{url}/metrics", timeout=5).text
            samples = [
                sample
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.labels.get("route") == "/api/v1/telemetry/frontend"
            ]
            answered = [s for s in samples if s.name == "http_requests_total"]
            if sum(s.value for s in answered) >= 20 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        log = (tmp_path / "gallery.log").read_text()
    assert {s.labels["status"]: s.value for s in answered} == {"499": 20}
    assert [s for s in samples if s.name == "http_exceptions_total"] == []
    assert "Traceback" not in log and "ERROR" not in log, log
