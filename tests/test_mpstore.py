"""Multiprocess files (exporters.mpstore) and their directory (exporters.mpdir), in-process."""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.mmap_dict import mmap_key

from genonaut_monitoring import config
from genonaut_monitoring.exporters import mpdir, mpfile, mpstore
from tests.workers import fill, tmpfs

DEAD = 3_999_001  # pids of made-up dead workers: above any pid this machine hands out


def key(metric: str, **labels: str) -> str:
    return mmap_key(metric, f"{metric}_total", list(labels), list(labels.values()), "Help.")


def dead_worker(directory: Path, pid: int, kind: str, values: dict[str, float]) -> None:
    """Files a worker that died left: its values and its (no longer held) lock."""
    mpfile.write_file(str(directory / f"{kind}_{pid}.db"), {k: (v, 0.0) for k, v in values.items()})
    (directory / f".worker-{pid}.lock").touch()


def scraped(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in mpdir.DirectoryCollector(str(directory)).collect()
        for sample in metric.samples
    }


@pytest.fixture
def fresh_process_state() -> Iterator[None]:
    """This test process as a new worker: no registration, an empty ledger, no reports."""
    yield
    for directory, (_, fd) in list(mpdir._registered.items()):
        os.close(fd)
        del mpdir._registered[directory]
    mpstore.LEDGER.reset()
    mpfile._last_report.clear()


@pytest.fixture
def quick_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dataclasses.replace(config.CONFIG.multiprocess, retry_seconds=0.05)
    monkeypatch.setattr(config, "CONFIG", dataclasses.replace(config.CONFIG, multiprocess=settings))


def test_a_dead_workers_counters_are_merged_once_and_its_live_gauges_dropped(
    tmp_path: Path, fresh_process_state: None
) -> None:
    requests = key("requests", route="/a")
    dead_worker(tmp_path, DEAD, "counter", {requests: 3})
    dead_worker(tmp_path, DEAD + 1, "counter", {requests: 4})
    mpfile.write_file(str(tmp_path / f"gauge_livesum_{DEAD}.db"), {key("busy"): (7.0, 0.0)})
    mpfile.write_file(str(tmp_path / "counter_merged.db"), {requests: (10.0, 0.0)})

    for _ in range(2):  # a second scrape changes nothing
        assert scraped(tmp_path) == {("requests_total", (("route", "/a"),)): 17.0}
        assert sorted(os.listdir(tmp_path)) == [mpfile.MERGE_LOCK, "counter_merged.db"]


def test_a_free_lock_means_dead_even_when_the_pid_exists_and_no_lock_means_ask_the_pid(
    tmp_path: Path, fresh_process_state: None
) -> None:
    requests = key("requests")
    # Pid 1 always exists: its lock, free, says the worker that wrote this is gone (pid reused).
    dead_worker(tmp_path, 1, "counter", {requests: 2})
    # No lock file: the pid decides; this one does not exist, that one (ours' parent) does.
    mpfile.write_file(str(tmp_path / f"gauge_livesum_{DEAD}.db"), {key("busy"): (1.0, 0.0)})
    mpfile.write_file(str(tmp_path / f"gauge_livesum_{os.getppid()}.db"), {key("busy"): (5.0, 0.0)})
    assert scraped(tmp_path)[("busy_total", ())] == 5.0
    assert sorted(os.listdir(tmp_path)) == sorted(
        [mpfile.MERGE_LOCK, "counter_merged.db", f"gauge_livesum_{os.getppid()}.db"]
    )


def test_a_worker_holding_its_lock_is_alive(tmp_path: Path, fresh_process_state: None) -> None:
    pid = os.fork()
    if pid == 0:  # a worker: registers, writes, then waits to be killed
        try:
            mpdir.register(str(tmp_path))
            mpfile.write_file(
                str(tmp_path / f"gauge_livesum_{os.getpid()}.db"), {key("busy"): (1, 0)}
            )
            time.sleep(60)
        finally:
            os._exit(0)
    try:
        lock = tmp_path / f".worker-{pid}.lock"
        deadline = time.monotonic() + 10
        while not (tmp_path / f"gauge_livesum_{pid}.db").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert scraped(tmp_path)[("busy_total", ())] == 1.0
        with open(lock) as file, pytest.raises(BlockingIOError):
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert ("busy_total", ()) not in scraped(tmp_path)
    assert not lock.exists()


