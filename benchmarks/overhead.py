"""Per-request overhead and ``/metrics`` scrape cost of our middleware against its peers.

    python -m benchmarks.overhead            # full run (make bench), one to two minutes
    python -m benchmarks.overhead --quick    # a few seconds, for a smoke test

Variants (``benchmarks.apps``): the bare app, ours (``exporters.instrument``),
prometheus-fastapi-instrumentator and starlette-exporter, each on the same
FastAPI app with 50 templated routes. Every phase is interleaved: each round
times one batch of requests per variant, rotating the order, so drift in CPU
frequency or background load hits all variants alike. Overhead is a variant's
time per request minus the bare app's in the same round; the report gives the
median over rounds with the interquartile range.

1. In-process: a raw ASGI driver (``await app(scope, receive, send)``), at 50
   and at 5 routes, always requesting the last route, which shows whether the
   overhead grows with the route table (re-matching the path) or not. ``ours+log``
   adds our JSON access log line (written to /dev/null), which the plain variant
   skips because logging is left unconfigured there, as in the peers' defaults.
2. Loopback: each variant served by uvicorn in its own subprocess on
   127.0.0.1, driven over one keep-alive connection per server.
3. Scrape: in a fresh process per library (so the global registry holds only
   that library's metrics plus the default process collectors), 10,000
   requests over 50 routes and 5 status codes, then the median time of
   ``GET /metrics`` and of ``generate_latest()``, and the series exposed.

Results go to ``bench-results/overhead.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.apps import STATUSES, VARIANTS, build_app, request_path
from benchmarks.asgi import AsgiDriver
from genonaut_monitoring.processes import Process, free_port

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench-results" / "overhead.json"
PEERS = ("instrumentator", "starlette-exporter")
INSTRUMENTED = ("ours", *PEERS)
# Ours with the JSON access log line on (to /dev/null), as configure_logging() sets it up
# in production; the plain "ours" variant runs with logging unconfigured (WARNING), where
# the line is skipped, so the two show what the log line costs.
LOGGED = "ours+log"
# Targets printed with the results: ours must cost at most this share of the
# instrumentator's per-request overhead, and scrape no slower than it.
OVERHEAD_SHARE_TARGET = 1 / 3
SERVER_START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Settings:
    """How much to measure; ``--quick`` shrinks every count."""

    rounds: int = 15
    requests: int = 1_000
    loopback_rounds: int = 10
    loopback_requests: int = 300
    scrape_requests: int = 10_000
    scrapes: int = 30
    routes: int = 50
    few_routes: int = 5


QUICK = Settings(
    rounds=3,
    requests=100,
    loopback_rounds=2,
    loopback_requests=30,
    scrape_requests=500,
    scrapes=3,
)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median, quartiles, min and max of a sample."""
    ordered = sorted(values)
    if len(ordered) >= 2:
        q1, median, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = median = q3 = ordered[0]
    return {
        "median": round(median, 3),
        "p25": round(q1, 3),
        "p75": round(q3, 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
    }


def rotated(items: Sequence[str], shift: int) -> list[str]:
    """``items`` starting at position ``shift``: each round begins with another variant."""
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


def interleave(
    keys: Sequence[str], rounds: int, batch: int, run: Callable[[str, int], float]
) -> dict[str, list[float]]:
    """Round-robin timing: ``run(key, batch)`` returns seconds for one batch."""
    times: dict[str, list[float]] = {key: [] for key in keys}
    for round_index in range(rounds):
        for key in rotated(keys, round_index):
            gc.collect()
            times[key].append(run(key, batch) / batch * 1e6)
    return times


def overheads(times: dict[str, list[float]], routes: int) -> dict[str, dict[str, Any]]:
    """Per variant at ``routes`` routes: time per request and its paired overhead over bare."""
    bare = times[f"bare@{routes}"]
    result: dict[str, dict[str, Any]] = {}
    for variant in (*VARIANTS, LOGGED):
        mine = times.get(f"{variant}@{routes}")
        if mine is None:
            continue
        entry: dict[str, Any] = {"us_per_request": summary(mine)}
        if variant != "bare":
            entry["overhead_us"] = summary([m - b for m, b in zip(mine, bare, strict=True)])
        result[variant] = entry
    return result


# --- Phase 1: in-process ---------------------------------------------------------------


async def _in_process(settings: Settings) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    route_counts = sorted({settings.routes, settings.few_routes}, reverse=True)
    drivers: dict[str, tuple[AsgiDriver, str]] = {}
    for routes in route_counts:
        for variant in VARIANTS:
            # Two apps of one library share a process here: give each its own registry
            # (starlette-exporter cannot take one; its metrics are keyed by prefix instead).
            registry = None if variant == "starlette-exporter" else CollectorRegistry()
            app, _ = build_app(variant, routes, registry)
            driver = AsgiDriver(app)
            await driver.start()
            drivers[f"{variant}@{routes}"] = (driver, request_path(routes - 1))
    app, _ = build_app("ours", settings.routes, CollectorRegistry())
    driver = AsgiDriver(app)
    await driver.start()
    drivers[f"{LOGGED}@{settings.routes}"] = (driver, request_path(settings.routes - 1))

    async def batch(key: str, count: int) -> float:
        """Seconds for ``count`` requests; the access log is on only for the logged variant."""
        driver, path = drivers[key]
        handler = _access_log_on() if key.startswith(LOGGED) else None
        try:
            started = time.perf_counter()
            for _ in range(count):
                await driver.get(path)
            return time.perf_counter() - started
        finally:
            if handler is not None:
                _access_log_off(handler)

    for key, (driver, path) in drivers.items():
        await batch(key, min(200, settings.requests))
        status, _body = await driver.get(path)
        if status != 200:
            raise RuntimeError(f"in-process {key}: GET {path} answered {status}, expected 200")

    times: dict[str, list[float]] = {key: [] for key in drivers}
    for round_index in range(settings.rounds):
        for key in rotated(list(drivers), round_index):
            gc.collect()
            elapsed = await batch(key, settings.requests)
            times[key].append(elapsed / settings.requests * 1e6)

    for driver, _ in drivers.values():
        await driver.stop()
    by_routes = {str(routes): overheads(times, routes) for routes in route_counts}
    independence = {
        variant: round(
            by_routes[str(settings.routes)][variant]["overhead_us"]["median"]
            - by_routes[str(settings.few_routes)][variant]["overhead_us"]["median"],
            3,
        )
        for variant in INSTRUMENTED
    }
    return {
        "rounds": settings.rounds,
        "requests_per_round": settings.requests,
        "by_routes": by_routes,
        "overhead_growth_us_from_few_to_many_routes": independence,
    }


_DEVNULL: list[Any] = []


def _access_log_on() -> logging.Handler:
    from genonaut_monitoring.exporters.logs import configure_logging

    if not _DEVNULL:
        _DEVNULL.append(open(os.devnull, "w"))  # noqa: SIM115 - kept open for the whole run
    return configure_logging("INFO", "json", stream=_DEVNULL[0])


def _access_log_off(handler: logging.Handler) -> None:
    root = logging.getLogger()
    root.removeHandler(handler)
    root.setLevel(logging.WARNING)


# --- Phase 2: loopback -----------------------------------------------------------------


class _Server:
    """One variant served by uvicorn in a subprocess, with a keep-alive client."""

    def __init__(self, variant: str, routes: int, log_dir: Path) -> None:
        self.variant = variant
        self.port = free_port()
        self.path = request_path(routes - 1)
        args = [sys.executable, "-m", "benchmarks.overhead", "--serve", variant]
        args += ["--routes", str(routes), "--port", str(self.port)]
        self.process = Process(variant, args, log_dir / f"{variant}.log", _child_env(), ROOT)
        self.process.start()
        self.connection: http.client.HTTPConnection | None = None

    def wait_ready(self) -> None:
        """Poll until the server answers 200, or fail with its log."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.process.alive():
                break
            try:
                if self.get() == 200:
                    return
            except OSError:
                self.connection = None
                time.sleep(0.05)
        # The log's folder goes away with the run: quote its end rather than name it.
        raise RuntimeError(
            f"loopback server {self.variant!r} did not start; its log:\n{self.process.tail()}"
        )

    def get(self) -> int:
        """One GET on the keep-alive connection, reconnecting once if the server closed it."""
        for attempt in (1, 2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                self.connection.request("GET", self.path)
                response = self.connection.getresponse()
                response.read()
                return response.status
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Close the client and stop the server (SIGTERM, then SIGKILL after 10 s)."""
        if self.connection is not None:
            self.connection.close()
        self.process.stop()


def _loopback(settings: Settings) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as log_dir:
        servers = {
            f"{variant}@{settings.routes}": _Server(variant, settings.routes, Path(log_dir))
            for variant in VARIANTS
        }
        try:
            for server in servers.values():
                server.wait_ready()
            for server in servers.values():
                for _ in range(min(100, settings.loopback_requests)):
                    server.get()

            def run(key: str, batch: int) -> float:
                server = servers[key]
                started = time.perf_counter()
                for _ in range(batch):
                    server.get()
                return time.perf_counter() - started

            times = interleave(
                list(servers), settings.loopback_rounds, settings.loopback_requests, run
            )
        finally:
            for server in servers.values():
                server.stop()
    return {
        "rounds": settings.loopback_rounds,
        "requests_per_round": settings.loopback_requests,
        "routes": settings.routes,
        "variants": overheads(times, settings.routes),
    }


def _serve(variant: str, routes: int, port: int) -> None:
    import uvicorn

    app, _ = build_app(variant, routes)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --- Phase 3: scrape cost ---------------------------------------------------------------


def _exposition_counts(body: bytes) -> dict[str, int]:
    lines = body.decode().splitlines()
    samples = [line for line in lines if line and not line.startswith("#")]
    return {
        "series": len(samples),
        # prometheus_client's *_created samples: some libraries expose them, some do not.
        "created_series": sum(1 for line in samples if line.split("{")[0].endswith("_created")),
        "metric_families": sum(1 for line in lines if line.startswith("# TYPE ")),
        "bytes": len(body),
    }


async def _scrape_worker(variant: str, routes: int, requests: int) -> None:
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
    status, body = await driver.get("/metrics")
    if status != 200:
        raise RuntimeError(f"{variant}: GET /metrics answered {status}")
    print(json.dumps(_exposition_counts(body), sort_keys=True), flush=True)
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


class _ScrapeWorker:
    """A scrape worker subprocess: one library, alone in its process's global registry."""

    def __init__(self, variant: str, settings: Settings) -> None:
        self.variant = variant
        args = [sys.executable, "-m", "benchmarks.overhead", "--scrape-worker", variant]
        args += ["--routes", str(settings.routes)]
        args += ["--scrape-requests", str(settings.scrape_requests)]
        self.process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=_child_env(),
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


def _scrape(settings: Settings) -> dict[str, Any]:
    workers = {variant: _ScrapeWorker(variant, settings) for variant in INSTRUMENTED}
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
        entry["requests"] = settings.scrape_requests
        entry["scrapes"] = rounds * per_round
        entry["get_metrics_ms"] = summary(timings[variant]["http"])
        entry["generate_latest_ms"] = summary(timings[variant]["generate"])
    return results


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # The multiprocess mode would change what every library exposes and how fast.
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("prometheus_multiproc_dir", None)
    return env


# --- Report -----------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    names = ["fastapi", "starlette", "prometheus-client", "uvicorn"]
    names += ["prometheus-fastapi-instrumentator", "starlette-exporter"]
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def targets(results: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The two targets, from the in-process overhead and the scrape medians."""
    at_many = results["in_process"]["by_routes"][str(settings.routes)]
    ours = at_many["ours"]["overhead_us"]["median"]
    theirs = at_many["instrumentator"]["overhead_us"]["median"]
    scrape = results["scrape"]
    ours_scrape = scrape["ours"]["get_metrics_ms"]["median"]
    their_scrape = scrape["instrumentator"]["get_metrics_ms"]["median"]
    return {
        "overhead_share_of_instrumentator": round(ours / theirs, 3) if theirs > 0 else None,
        "overhead_share_target": round(OVERHEAD_SHARE_TARGET, 3),
        "overhead_target_met": theirs > 0 and ours <= theirs * OVERHEAD_SHARE_TARGET,
        "scrape_ms_ours": ours_scrape,
        "scrape_ms_instrumentator": their_scrape,
        "scrape_target_met": ours_scrape <= their_scrape,
    }


def _fmt(stats: dict[str, float], unit: str = "") -> str:
    return f"{stats['median']:8.1f}{unit} [{stats['p25']:.1f}-{stats['p75']:.1f}]"


def render(results: dict[str, Any]) -> str:
    """The human-readable table."""
    lines: list[str] = []
    settings = results["settings"]
    inproc = results["in_process"]
    lines.append(
        f"In-process (raw ASGI driver), last route, µs per request, median [IQR] over "
        f"{inproc['rounds']} rounds x {inproc['requests_per_round']} requests"
    )
    for routes, variants in inproc["by_routes"].items():
        lines.append(f"  {routes} routes:")
        lines.append(f"    {'variant':<20} {'time/request':>24} {'overhead vs bare':>26}")
        for variant, entry in variants.items():
            overhead = _fmt(entry["overhead_us"]) if "overhead_us" in entry else f"{'-':>8}"
            lines.append(f"    {variant:<20} {_fmt(entry['us_per_request']):>24} {overhead:>26}")
    lines.append(
        f"  overhead growth from {settings['few_routes']} to {settings['routes']} routes (µs): "
        + ", ".join(
            f"{k} {v:+.1f}" for k, v in inproc["overhead_growth_us_from_few_to_many_routes"].items()
        )
    )
    loop = results.get("loopback")
    if loop:
        lines.append("")
        lines.append(
            f"Loopback (uvicorn subprocess, keep-alive http.client), {loop['routes']} routes, "
            f"µs per request over {loop['rounds']} rounds x {loop['requests_per_round']} requests"
        )
        for variant, entry in loop["variants"].items():
            overhead = _fmt(entry["overhead_us"]) if "overhead_us" in entry else f"{'-':>8}"
            lines.append(f"    {variant:<20} {_fmt(entry['us_per_request']):>24} {overhead:>26}")
    scrape = results["scrape"]
    first = next(iter(scrape.values()))
    lines.append("")
    lines.append(
        f"Scrape after {first['requests']} requests over {settings['routes']} routes x "
        f"{len(STATUSES)} status codes, ms, median [IQR] of {first['scrapes']} scrapes"
    )
    lines.append(
        f"    {'library':<20} {'series':>7} {'_created':>8} {'bytes':>8} {'GET /metrics':>24} "
        f"{'generate_latest':>24}"
    )
    for variant, entry in scrape.items():
        lines.append(
            f"    {variant:<20} {entry['series']:>7} {entry['created_series']:>8} "
            f"{entry['bytes']:>8} "
            f"{_fmt(entry['get_metrics_ms']):>24} {_fmt(entry['generate_latest_ms']):>24}"
        )
    goal = results["targets"]
    lines.append("")
    share = goal["overhead_share_of_instrumentator"]
    lines.append(
        f"Target: our overhead <= 1/3 of instrumentator's: {share} of it -> "
        f"{'MET' if goal['overhead_target_met'] else 'MISSED'}"
    )
    lines.append(
        f"Target: our scrape no slower than instrumentator's: {goal['scrape_ms_ours']} ms vs "
        f"{goal['scrape_ms_instrumentator']} ms -> "
        f"{'MET' if goal['scrape_target_met'] else 'MISSED'}"
    )
    return "\n".join(lines)


def run(settings: Settings, loopback: bool = True) -> dict[str, Any]:
    """Every phase, in order; the results as one JSON-ready dict."""
    started = time.perf_counter()
    results: dict[str, Any] = {
        "settings": asdict(settings),
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "versions": _versions(),
        },
    }
    results["in_process"] = asyncio.run(_in_process(settings))
    if loopback:
        results["loopback"] = _loopback(settings)
    results["scrape"] = _scrape(settings)
    results["targets"] = targets(results, settings)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead",
        description="Measure per-request overhead and /metrics scrape cost of exporters."
        "instrument against prometheus-fastapi-instrumentator and starlette-exporter.",
    )
    defaults = Settings()
    parser.add_argument("--quick", action="store_true", help="tiny counts: a few seconds")
    parser.add_argument("--rounds", type=int, help=f"in-process rounds ({defaults.rounds})")
    parser.add_argument(
        "--requests", type=int, help=f"in-process requests per round ({defaults.requests})"
    )
    parser.add_argument(
        "--loopback-rounds", type=int, help=f"loopback rounds ({defaults.loopback_rounds})"
    )
    parser.add_argument(
        "--loopback-requests",
        type=int,
        help=f"loopback requests per round ({defaults.loopback_requests})",
    )
    parser.add_argument("--no-loopback", action="store_true", help="skip the loopback phase")
    parser.add_argument(
        "--scrape-requests",
        type=int,
        help=f"requests before the scrapes ({defaults.scrape_requests})",
    )
    parser.add_argument("--scrapes", type=int, help=f"timed scrapes ({defaults.scrapes})")
    parser.add_argument("--routes", type=int, help=f"routes in the app ({defaults.routes})")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file (%(default)s)"
    )
    # Internal: the loopback servers and scrape workers are this module in a subprocess.
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scrape-worker", choices=INSTRUMENTED, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    base = QUICK if args.quick else defaults
    overrides = {
        "rounds": args.rounds,
        "requests": args.requests,
        "loopback_rounds": args.loopback_rounds,
        "loopback_requests": args.loopback_requests,
        "scrape_requests": args.scrape_requests,
        "scrapes": args.scrapes,
        "routes": args.routes,
    }
    for name, value in overrides.items():
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    settings = Settings(**(asdict(base) | {k: v for k, v in overrides.items() if v is not None}))
    if settings.routes < settings.few_routes:
        parser.error(f"--routes must be at least {settings.few_routes}")

    if args.serve:
        if args.port is None:
            parser.error("--serve needs --port")
        _serve(args.serve, settings.routes, args.port)
        return 0
    if args.scrape_worker:
        asyncio.run(_scrape_worker(args.scrape_worker, settings.routes, settings.scrape_requests))
        return 0

    results = run(settings, loopback=not args.no_loopback)
    print(render(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial = args.output.with_name(args.output.name + ".partial")
    partial.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    partial.replace(args.output)
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"\nwrote {shown} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
