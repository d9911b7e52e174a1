"""Scrape phase: the cost of ``GET /metrics`` after realistic traffic, one library per process.

Each library runs in a fresh process, so the global registry holds only its
metrics plus the default process collectors: 10,000 requests over the filler
routes and 5 status codes, then each request kind, then the timed scrapes.

    python -m benchmarks.scrape --worker ours --routes 50 --requests 10000   # one worker
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.apps import KINDS, STATUSES, build_app, request_path
from benchmarks.asgi import AsgiDriver
from benchmarks.loopback import child_env
from benchmarks.measure import Settings, rotated, summary

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("ours", "instrumentator", "starlette-exporter")
# Requests of each kind after the filler traffic: enough to create every series it makes.
KIND_REQUESTS = 100


def exposition_counts(body: bytes) -> dict[str, int]:
    """Series, ``_created`` series, metric families and bytes of an exposition."""
    lines = body.decode().splitlines()
    samples = [line for line in lines if line and not line.startswith("#")]
    return {
        "series": len(samples),
        # prometheus_client's *_created samples: some libraries expose them, some do not.
        "created_series": sum(1 for line in samples if line.split("{")[0].endswith("_created")),
        "metric_families": sum(1 for line in lines if line.startswith("# TYPE ")),
        "bytes": len(body),
    }


async def _worker(variant: str, routes: int, requests: int) -> None:
    """Serve the parent over stdin/stdout: warm up, then time scrapes on request.

    Prints one JSON line after the warm-up traffic, then answers each
    ``http N`` / ``generate N`` line with the N timings in ms; stops on EOF.
    """
    from prometheus_client import generate_latest

    app, registry = build_app(variant, routes)
    driver = AsgiDriver(app)
    await driver.start()
    for index in range(requests):
        route, status_index = index % routes, (index // routes) % len(STATUSES)
        status, _ = await driver.get(request_path(route, status_index))
        if status != STATUSES[status_index]:
            raise RuntimeError(f"{variant}: route {route} answered {status}")
    for kind, (path, query) in KINDS.items():
        for _ in range(KIND_REQUESTS):
            status, _ = await driver.get(path, query)
            if status != 200:
                raise RuntimeError(f"{variant}: {kind} request {path} answered {status}")
    status, body = await driver.get("/metrics")
    if status != 200:
        raise RuntimeError(f"{variant}: GET /metrics answered {status}")
    print(json.dumps(exposition_counts(body), sort_keys=True), flush=True)
    for line in sys.stdin:
        what, count = line.split()
        timings = []
        for _ in range(int(count)):
            gc.collect()
            started = time.perf_counter()
            if what == "http":
                await driver.get("/metrics")
            else:
                generate_latest(registry)
            timings.append((time.perf_counter() - started) * 1e3)
        print(json.dumps(timings), flush=True)
    await driver.stop()


class _Worker:
    """A scrape worker subprocess: one library, alone in its process's global registry."""

    def __init__(self, variant: str, settings: Settings) -> None:
        self.variant = variant
        args = [sys.executable, "-m", "benchmarks.scrape", "--worker", variant]
        args += ["--routes", str(settings.routes)]
        args += ["--requests", str(settings.scrape_requests)]
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _read(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            assert self.process.stderr is not None
            error = self.process.stderr.read()[-2000:]
            raise RuntimeError(f"scrape worker {self.variant!r} failed:\n{error}")
        return json.loads(line)

    def ready(self) -> dict[str, int]:
        """Wait for the warm-up traffic to finish; the exposition's size."""
        found: dict[str, int] = self._read()
        return found

    def time(self, what: str, count: int) -> list[float]:
        """``count`` timed scrapes (``http`` or ``generate``), in ms."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{what} {count}\n")
        self.process.stdin.flush()
        found: list[float] = self._read()
        return found

    def stop(self) -> None:
        """Close stdin (the worker exits) and wait."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def run(settings: Settings) -> dict[str, Any]:
    """Scrape timings and exposition sizes of every library."""
    workers = {variant: _Worker(variant, settings) for variant in LIBRARIES}
    try:
        results: dict[str, Any] = {v: worker.ready() for v, worker in workers.items()}
        rounds = min(settings.scrapes, 10)
        per_round = -(-settings.scrapes // rounds)
        timings: dict[str, dict[str, list[float]]] = {
            v: {"http": [], "generate": []} for v in workers
        }
        for round_index in range(rounds):
            for variant in rotated(list(workers), round_index):
                for what in ("http", "generate"):
                    timings[variant][what] += workers[variant].time(what, per_round)
    finally:
        for worker in workers.values():
            worker.stop()
    for variant, entry in results.items():
        entry["requests"] = settings.scrape_requests + KIND_REQUESTS * len(KINDS)
        entry["scrapes"] = rounds * per_round
        entry["get_metrics_ms"] = summary(timings[variant]["http"])
        entry["generate_latest_ms"] = summary(timings[variant]["generate"])
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker (the scrape phase starts these itself)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scrape", description=__doc__)
    parser.add_argument("--worker", choices=LIBRARIES, required=True)
    parser.add_argument("--routes", type=int, default=Settings().routes)
    parser.add_argument("--requests", type=int, default=Settings().scrape_requests)
    args = parser.parse_args(argv)
    asyncio.run(_worker(args.worker, args.routes, args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