def test_gauges_of_dead_workers_merge_by_their_mode(
    tmp_path: Path, fresh_process_state: None
) -> None:
    modes = ("sum", "min", "max", "mostrecent", "all")
    for pid, (value, when) in enumerate([(5.0, 20.0), (2.0, 30.0), (9.0, 10.0)], start=DEAD):
        for mode in modes:
            path = str(tmp_path / f"gauge_{mode}_{pid}.db")
            mpfile.write_file(path, {key(f"level_{mode}"): (value, when)})
        (tmp_path / f".worker-{pid}.lock").touch()
    samples = scraped(tmp_path)
    assert samples.pop(("level_sum_total", ())) == 16.0
    assert samples.pop(("level_min_total", ())) == 2.0
    assert samples.pop(("level_max_total", ())) == 9.0
    assert samples.pop(("level_mostrecent_total", ())) == 2.0  # the latest timestamp's value
    # "all" promises one series per process, dead or alive: those files stay.
    assert samples == {
        ("level_all_total", (("pid", str(DEAD)),)): 5.0,
        ("level_all_total", (("pid", str(DEAD + 1)),)): 2.0,
        ("level_all_total", (("pid", str(DEAD + 2)),)): 9.0,
    }
    assert sorted(name for name in os.listdir(tmp_path) if name.endswith("_merged.db")) == [
        f"gauge_{mode}_merged.db" for mode in ("max", "min", "mostrecent", "sum")
    ]


def test_a_merge_killed_at_any_point_loses_nothing_and_counts_nothing_twice(
    tmp_path: Path, fresh_process_state: None
) -> None:
    """Fork a pruner, SIGKILL it after a random moment, prune again: totals stay exact."""
    rng = random.Random(10)
    outcomes: dict[str, int] = {}
    keys = [key("requests", route=f"/r{i}") for i in range(50)]
    for attempt in range(150):
        directory = tmp_path / str(attempt)
        directory.mkdir()
        expected = 0.0
        mpfile.write_file(str(directory / "counter_merged.db"), {k: (1.0, 0.0) for k in keys})
        expected += len(keys)
        for pid in range(DEAD, DEAD + 4):
            dead_worker(directory, pid, "counter", {k: float(pid % 7) for k in keys})
            expected += len(keys) * (pid % 7)
        child = os.fork()
        if child == 0:
            try:
                with mpdir.merge_lock(str(directory)):
                    mpdir.prune(str(directory))
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0, 0.004))
        os.kill(child, signal.SIGKILL)
        _, status = os.waitpid(child, 0)
        left = os.listdir(directory)
        outcome = (
            "finished" if os.WIFEXITED(status)
            else "killed after commit" if mpfile.JOURNAL in left
            else "killed before commit" if any(n.endswith(".tmp") for n in left)
            else "killed elsewhere"
        )  # fmt: skip
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert sum(scraped(directory).values()) == expected, (attempt, outcome, left)
        assert sorted(os.listdir(directory)) == [mpfile.MERGE_LOCK, "counter_merged.db"]
    # The kills landed in the middle of merges, not only before or after them.
    assert outcomes.get("finished", 0) < 150, outcomes


def test_a_missing_directory_drops_writes_reports_once_and_never_raises(
    tmp_path: Path, fresh_process_state: None, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "multiproc"
    caplog.set_level(logging.ERROR, "genonaut_monitoring.exporters")
    file = mpstore.SafeMmapedDict(str(directory / f"counter_{os.getpid()}.db"))
    for _ in range(3):
        file.write_value(key("requests"), 1.0, 0.0)
    assert file.read_value(key("requests")) == (0.0, 0.0)
    assert mpstore.LEDGER.counts["missing"] == 3
    assert scraped(directory) == {}
    assert [record.getMessage() for record in caplog.records] == [
        f"metrics directory PROMETHEUS_MULTIPROC_DIR={directory} does not exist "
        f"(counter_{os.getpid()}.db: [Errno 2] No such file or directory: "
        f"'{directory}/.merge.lock'): "
        f"worker {os.getpid()} serves requests as usual; its metrics wait in its memory; "
        "fix: create it, empty, before the workers start (or unset PROMETHEUS_MULTIPROC_DIR "
        "to serve one process's metrics) (logged at most every 60 s per cause)"
    ]


@pytest.mark.slow
def test_a_full_filesystem_counts_what_it_drops_and_writes_it_once_there_is_room(
    tmp_path: Path, fresh_process_state: None, quick_retry: None
) -> None:
    with tmpfs(tmp_path / "multiproc", size="1m") as directory:
        file = mpstore.SafeMmapedDict(str(directory / f"counter_{os.getpid()}.db"))
        filler = fill(directory)
        labels = [key("requests", route=f"/{'x' * 60}/{i}") for i in range(2000)]
        for label in labels:  # more than the first 64 KiB holds
            file.write_value(label, 5.0, 0.0)
        dropped = mpstore.LEDGER.counts["full"]
        assert 0 < dropped < len(labels)
        # The ledger's own series had their room from the start.
        ledger = mpstore._LEDGER_KEYS["full"]
        assert file.read_value(ledger) == (float(dropped), 0.0)
        os.unlink(directory / "filler")
        time.sleep(0.06)  # retry_seconds
        for label in labels:
            file.write_value(label, 6.0, 0.0)
        assert mpstore.LEDGER.counts["full"] == dropped
        values = {k: v for k, v, _ in mpfile.read_entries(file._fname)}
        assert all(values[label] == 6.0 for label in labels)
        file.close()
    assert filler > 0
