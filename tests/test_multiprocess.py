"""Several uvicorn workers: /metrics adds up every worker's counts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from genonaut_monitoring.exporters import instrument
from tests.apps.driver import get
from tests.conftest import ROOT, free_port

REQUESTS = 400
CONNECTIONS = 8


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[str]:
    """uvicorn with two workers and a fresh multiprocess directory; yields its base URL."""
    multiproc_dir = tmp_path / "multiproc"
    multiproc_dir.mkdir()
    port = free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir)}
    command = [
        sys.executable, "-m", "uvicorn", "tests.apps.multiproc_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
        "--app-dir", str(ROOT), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    log = (tmp_path / "uvicorn.log").open("wb")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        # Ready when both workers have answered (new connection per poll).
        deadline = time.monotonic() + 30
        workers: set[int] = set()
        while len(workers) < 2:
            if server.poll() is not None:
                raise AssertionError(
                    f"uvicorn exited with {server.returncode}: "
                    + (tmp_path / "uvicorn.log").read_text()
                )
            try:
                response = httpx.get(f"{url}/health", timeout=1, headers={"Connection": "close"})
                workers.add(response.json()["pid"])
            except httpx.TransportError:
                time.sleep(0.1)
            if time.monotonic() > deadline:
                raise AssertionError(f"two uvicorn workers did not answer within 30 s: {workers}")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


@pytest.mark.slow
def test_metrics_sum_requests_across_workers(two_workers: str) -> None:
    url = two_workers

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


def test_a_multiprocess_dir_that_is_not_a_directory_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "multiproc"
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(missing))
    app = FastAPI()
    with pytest.raises(ValueError) as error:
        instrument(app, registry=CollectorRegistry())
    assert str(error.value) == (
        f"PROMETHEUS_MULTIPROC_DIR={str(missing)!r} is not a directory: create it (empty) "
        "before starting the workers, or unset it to serve one process's metrics"
    )
    # Refused before anything was added: the app can still be instrumented once fixed.
    assert app.user_middleware == []
    missing.mkdir()
    registry = CollectorRegistry()
    instrument(app, registry=registry)
    # An empty directory: no worker wrote values yet, so the scrape is empty.
    response = get(app, "/metrics")[0]
    assert (response.status_code, response.content) == (200, b"")
