"""Multiprocess mode under faults: a full, read-only or missing directory, killed workers.

Real uvicorn workers, a real tmpfs. What the clients see is counted: connection
errors, 5xx, worker starts (a respawn loop shows there), and what /metrics says;
with a real Prometheus, that these faults fire their alerts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from genonaut_monitoring import alerts, config
from genonaut_monitoring.alerts.model import seconds
from genonaut_monitoring.exporters import catalogue, mpfile
from genonaut_monitoring.stack import Stack
from tests.apps import multiproc_app
from tests.conftest import require_tool
from tests.workers import Workers, fill, running, scrape, tmpfs, total

CONNECTIONS = 8


def _load(url: str, paths: list[str]) -> tuple[Counter[int], list[str]]:
    """GET every path over CONNECTIONS clients; the status counts and the transport errors.

    A client gives up after a few errors, so a broken server fails the test soon.
    """
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def send(batch: list[str]) -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            for path in batch:
                try:
                    status = client.get(path).status_code
                except httpx.TransportError as error:
                    with lock:
                        errors.append(f"{path}: {error!r}")
                        if len(errors) >= 3 * CONNECTIONS:
                            return
                    continue
                with lock:
                    statuses[status] += 1

    with ThreadPoolExecutor(CONNECTIONS) as pool:
        list(pool.map(send, [paths[i::CONNECTIONS] for i in range(CONNECTIONS)]))
    return statuses, errors


def _serve_pid_on_every_worker(workers: Workers) -> int:
    """GET /pid on new connections until each worker served one; how many it took."""
    pids: set[int] = set()
    sent = 0
    while len(pids) < workers.count:
        response = httpx.get(f"{workers.url}/pid", headers={"Connection": "close"}, timeout=5)
        pids.add(response.json()["pid"])
        sent += 1
    return sent


def _error_lines(
    log: str, directory: Path, what: str, workers: list[int], elapsed: float
) -> list[str]:
    """The ERROR lines about ``what``; checks there is one, and one per worker and interval."""
    lines = [
        line
        for line in log.splitlines()
        if f"metrics directory PROMETHEUS_MULTIPROC_DIR={directory} {what}" in line
    ]
    assert lines, log
    per_worker = Counter(int(re.findall(r"worker (\d+) serves", line)[0]) for line in lines)
    assert set(per_worker) <= set(workers), (per_worker, workers)
    limit = 1 + int(elapsed // config.CONFIG.multiprocess.error_log_seconds)
    assert max(per_worker.values()) <= limit, lines
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("filled", ["after start", "before start"])
def test_a_full_metrics_directory_never_fails_a_request_nor_kills_a_worker(
    tmp_path: Path, filled: str
) -> None:
    with tmpfs(tmp_path / "multiproc", size="1m") as directory:
        if filled == "before start":
            fill(directory)
        with Workers(tmp_path, directory) as workers:
            warm_up = _serve_pid_on_every_worker(workers)
            if filled == "after start":
                fill(directory)
            started = time.monotonic()
            # New label sets need new space in the counter and histogram files: none is left.
            paths = [f"/labels/{'x' * 40}-{i}" for i in range(600)] + ["/pid"] * 600
            paths += ["/metrics"] * 60
            statuses, errors = _load(workers.url, paths)
            elapsed = time.monotonic() - started
            samples = scrape(workers.url)
            starts, log = workers.starts(), workers.log()
            live = workers.live_workers()

    assert errors == []
    assert statuses == {200: len(paths)}
    assert len(starts) == 2 and sorted(live) == sorted(starts), (starts, live)
    if filled == "after start":
        # Each worker's counter file had room for the ledger: the failures are counted.
        assert total(samples, "metrics_writes_dropped_total", reason="full") > 0
        assert total(samples, "metrics_writes_dropped_total", reason="missing") == 0
        # Requests with label sets made before the disk filled are all counted.
        assert total(samples, "http_requests_total", route="/pid") == 600 + warm_up
    else:
        # No room for any file: nothing to serve, nothing to count with, and no failure.
        assert samples == {}
    # One line per worker per cause and interval, naming the directory and the fix.
    lines = _error_lines(log, directory, "is full", starts, elapsed)
    assert "fix: give it more space" in lines[0]
    assert "Traceback" not in log and "died" not in log and "damaged" not in log


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["read_only", "missing"])
def test_workers_start_and_serve_without_a_usable_metrics_directory(
    tmp_path: Path, fault: str
) -> None:
    directory = tmp_path / "multiproc"
    started = time.monotonic()
    with (
        tmpfs(directory, read_only=True) if fault == "read_only" else contextlib.nullcontext(),
        Workers(tmp_path, directory) as workers,
    ):
        paths = ["/pid"] * 200 + ["/labels/a"] * 100 + ["/metrics"] * 20
        statuses, errors = _load(workers.url, paths)
        starts, log = workers.starts(), workers.log()
        live = workers.live_workers()
    elapsed = time.monotonic() - started

    assert errors == []
    assert statuses == {200: len(paths)}
    assert len(starts) == 2 and sorted(live) == sorted(starts), (starts, live)
    what, fix = {
        "read_only": ("is not writable", "make it writable by the user the workers run as"),
        "missing": ("does not exist", "create it, empty, before the workers start"),
    }[fault]
    lines = _error_lines(log, directory, what, starts, elapsed)
    assert f"fix: {fix}" in lines[0]
    assert "Traceback" not in log and "damaged" not in log


def _firing(stack: Stack, alert: alerts.Alert) -> list[dict[str, str]]:
    """The labels of each firing ``alert`` in the stack's Prometheus."""
    found = stack.query(f'ALERTS{{alertname="{alert.name}",alertstate="firing"}}')
    return [dict(each["metric"]) for each in found]


