"""Per-request overhead of our middleware and access log against the peers, by request kind.

    python -m benchmarks.overhead            # full run (make bench), a few minutes
    python -m benchmarks.overhead --quick    # a few seconds, for a smoke test
    python -m benchmarks.overhead --check    # exit 1 when a target below is missed

Request kinds (``benchmarks.apps.KINDS``): an offset page
(``?page=3&page_size=20``), a cursor page (``?cursor=...&limit=20``), a plain
item (``/api/v1/items/7``) and a health check, each on a route declared the way
real ones are, behind 50 filler routes. Variants: the bare app, ours
(``instrument()`` with logging left unconfigured, so the access line is
skipped), ours with the JSON access log of ``configure_logging()`` written to
/dev/null, prometheus-fastapi-instrumentator and starlette-exporter.

1. In-process: a raw ASGI driver (``await app(scope, receive, send)``); every
   round times one batch per kind and variant, rotating the order. Overhead is
   process CPU time per request (``time.process_time``: all threads, so work
   moved to a logging thread still counts) and wall time, bare subtracted
   round by round; the report gives medians with the interquartile range.
2. Loopback: each variant served by uvicorn in its own process, over one
   keep-alive HTTP connection; server CPU time per request and client wall time.
3. Scrape: ``GET /metrics`` and ``generate_latest()`` after realistic traffic,
   one library per fresh process.

Targets, on every kind, from the in-process CPU medians: ours costs at most
1/3 of the instrumentator's overhead, ours with the access log at most 0.6 of
it; and our scrape is no slower than the instrumentator's. Results (with the
ratios) go to ``bench-results/overhead.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import loopback, scrape
from benchmarks.apps import (
    KINDS,
    OURS_LOGGED,
    VARIANTS,
    access_log_off,
    access_log_on,
    build_app,
)
from benchmarks.asgi import AsgiDriver
from benchmarks.measure import QUICK, Sample, Settings, empty_times, overheads, rotated, timed

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench-results" / "overhead.json"
REFERENCE = "instrumentator"
# Largest share of the instrumentator's per-request overhead each variant may cost.
SHARE_TARGETS = {"ours": 1 / 3, OURS_LOGGED: 0.6}
SHOWN = ("ours", OURS_LOGGED, "instrumentator", "starlette-exporter")


async def _in_process(settings: Settings) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    drivers: dict[str, AsgiDriver] = {}
    for variant in VARIANTS:
        # Several libraries share this process: give each app its own registry
        # (starlette-exporter cannot take one; its metrics are keyed by prefix instead).
        registry = None if variant == "starlette-exporter" else CollectorRegistry()
        app, _ = build_app(variant, settings.routes, registry)
        drivers[variant] = AsgiDriver(app)
        await drivers[variant].start()

    async def batch(kind: str, variant: str, count: int) -> Sample:
        path, query = KINDS[kind]
        driver = drivers[variant]

        async def requests() -> None:
            for _ in range(count):
                await driver.get(path, query)

        handler = access_log_on() if variant == OURS_LOGGED else None
        try:
            return await timed(requests, count)
        finally:
            if handler is not None:
                access_log_off(handler)

    for kind, (path, query) in KINDS.items():
        for variant, driver in drivers.items():
            status, _body = await driver.get(path, query)
            if status != 200:
                raise RuntimeError(f"in-process {variant}: {kind} {path} answered {status}")
            await batch(kind, variant, min(200, settings.requests))

    times = empty_times()
    for round_index in range(settings.rounds):
        for kind in KINDS:
            for variant in rotated(VARIANTS, round_index):
                times[kind][variant].append(await batch(kind, variant, settings.requests))
    for driver in drivers.values():
        await driver.stop()
    return {
        "rounds": settings.rounds,
        "requests_per_round": settings.requests,
        "kinds": overheads(times),
    }


def shares(kinds: dict[str, dict[str, dict[str, Any]]], clock: str) -> dict[str, dict[str, Any]]:
    """Per kind: each variant's overhead median as a share of the instrumentator's."""
    result: dict[str, dict[str, Any]] = {}
    for kind, variants in kinds.items():
        theirs = variants[REFERENCE][f"overhead_{clock}_us"]["median"]
        result[kind] = {
            variant: round(variants[variant][f"overhead_{clock}_us"]["median"] / theirs, 3)
            if theirs > 0
            else None
            for variant in SHOWN
            if variant != REFERENCE
        }
    return result


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """Each share target on each kind (in-process CPU), and the scrape target."""
    cpu = results["ratios"]["in_process"]["cpu"]
    per_kind = {
        kind: {
            variant: {
                "share": cpu[kind][variant],
                "target": round(target, 3),
                "met": cpu[kind][variant] is not None and cpu[kind][variant] <= target,
            }
            for variant, target in SHARE_TARGETS.items()
        }
        for kind in KINDS
    }
    # The libraries expose different numbers of series for the same traffic (ours:
    # a latency histogram per route with a bound at 1.5 s, pagination, cache), so
    # the scrape is compared per exposed sample.
    scraped = results["scrape"]
    per_sample = {
        variant: round(entry["get_metrics_ms"]["median"] * 1e3 / entry["series"], 2)
        for variant, entry in scraped.items()
        if variant in ("ours", REFERENCE)
    }
    overhead_met = all(v["met"] for k in per_kind.values() for v in k.values())
    scrape_met = per_sample["ours"] <= per_sample[REFERENCE]
    return {
        "overhead": per_kind,
        "overhead_met": overhead_met,
        "scrape_ms_ours": scraped["ours"]["get_metrics_ms"]["median"],
        "scrape_ms_instrumentator": scraped[REFERENCE]["get_metrics_ms"]["median"],
        "scrape_us_per_sample_ours": per_sample["ours"],
        "scrape_us_per_sample_instrumentator": per_sample[REFERENCE],
        "scrape_met": scrape_met,
        "met": overhead_met and scrape_met,
    }


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


def _cell(stats: dict[str, float]) -> str:
    return f"{stats['median']:.1f} [{stats['p25']:.1f}-{stats['p75']:.1f}]"


def _table(title: str, kinds: dict[str, Any], ratios: dict[str, Any], clock: str) -> list[str]:
    width, share = 20, 10
    compared = [v for v in SHOWN if v != REFERENCE]
    lines = [title, " " * (10 + width * len(SHOWN)) + "   share of instrumentator's"]
    lines.append(
        f"  {'request':<8}"
        + "".join(f"{v:>{width}}" for v in SHOWN)
        + "   "
        + "".join(f"{v.replace('starlette-exporter', 'starlette'):>{share}}" for v in compared)
    )
    for kind in KINDS:
        variants = kinds[kind]
        row = f"  {kind:<8}"
        row += "".join(f"{_cell(variants[v][f'overhead_{clock}_us']):>{width}}" for v in SHOWN)
        found = [ratios[kind][v] for v in compared]
        row += "   " + "".join(f"{'-' if r is None else f'{r:.3f}':>{share}}" for r in found)
        lines.append(row)
    bare = ", ".join(f"{k} {kinds[k]['bare'][f'{clock}_us']['median']:.1f}" for k in KINDS)
    lines.append(f"  (bare app, µs per request: {bare})")
    return lines


def render(results: dict[str, Any]) -> str:
    """The human-readable tables: overhead over bare in µs, median [IQR], and shares."""
    lines: list[str] = []
    phases = {
        "in_process": ("In-process", ("process CPU time", "wall time")),
        "loopback": ("Loopback (uvicorn)", ("server CPU time", "client wall time")),
    }
    for phase, (title, clock_names) in phases.items():
        found = results.get(phase)
        if not found:
            continue  # --no-loopback
        counts = f"{found['rounds']} rounds x {found['requests_per_round']} requests"
        for clock, name in zip(("cpu", "wall"), clock_names, strict=True):
            lines += _table(
                f"{title}, overhead over bare in µs per request ({name}), median [IQR], {counts}",
                found["kinds"],
                results["ratios"][phase][clock],
                clock,
            )
            lines.append("")
    scraped = results["scrape"]
    first = next(iter(scraped.values()))
    lines.append(
        f"Scrape after {first['requests']} requests, ms, median [IQR] of {first['scrapes']} scrapes"
    )
    lines.append(
        f"  {'library':<20} {'series':>7} {'_created':>8} {'bytes':>8} "
        f"{'GET /metrics':>22} {'generate_latest':>22}"
    )
    for variant, entry in scraped.items():
        lines.append(
            f"  {variant:<20} {entry['series']:>7} {entry['created_series']:>8} "
            f"{entry['bytes']:>8} {_cell(entry['get_metrics_ms']):>22} "
            f"{_cell(entry['generate_latest_ms']):>22}"
        )
    goal = results["targets"]
    lines.append("")
    for variant, target in SHARE_TARGETS.items():
        found = {kind: goal["overhead"][kind][variant] for kind in KINDS}
        verdict = "MET" if all(v["met"] for v in found.values()) else "MISSED"
        listed = ", ".join(f"{kind} {v['share']}" for kind, v in found.items())
        lines.append(
            f"Target: {variant} overhead <= {target:.2f} of instrumentator's on every kind "
            f"(in-process CPU): {listed} -> {verdict}"
        )
    lines.append(
        "Target: our scrape no slower per exposed sample than instrumentator's: "
        f"{goal['scrape_us_per_sample_ours']} µs vs "
        f"{goal['scrape_us_per_sample_instrumentator']} µs "
        f"({goal['scrape_ms_ours']} ms vs {goal['scrape_ms_instrumentator']} ms for the whole "
        f"exposition) -> {'MET' if goal['scrape_met'] else 'MISSED'}"
    )
    return "\n".join(lines)


def run(settings: Settings, with_loopback: bool = True) -> dict[str, Any]:
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
        "kinds": {kind: f"{p}?{q.decode()}" if q else p for kind, (p, q) in KINDS.items()},
    }
    results["in_process"] = asyncio.run(_in_process(settings))
    ratios = {"in_process": {c: shares(results["in_process"]["kinds"], c) for c in ("cpu", "wall")}}
    if with_loopback:
        results["loopback"] = loopback.run(settings)
        ratios["loopback"] = {c: shares(results["loopback"]["kinds"], c) for c in ("cpu", "wall")}
    results["ratios"] = ratios
    results["scrape"] = scrape.run(settings)
    results["targets"] = targets(results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    defaults = Settings()
    counts = {
        "rounds": "in-process rounds",
        "requests": "in-process requests per kind, variant and round",
        "loopback_rounds": "loopback rounds",
        "loopback_requests": "loopback requests per kind, variant and round",
        "scrape_requests": "requests before the scrapes",
        "scrapes": "timed scrapes",
        "routes": "filler routes in front of the measured ones",
    }
    parser.add_argument("--quick", action="store_true", help="tiny counts: a few seconds")
    for name, text in counts.items():
        flag = f"--{name.replace('_', '-')}"
        parser.add_argument(flag, type=int, help=f"{text} ({getattr(defaults, name)})")
    parser.add_argument("--no-loopback", action="store_true", help="skip the loopback phase")
    parser.add_argument(
        "--check", action="store_true", help="exit with status 1 when a target is missed"
    )
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file (%(default)s)"
    )
    args = parser.parse_args(argv)

    base = QUICK if args.quick else defaults
    overrides = {name: getattr(args, name) for name in counts}
    for name, value in overrides.items():
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    settings = Settings(**(asdict(base) | {k: v for k, v in overrides.items() if v is not None}))

    results = run(settings, with_loopback=not args.no_loopback)
    print(render(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    partial = args.output.with_name(args.output.name + ".partial")
    partial.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    partial.replace(args.output)
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    print(f"\nwrote {shown} ({results['seconds']} s)")
    if args.check and not results["targets"]["met"]:
        print("a target was missed (--check)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
