"""Loopback phase: each variant served by uvicorn in its own process, over real HTTP.

The client keeps one keep-alive connection per server. Per batch it reads
the client's wall time and the server's CPU time (every thread of the server
process, from ``/proc/<pid>/task/*/schedstat``, nanoseconds), so the overhead
is the server's own work, undisturbed by the client sharing the machine.

    python -m benchmarks.loopback --serve ours --routes 50 --port 8123   # one server
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.apps import KINDS, OURS_LOGGED, VARIANTS, access_log_on, build_app
from benchmarks.measure import Sample, Settings, empty_times, overheads, rotated
from genonaut_monitoring.processes import Process, free_port

ROOT = Path(__file__).resolve().parent.parent
SERVER_START_TIMEOUT = 30.0


def child_env() -> dict[str, str]:
    """The environment of benchmark subprocesses: this checkout importable, no multiprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # The multiprocess mode would change what every library exposes and how fast.
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("prometheus_multiproc_dir", None)
    return env


def process_cpu_ns(pid: int) -> int:
    """CPU time of every thread of process ``pid`` so far, in nanoseconds."""
    total = 0
    tasks = Path(f"/proc/{pid}/task")
    for task in tasks.iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread that ended between listing and reading
    return total


class _Server:
    """One variant served by uvicorn in a subprocess, with a keep-alive client."""

    def __init__(self, variant: str, routes: int, log_dir: Path) -> None:
        self.variant = variant
        self.port = free_port()
        args = [sys.executable, "-m", "benchmarks.loopback", "--serve", variant]
        args += ["--routes", str(routes), "--port", str(self.port)]
        log = log_dir / f"{variant}.log"
        self.process = Process(variant, args, log, child_env(), ROOT)
        self.process.start()
        self.connection: http.client.HTTPConnection | None = None

    @property
    def pid(self) -> int:
        assert self.process.popen is not None
        return self.process.popen.pid

    def wait_ready(self) -> None:
        """Poll until the server answers 200, or fail with its log."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.process.alive():
                break
            try:
                if self.get("/health") == 200:
                    return
            except OSError:
                self.connection = None
                time.sleep(0.05)
        # The log's folder goes away with the run: quote its end rather than name it.
        raise RuntimeError(
            f"loopback server {self.variant!r} did not start; its log:\n{self.process.tail()}"
        )

    def get(self, target: str) -> int:
        """One GET on the keep-alive connection, reconnecting once if the server closed it."""
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.connection.request("GET", target)
                response = self.connection.getresponse()
                response.read()
                return response.status
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def batch(self, target: str, count: int) -> Sample:
        """``count`` requests; client wall time and server CPU time per request, in µs."""
        cpu, wall = process_cpu_ns(self.pid), time.perf_counter()
        for _ in range(count):
            self.get(target)
        wall = time.perf_counter() - wall
        cpu = process_cpu_ns(self.pid) - cpu
        return Sample(cpu / count / 1e3, wall / count * 1e6)

    def stop(self) -> None:
        """Close the client and stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.connection is not None:
            self.connection.close()
        self.process.stop()


def _target(kind: str) -> str:
    path, query = KINDS[kind]
    return f"{path}?{query.decode()}" if query else path


def run(settings: Settings) -> dict[str, Any]:
    """Every kind on every variant's server, interleaved; overheads on both clocks."""
    times = empty_times()
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as log_dir:
        servers = {v: _Server(v, settings.routes, Path(log_dir)) for v in VARIANTS}
        try:
            for server in servers.values():
                server.wait_ready()
            for kind in KINDS:
                for variant, server in servers.items():
                    status = server.get(_target(kind))
                    if status != 200:
                        raise RuntimeError(f"loopback {variant}: {_target(kind)} answered {status}")
                    server.batch(_target(kind), min(100, settings.loopback_requests))
            for round_index in range(settings.loopback_rounds):
                for kind in KINDS:
                    for variant in rotated(list(servers), round_index):
                        sample = servers[variant].batch(_target(kind), settings.loopback_requests)
                        times[kind][variant].append(sample)
        finally:
            for server in servers.values():
                server.stop()
    return {
        "rounds": settings.loopback_rounds,
        "requests_per_round": settings.loopback_requests,
        "kinds": overheads(times),
    }


def _serve(variant: str, routes: int, port: int) -> None:
    import uvicorn

    app, _ = build_app(variant, routes)
    if variant == OURS_LOGGED:
        access_log_on()
    # log_config=None: uvicorn leaves logging as the variant set it up.
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one variant (the loopback phase starts these itself)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loopback", description=__doc__)
    parser.add_argument("--serve", choices=VARIANTS, required=True)
    parser.add_argument("--routes", type=int, default=Settings().routes)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    _serve(args.serve, args.routes, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