def _fire_bound(cfg: config.Config, alert: alerts.Alert) -> float:
    """A scrape, the recording rules' and the alerts' evaluations, ``for``; three times
    over, for a loaded machine."""
    i = cfg.intervals
    return 3 * (
        seconds(i.api_scrape_interval) + 2 * seconds(i.evaluation_interval) + seconds(alert.for_)
    )


@pytest.mark.e2e
@pytest.mark.slow
def test_metrics_directory_faults_fire_their_alerts_in_a_real_prometheus(tmp_path: Path) -> None:
    """Prometheus with the built rules (test profile) scrapes real workers: a directory
    missing at start fires MetricsScrapeEmpty; one that fills under running workers fires
    MetricsWritesDropped, for reason full."""
    require_tool("prometheus")
    cfg = config.TEST_CONFIG
    defined = alerts.by_name(cfg)
    empty, dropped = defined["MetricsScrapeEmpty"], defined["MetricsWritesDropped"]
    stack = Stack(tmp_path / "stack", cfg=cfg, components={"prometheus"})
    ledger = f'{catalogue.METRICS_WRITES_DROPPED.name}{{reason="full"}}'
    runs = [tmp_path / "missing-run", tmp_path / "full-run"]
    for run in runs:
        run.mkdir()
    sent = 0

    def dropping_until_firing() -> list[dict[str, str]]:
        """New label sets need room in the full files: each batch drops writes."""
        nonlocal sent
        paths = [f"/labels/{'x' * 40}-{sent + i}" for i in range(20)]
        statuses, errors = _load(workers.url, paths)
        assert errors == [] and statuses == {200: len(paths)}, (statuses, errors)
        sent += len(paths)
        return _firing(stack, dropped)

    with stack:
        with Workers(runs[0], tmp_path / "missing", port=stack.ports.api) as workers:
            _serve_pid_on_every_worker(workers)
            blind = stack.wait_for(
                lambda: _firing(stack, empty), _fire_bound(cfg, empty), f"{empty.name} firing"
            )
        with (
            tmpfs(tmp_path / "multiproc", size="1m") as directory,
            Workers(runs[1], directory, port=stack.ports.api) as workers,
        ):
            _serve_pid_on_every_worker(workers)
            # Scraped at zero first: a series born non-zero would show no increase.
            stack.wait_for(lambda: stack.query(ledger), 30, f"{ledger} in Prometheus")
            fill(directory)
            started = time.monotonic()
            losing = stack.wait_for(
                dropping_until_firing, _fire_bound(cfg, dropped), f"{dropped.name} firing"
            )
            elapsed = time.monotonic() - started
            counted = total(scrape(workers.url), catalogue.METRICS_WRITES_DROPPED.name)

    api = {"job": cfg.jobs[0], "instance": f"127.0.0.1:{stack.ports.api}"}

    def expected(alert: alerts.Alert, **labels: str) -> dict[str, str]:
        return {
            "__name__": "ALERTS",
            "alertname": alert.name,
            "alertstate": "firing",
            "severity": alert.severity,
            **api,
            **labels,
        }

    assert blind == [expected(empty)]
    assert losing == [expected(dropped, reason="full")]
    assert counted > 0 and elapsed >= seconds(dropped.for_), (counted, elapsed)


KILLS = 20
LOAD_PATHS = ("/work", "/db", "/pid")
FILE_TYPES = ("counter", "histogram")


def _values(path: Path) -> dict[str, float]:
    return {key: value for key, value, _ in mpfile.read_entries(str(path))}


