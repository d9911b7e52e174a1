"""Real uvicorn workers in multiprocess mode for the tests, and small filesystems to starve them."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import IN_CI, ROOT, free_port

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Workers:
    """``uvicorn tests.apps.multiproc_app:app --workers N``; ready once every worker answered.

    >>> with Workers(tmp_path, tmp_path / "multiproc") as workers:  # doctest: +SKIP
    ...     httpx.get(workers.url + "/pid")
    """

    def __init__(
        self,
        tmp_path: Path,
        multiproc_dir: Path,
        count: int = 2,
        db: bool = False,
        port: int | None = None,
    ) -> None:
        self.count = count
        self.multiproc_dir = multiproc_dir
        self.starts_file = tmp_path / "worker-starts"
        self.log_path = tmp_path / "uvicorn.log"
        # A given port: where a Stack's Prometheus scrapes the API.
        self.port = free_port() if port is None else port
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
            "GENONAUT_TEST_STARTS": str(self.starts_file),
        }
        if db:
            self.env["GENONAUT_TEST_DB"] = str(tmp_path / "pool.db")
        self.server: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Workers:
        command = [
            sys.executable, "-m", "uvicorn", "tests.apps.multiproc_app:app",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.count),
            "--app-dir", str(ROOT), "--no-access-log", "--log-level", "info",
        ]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.server = subprocess.Popen(
                command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self.wait_ready(self.count)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_ready(self, count: int, timeout: float = 60) -> set[int]:
        """Wait until ``count`` live workers answered /health (new connection per poll)."""
        assert self.server is not None
        deadline = time.monotonic() + timeout
        answered: set[int] = set()
        while True:
            answered &= set(self.live_workers())
            if len(answered) >= count:
                return answered
            if self.server.poll() is not None:
                raise AssertionError(f"uvicorn exited with {self.server.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{count} uvicorn workers did not answer within {timeout:g} s: {answered}\n"
                    + self.log()
                )
            try:
                response = httpx.get(
                    f"{self.url}/health", timeout=2, headers={"Connection": "close"}
                )
                answered.add(response.json()["pid"])
            except httpx.TransportError:
                time.sleep(0.05)

    def starts(self) -> list[int]:
        """Pids of every worker started so far, in order."""
        if not self.starts_file.exists():
            return []
        return [int(line) for line in self.starts_file.read_text().split()]

    def live_workers(self) -> list[int]:
        """Started workers that are still running (not exited, not a zombie)."""
        return [pid for pid in self.starts() if running(pid)]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.server is None:
            return
        self.server.terminate()
        try:
            self.server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()
        self.server = None


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def scrape(url: str) -> Samples:
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name and labels.items() <= dict(sample_labels).items()
    )


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "1m", read_only: bool = False) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``path`` for the test (mounting needs root)."""
    if os.geteuid() != 0:
        reason = "mounting a tmpfs needs root (the CI runs as root)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size},mode=0755" + (",ro" if read_only else "")
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        # Lazy: a process still holding a file must not keep the mount (or fail the test).
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(directory: Path) -> int:
    """Write a file into ``directory`` until its filesystem is full; the bytes written."""
    written = 0
    chunk = 1 << 16
    with open(directory / "filler", "wb", buffering=0) as filler:
        while chunk:
            try:
                written += filler.write(b"\0" * chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                chunk //= 2
    assert os.statvfs(directory).f_bavail == 0
    return written
