"""A real Prometheus scraping a registry the test controls, for the script tests.

with live_stack(tmp_path) as (stack, target):
    wait_for_samples(stack, "database_connection_pool_size", 5)
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from genonaut_monitoring import config
from genonaut_monitoring.exporters.catalogue import (
    DB_POOL_CHECKED_OUT,
    DB_POOL_SIZE,
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    Metrics,
)
from genonaut_monitoring.stack import Stack
from tests.conftest import require_tool

JOB = config.TEST_CONFIG.jobs[0]
POOL_SIZE = 42.0
CHECKED_OUT = 7.0
# Requests counted per tick of the traffic thread (every TICK seconds), by route and status.
TICK = 0.1
TRAFFIC = {("/api/v1/content", "200"): 3, ("/api/v1/content", "500"): 1, ("/health", "200"): 1}
# Durations observed per tick: content requests are slower than health checks.
DURATIONS = {"/api/v1/content": 0.3, "/health": 0.004}


class LiveTarget:
    """Serves a registry's exposition on loopback and keeps its counters growing."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.metrics[DB_POOL_SIZE].labels("main").set(POOL_SIZE)
        self.metrics[DB_POOL_CHECKED_OUT].labels("main").set(CHECKED_OUT)
        self._stop = threading.Event()
        self._traffic = threading.Thread(target=self._tick, daemon=True)
        self._server: Any = None

    def _tick(self) -> None:
        while not self._stop.wait(TICK):
            for (route, status), count in TRAFFIC.items():
                self.metrics[HTTP_REQUESTS].labels("GET", route, status).inc(count)
                for _ in range(count):
                    self.metrics[HTTP_REQUEST_DURATION].labels("GET", route).observe(
                        DURATIONS[route]
                    )

    def __enter__(self) -> LiveTarget:
        self._server, _thread = start_http_server(
            self.port, addr="127.0.0.1", registry=self.registry
        )
        self._traffic.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._traffic.join(5)
        self._server.shutdown()
        self._server.server_close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.server_port}"


@contextmanager
def live_stack(workdir: Path) -> Iterator[tuple[Stack, LiveTarget]]:
    """The project's Stack with only Prometheus, scraping a LiveTarget as the API job.

    The target listens on the port the stack chose for the API, so the
    generated prometheus.yml scrapes it, and ``stack.out`` holds the project's
    real dashboards built for this stack.
    """
    require_tool("prometheus")
    stack = Stack(workdir, cfg=config.TEST_CONFIG, components={"prometheus"})
    with LiveTarget(stack.ports.api) as target, stack:
        yield stack, target


@dataclass(frozen=True)
class Live:
    """A Prometheus with known data and a past window in which every step has samples."""

    url: str
    # A folder holding the sample dashboard (sample_dashboard()).
    dashboards: Path
    # The project's own dashboards, built by the stack for its ports.
    project_dashboards: Path
    start: int
    end: int


@contextmanager
def live_window(workdir: Path, samples: int = 12) -> Iterator[Live]:
    """Start the stack and target, wait for ``samples`` scrapes, yield the window they cover."""
    boards = workdir / "dashboards"
    boards.mkdir(parents=True)
    (boards / f"{UID}.json").write_text(json.dumps(sample_dashboard()))
    with live_stack(workdir / "stack") as (stack, _target):
        first = wait_for_samples(stack, "database_connection_pool_size", samples)
        # A window in the past, after the first sample: its data no longer changes.
        end = math.floor(time.time()) - 1
        project = stack.out / "grafana" / "dashboards"
        yield Live(stack.prometheus_url, boards, project, math.ceil(first) + 1, end)


def wait_for_samples(stack: Stack, selector: str, count: int, timeout: float = 60) -> float:
    """Wait until ``selector`` has ``count`` samples; return the first one's timestamp."""

    def enough() -> bool:
        found = stack.query(f"count_over_time({selector}[5m])")
        return bool(found) and float(found[0]["value"][1]) >= count

    stack.wait_for(enough, timeout, f"{count} samples of {selector} in {stack.prometheus_url}")
    first = stack.query(f"min_over_time(timestamp({selector})[5m:1s])")
    return float(first[0]["value"][1])


UID = "sample-board"
# Panel ids of the sample dashboard, by what they show.
RATE, POOL, CHECKED, STATUS, ROUTES, LATENCY, NOTE, MAP, POOL_AGAIN = (
    2,
    3,
    4,
    5,
    6,
    7,
    9,
    10,
    11,
)
RATE_THRESHOLD = 50.0
POOL_THRESHOLD = 40.0


