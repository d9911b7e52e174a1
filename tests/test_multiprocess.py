"""Several uvicorn workers: /metrics adds up every worker's counts."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from genonaut_monitoring.exporters import instrument, mpfile
from tests.apps.driver import get
from tests.workers import Workers, scrape, total

REQUESTS = 400
CONNECTIONS = 8


@pytest.mark.slow
def test_metrics_sum_requests_across_workers(tmp_path: Path) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir()

    with Workers(tmp_path, directory) as workers:
        url = workers.url

        def send(batch: int) -> list[int]:
            pids = []
            # "Connection: close" makes every request a new connection, which the kernel
            # hands to whichever worker accepts first: both get some.
            with httpx.Client(base_url=url, timeout=5, headers={"Connection": "close"}) as client:
                for _ in range(REQUESTS // CONNECTIONS):
                    response = client.get("/pid")
                    assert response.status_code == 200
                    pids.append(response.json()["pid"])
            return pids

        with ThreadPoolExecutor(CONNECTIONS) as pool:
            pids = [pid for batch in pool.map(send, range(CONNECTIONS)) for pid in batch]
        assert len(pids) == REQUESTS
        assert len(set(pids)) == 2, f"one worker served everything: {set(pids)}"

        for _ in range(4):  # successive scrapes may land on either worker: all must agree
            samples = scrape(url)
            assert total(samples, "http_requests_total", route="/pid", status="200") == REQUESTS
            assert total(samples, "http_request_duration_seconds_count", route="/pid") == REQUESTS
            assert total(samples, "http_requests_in_progress") == 0
            # The scrapes themselves are not measured.
            assert total(samples, "http_requests_total", route="/metrics") == 0
            assert total(samples, "metrics_writes_dropped_total") == 0


def test_a_missing_multiprocess_dir_is_reported_not_raised_and_used_once_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "multiproc"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(missing))
    monkeypatch.setattr(mpfile, "_last_report", {})
    caplog.set_level(logging.ERROR, "genonaut_monitoring.exporters")
    app = FastAPI()
    instrument(app, registry=CollectorRegistry())
    response = get(app, "/metrics")[0]
    assert (response.status_code, response.content) == (200, b"")
    [line] = [record.getMessage() for record in caplog.records]
    assert line.startswith(
        f"metrics directory PROMETHEUS_MULTIPROC_DIR={missing} does not exist (no such directory)"
    )
    assert "fix: create it, empty, before the workers start" in line
    # Once the directory is there, the scrape reads it (empty: this process writes in memory).
    missing.mkdir()
    response = get(app, "/metrics")[0]
    assert (response.status_code, response.content) == (200, b"")
