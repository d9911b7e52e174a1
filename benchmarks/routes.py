"""Per-request cost of our middleware by kind of request: paginated or not, mounted, stray params.

    python -m benchmarks.routes             # about half a minute
    python -m benchmarks.routes --quick     # a few seconds

One FastAPI app, bare and instrumented (``exporters.instrument``, access log
off as when logging is left unconfigured), driven in-process by the raw ASGI
driver. Each round times a batch of each kind of request on both, in turn;
the overhead of a kind is the instrumented time per request minus the bare
one in the same round, and the report gives its median over the rounds.
Pagination is resolved from the route object (once, at the first request),
so a paginated request costs a dictionary lookup and a parse of the names its
route declares, and any other request only the lookup. Only public API is
used, so the same file measures any version of the package on the path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query
from prometheus_client import CollectorRegistry

from benchmarks.asgi import AsgiDriver

# name: (path, query string)
KINDS: dict[str, tuple[str, bytes]] = {
    "item (not paginated)": ("/api/v1/group49/items/7", b""),
    "item with stray page params": ("/api/v1/group49/items/7", b"page=1&page_size=10"),
    "offset page": ("/api/v1/content", b"page=3&page_size=20&sort=new"),
    "offset page, defaults only": ("/api/v1/content", b""),
    "cursor page": ("/api/v1/feed", b"limit=20&cursor=eyJpZCI6IDQyfQ"),
    "top-N list": ("/api/v1/tags/popular", b"limit=10"),
    "mounted, path parameters": ("/orgs/acme/api/hello/bob", b""),
}


class Window:
    def __init__(self, page: int = Query(1, ge=1), page_size: int = Query(20, ge=1, le=100)):
        self.page, self.page_size = page, page_size


def build(instrumented: bool, routes: int) -> FastAPI:
    app = FastAPI()

    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    for index in range(routes):
        app.add_api_route(f"/api/v1/group{index:02d}/items/{{item_id}}", item, methods=["GET"])

    @app.get("/api/v1/content")
    async def content(window: Annotated[Window, Depends()], sort: str = "new") -> int:
        return window.page

    @app.get("/api/v1/feed")
    async def feed(limit: int = 20, cursor: str | None = None) -> int:
        return limit

    @app.get("/api/v1/tags/popular")
    async def popular(limit: int = 10) -> int:
        return limit

    sub = FastAPI()

    @sub.get("/hello/{name}")
    async def hello(name: str) -> str:
        return name

    app.mount("/orgs/{org}/api", sub)
    if instrumented:
        from genonaut_monitoring import exporters

        exporters.instrument(app, registry=CollectorRegistry(), log_requests=False)
    return app


async def _batch(driver: AsgiDriver, path: str, query: bytes, requests: int) -> float:
    """Microseconds per request over one batch."""
    started = time.perf_counter()
    for _ in range(requests):
        status, _ = await driver.get(path, query)
        if status != 200:
            raise RuntimeError(f"{path}?{query.decode()} answered {status}")
    return (time.perf_counter() - started) / requests * 1e6


async def measure(rounds: int, requests: int, routes: int) -> dict[str, Any]:
    drivers = {"bare": AsgiDriver(build(False, routes)), "ours": AsgiDriver(build(True, routes))}
    for driver in drivers.values():
        for path, query in KINDS.values():
            await _batch(driver, path, query, 20)  # warm-up: first requests read the routes
    overheads: dict[str, list[float]] = {kind: [] for kind in KINDS}
    bare: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for round_no in range(rounds):
        order = list(drivers) if round_no % 2 == 0 else list(reversed(drivers))
        for kind, (path, query) in KINDS.items():
            times = {name: await _batch(drivers[name], path, query, requests) for name in order}
            overheads[kind].append(times["ours"] - times["bare"])
            bare[kind].append(times["bare"])
    return {
        kind: {
            "bare_us": round(statistics.median(bare[kind]), 2),
            "overhead_us": round(statistics.median(values), 2),
            "overhead_p25_us": round(statistics.quantiles(values, n=4)[0], 2),
            "overhead_p75_us": round(statistics.quantiles(values, n=4)[2], 2),
        }
        for kind, values in overheads.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.routes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=15, help="rounds (%(default)s)")
    parser.add_argument("--requests", type=int, default=500, help="per batch (%(default)s)")
    parser.add_argument("--routes", type=int, default=50, help="item routes (%(default)s)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 100 requests")
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests = 3, 100
    if args.rounds < 2 or args.requests < 1 or args.routes < 50:
        parser.error("--rounds must be at least 2, --requests at least 1, --routes at least 50")
    results = asyncio.run(measure(args.rounds, args.requests, args.routes))
    print(f"median over {args.rounds} rounds of {args.requests} requests, in-process, microseconds")
    print(f"  {'request':<30} {'bare':>8} {'overhead':>9} {'(p25-p75)':>15}")
    for kind, entry in results.items():
        spread = f"{entry['overhead_p25_us']:.1f}-{entry['overhead_p75_us']:.1f}"
        print(f"  {kind:<30} {entry['bare_us']:>8.1f} {entry['overhead_us']:>9.1f} {spread:>15}")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
