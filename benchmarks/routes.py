"""Per-request cost of our middleware by kind of request: paginated or not, mounted, stray params.

    python -m benchmarks.routes             # about a minute
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
    """CPU microseconds per request over one batch.

    CPU time, not wall time: on a shared machine, time spent descheduled would
    swamp differences of a few microseconds.
    """
    started = time.process_time()
    for _ in range(requests):
        status, _ = await driver.get(path, query)
        if status != 200:
            raise RuntimeError(f"{path}?{query.decode()} answered {status}")
    return (time.process_time() - started) / requests * 1e6


class _Capture:
    """Remembers the scope of each path after routing: what the router left in it."""

    def __init__(self, app: Any, scopes: dict[tuple[str, bytes], dict[str, Any]]) -> None:
        self.app = app
        self.scopes = scopes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.scopes[scope["path"], scope["query_string"]] = dict(scope)


def _routed(scope: dict[str, Any]) -> Any:
    """An ASGI app that answers 200 at once, leaving ``scope`` as the real router left it."""
    routed = {key: scope[key] for key in ("route", "endpoint", "fastapi", "path_params",
                                          "root_path") if key in scope}  # fmt: skip
    start = {"type": "http.response.start", "status": 200, "headers": []}
    body = {"type": "http.response.body", "body": b"{}"}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope.update(routed)
        await send(start)
        await send(body)

    return app


async def measure_alone(rounds: int, requests: int, routes: int) -> dict[str, Any]:
    """The middleware around a stand-in for the routed app: only our own work is timed."""
    from genonaut_monitoring.exporters import MetricsMiddleware, catalogue

    app = build(False, routes)
    scopes: dict[tuple[str, bytes], dict[str, Any]] = {}
    app.add_middleware(_Capture, scopes=scopes)
    real = AsgiDriver(app)
    bare: dict[str, AsgiDriver] = {}
    ours: dict[str, AsgiDriver] = {}
    for kind, (path, query) in KINDS.items():
        await real.get(path, query)
        stand_in = _routed(scopes[path, query])
        bare[kind] = AsgiDriver(stand_in)
        middleware = MetricsMiddleware(
            stand_in, metrics=catalogue.Metrics(CollectorRegistry()), log_requests=False
        )
        ours[kind] = AsgiDriver(middleware)
        # The middleware reads the routes of scope["app"], as under the real app.
        ours[kind].app = _with_app(middleware, app)
    return await _compare(bare, ours, rounds, requests)


def _with_app(inner: Any, app: FastAPI) -> Any:
    async def with_app(scope: Any, receive: Any, send: Any) -> None:
        scope["app"] = app
        await inner(scope, receive, send)

    return with_app


async def _compare(
    bare: dict[str, AsgiDriver], ours: dict[str, AsgiDriver], rounds: int, requests: int
) -> dict[str, Any]:
    for drivers in (bare, ours):
        for kind, (path, query) in KINDS.items():
            await _batch(drivers[kind], path, query, 20)  # warm-up
    overheads: dict[str, list[float]] = {kind: [] for kind in KINDS}
    plain: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for round_no in range(rounds):
        for kind, (path, query) in KINDS.items():
            pair = [("bare", bare[kind]), ("ours", ours[kind])]
            times = {
                name: await _batch(driver, path, query, requests)
                for name, driver in (pair if round_no % 2 == 0 else pair[::-1])
            }
            overheads[kind].append(times["ours"] - times["bare"])
            plain[kind].append(times["bare"])
    return {
        kind: {
            "bare_us": round(statistics.median(plain[kind]), 2),
            "overhead_us": round(statistics.median(values), 2),
            "overhead_p25_us": round(statistics.quantiles(values, n=4)[0], 2),
            "overhead_p75_us": round(statistics.quantiles(values, n=4)[2], 2),
        }
        for kind, values in overheads.items()
    }


async def measure(rounds: int, requests: int, routes: int) -> dict[str, Any]:
    """The whole app, bare and instrumented."""
    bare = AsgiDriver(build(False, routes))
    ours = AsgiDriver(build(True, routes))
    return await _compare(dict.fromkeys(KINDS, bare), dict.fromkeys(KINDS, ours), rounds, requests)


def _print(title: str, results: dict[str, Any]) -> None:
    print(title)
    print(f"  {'request':<30} {'bare':>8} {'overhead':>9} {'(p25-p75)':>15}")
    for kind, entry in results.items():
        spread = f"{entry['overhead_p25_us']:.1f}-{entry['overhead_p75_us']:.1f}"
        print(f"  {kind:<30} {entry['bare_us']:>8.1f} {entry['overhead_us']:>9.1f} {spread:>15}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.routes",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=30, help="rounds (%(default)s)")
    parser.add_argument("--requests", type=int, default=500, help="per batch (%(default)s)")
    parser.add_argument("--routes", type=int, default=50, help="item routes (%(default)s)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 100 requests")
    parser.add_argument(
        "--middleware-only", action="store_true", help="skip the whole-app measurement"
    )
    parser.add_argument("--output", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.requests = 3, 100
    if args.rounds < 2 or args.requests < 1 or args.routes < 50:
        parser.error("--rounds must be at least 2, --requests at least 1, --routes at least 50")
    alone = asyncio.run(measure_alone(args.rounds, 4 * args.requests, args.routes))
    what = f"median over {args.rounds} rounds, CPU microseconds per request, in-process"
    _print(f"The middleware alone, around a stand-in for the routed app ({what}):", alone)
    whole: dict[str, Any] = {}
    if not args.middleware_only:
        whole = asyncio.run(measure(args.rounds, args.requests, args.routes))
        _print(f"The whole FastAPI app, bare and instrumented ({what}):", whole)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        payload = {"middleware_alone": alone, "whole_app": whole}
        args.output.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