def _panel(pid: int, kind: str, title: str, grid: tuple[int, int, int, int], **extra: Any) -> Any:
    x, y, w, h = grid
    grid_pos = {"x": x, "y": y, "w": w, "h": h}
    return {"id": pid, "type": kind, "title": title, "gridPos": grid_pos, **extra}


def _target(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> dict[str, Any]:
    return {"refId": ref, "expr": expr, "legendFormat": legend, **extra}


def _thresholds(*steps: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in steps]}


def sample_dashboard(uid: str = UID, extra_panels: tuple[dict[str, Any], ...] = ()) -> Any:
    """A Grafana dashboard (JSON model) with every panel type the scripts handle."""
    rate = (
        'sum by (route) (rate(http_requests_total{job="$job", route=~"$route"}[$__rate_interval]))'
    )
    panels = [
        _panel(1, "row", "Traffic", (0, 0, 24, 1)),
        _panel(
            RATE, "timeseries", "Request rate", (0, 1, 12, 8),
            targets=[_target(rate, "{{route}}")],
            fieldConfig={"defaults": {
                "unit": "reqps",
                "thresholds": _thresholds((None, "green"), (RATE_THRESHOLD, "red")),
                "custom": {"thresholdsStyle": {"mode": "line"}},
            }},
        ),
        _panel(
            POOL, "stat", "Pool size", (12, 1, 6, 4),
            targets=[_target('database_connection_pool_size{pool="main"}')],
            fieldConfig={"defaults": {
                "unit": "none",
                "thresholds": _thresholds((None, "green"), (POOL_THRESHOLD, "red")),
            }},
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
        ),
        _panel(
            POOL_AGAIN, "stat", "Pool size", (18, 1, 6, 4),
            targets=[_target('database_connection_pool_checked_out{pool="main"}')],
            fieldConfig={"defaults": {
                "unit": "none",
                "thresholds": _thresholds((None, "green"), (POOL_THRESHOLD, "red")),
            }},
            options={"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
        ),
        _panel(
            CHECKED, "gauge", "Checked out", (12, 5, 12, 4),
            targets=[_target("database_connection_pool_checked_out")],
            fieldConfig={"defaults": {
                "unit": "short", "min": 0, "max": 50,
                "thresholds": _thresholds((None, "green"), (30, "orange"), (45, "red")),
            }},
        ),
        _panel(
            STATUS, "bargauge", "Requests by status", (0, 9, 8, 6),
            targets=[_target(
                "sum by (status) (rate(http_requests_total[$__rate_interval]))", "{{status}}"
            )],
            fieldConfig={"defaults": {
                "unit": "reqps", "thresholds": _thresholds((None, "green"), (20, "red")),
            }},
        ),
        _panel(
            ROUTES, "table", "Requests per route", (8, 9, 8, 6),
            targets=[
                _target("sum by (route) (increase(http_requests_total[1m]))", ref="A"),
                _target('sum by (route) (http_requests_total{status="500"})', ref="B"),
            ],
            fieldConfig={"defaults": {"unit": "short"}},
        ),
        _panel(
            LATENCY, "heatmap", "Latency distribution", (16, 9, 8, 6),
            targets=[_target(
                "sum by (le) (rate(http_request_duration_seconds_bucket[$__rate_interval]))",
                "{{le}}", format="heatmap",
            )],
            fieldConfig={"defaults": {"unit": "s"}},
        ),
        _panel(8, "row", "Notes", (0, 15, 24, 1)),
        _panel(NOTE, "text", "About", (0, 16, 12, 4), options={"content": "Sample *notes*."}),
        _panel(
            MAP, "geomap", "Share by route", (12, 16, 12, 4),
            targets=[_target("sum by (route) (rate(http_requests_total[1m]))")],
        ),
        *extra_panels,
    ]  # fmt: skip
    return {
        "uid": uid,
        "title": f"Sample {uid}",
        "schemaVersion": 39,
        "panels": panels,
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "job",
                    "type": "query",
                    "query": "label_values(http_requests_total, job)",
                },
                {
                    "name": "route",
                    "type": "query",
                    "query": {"query": 'label_values(http_requests_total{job="$job"}, route)'},
                    "multi": True,
                    "includeAll": True,
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
    }