def _wait_stopped(pid: int) -> None:
    """Wait until every thread of ``pid`` is stopped: SIGSTOP lands a moment after kill()."""

    def state(task: Path) -> str:
        try:
            return (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:  # a thread that ended meanwhile
            return "T"

    deadline = time.monotonic() + 10
    while not all(state(task) in "Tt" for task in Path(f"/proc/{pid}/task").iterdir()):
        assert time.monotonic() < deadline, f"worker {pid} did not stop"
        time.sleep(0.001)


def _requests_by_route(values: dict[str, float]) -> Counter[str]:
    """http_requests_total per route in one file's values."""
    routes: Counter[str] = Counter()
    for key, value in values.items():
        _, sample, labels, _ = json.loads(key)
        if sample == catalogue.HTTP_REQUESTS.name:
            routes[labels["route"]] += int(value)
    return routes


@pytest.mark.slow
def test_killed_workers_stop_counting_and_their_totals_are_kept(tmp_path: Path) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir()
    served: dict[int, Counter[str]] = defaultdict(Counter)  # worker pid -> route -> responses
    failed: Counter[str] = Counter()
    other_statuses: list[tuple[str, int]] = []
    totals: list[float] = []  # http_requests_total at each scrape during the kills
    lock = threading.Lock()
    stop = threading.Event()
    # What each killed worker had written, read while it was stopped, just before SIGKILL.
    at_death: dict[str, Counter[str]] = {kind: Counter() for kind in FILE_TYPES}

    with Workers(tmp_path, directory, db=True) as workers:

        def client() -> None:
            with httpx.Client(base_url=workers.url, timeout=10) as session:
                while not stop.is_set():
                    for path in LOAD_PATHS:
                        try:
                            response = session.get(path)
                        except httpx.TransportError:
                            with lock:
                                failed[path] += 1
                            continue
                        with lock:
                            if response.status_code == 200:
                                served[response.json()["pid"]][path] += 1
                            else:
                                other_statuses.append((path, response.status_code))

        def scraper() -> None:
            while not stop.wait(0.2):
                try:
                    samples = scrape(workers.url)
                except httpx.TransportError:
                    continue  # it landed on the worker being killed
                totals.append(total(samples, "http_requests_total"))

        threads = [threading.Thread(target=client) for _ in range(6)]
        threads.append(threading.Thread(target=scraper))
        for thread in threads:
            thread.start()
        try:
            for kill in range(KILLS):
                time.sleep(0.3)
                victim = workers.live_workers()[kill % 2]
                os.kill(victim, signal.SIGSTOP)
                _wait_stopped(victim)
                for kind in FILE_TYPES:
                    at_death[kind].update(_values(directory / f"{kind}_{victim}.db"))
                os.kill(victim, signal.SIGKILL)
                workers.wait_ready(2)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        # No traffic now; every scrape (either worker may answer) must agree.
        finals = [scrape(workers.url) for _ in range(4)]
        live = workers.live_workers()
        starts = workers.starts()
        files = sorted(os.listdir(directory))
        merged = {kind: _values(directory / f"{kind}_merged.db") for kind in FILE_TYPES}
        live_counts = {
            pid: _requests_by_route(_values(directory / f"counter_{pid}.db")) for pid in live
        }

    assert other_statuses == []
    assert len(starts) == 2 + KILLS and len(live) == 2, starts  # one respawn per kill, no loop
    assert not any(running(pid) for pid in set(starts) - set(live))
    # Dead workers' totals are all in the merged files, exactly once.
    assert merged["counter"] == dict(at_death["counter"])
    assert merged["histogram"] == pytest.approx(dict(at_death["histogram"]))
    # A live worker counted exactly what its clients received (readiness polls aside).
    for pid in live:
        assert Counter({path: live_counts[pid][path] for path in LOAD_PATHS}) == served[pid]
    for samples in finals:
        assert total(samples, "http_requests_in_progress") == 0
        assert total(samples, "database_connection_pool_size") == 2 * multiproc_app.POOL_SIZE
        assert total(samples, "database_connection_pool_max_overflow") == (
            2 * multiproc_app.POOL_MAX_OVERFLOW
        )
        assert total(samples, "database_connection_pool_checked_out") == 0
        for path in LOAD_PATHS:
            counted = total(samples, "http_requests_total", route=path)
            # The dead workers' merged totals plus the live ones', each once...
            assert counted == _requests_by_route(merged["counter"])[path] + sum(
                counts[path] for counts in live_counts.values()
            )
            # ...and never more than the requests sent (a lost response may have counted).
            assert counted <= sum(by_pid[path] for by_pid in served.values()) + failed[path]
    # Seen from Prometheus, counters never went back.
    assert totals == sorted(totals) and len(totals) > KILLS
    # Live workers' files, the merged remainder and the locks; nothing of the dead.
    expected = {mpfile.MERGE_LOCK, "counter_merged.db", "histogram_merged.db"}
    for pid in live:
        expected.add(f".worker-{pid}.lock")
        expected |= {f"{kind}_{pid}.db" for kind in ("counter", "histogram", "gauge_livesum")}
    assert set(files) == expected
