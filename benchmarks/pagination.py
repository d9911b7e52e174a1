"""Seeding time and deep offset against cursor pagination on the demo API.

    python -m benchmarks.pagination                      # SQLite, 100,000 rows
    python -m benchmarks.pagination --database-url postgresql+psycopg2://...  # empty database

Seeds a fresh catalogue (a temporary SQLite file unless ``--database-url``
names an empty database), then, through the demo app in-process, times the
same 50 rows fetched two ways at several depths: ``?skip=N&limit=50`` and
``/cursor?limit=50&cursor=<position N>``, interleaved, median of the repeats.
Writes ``bench-results/pagination.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from benchmarks.asgi import AsgiDriver
from genonaut_monitoring.exporters import demo

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "bench-results" / "pagination.json"
PAGE = 50


def _position(engine: sa.Engine, depth: int) -> tuple[datetime, int] | None:
    """The ``(created_at, id)`` a page at row ``depth`` starts after (None: the first page)."""
    if depth == 0:
        return None
    with engine.connect() as conn:
        row = conn.execute(demo.offset_page_query(depth - 1, 1)).one()
    return row.created_at, row.id


def _query_ms(engine: sa.Engine, query: sa.Select[Any], repeats: int) -> float:
    """Median ms of the statement alone, on one connection."""
    times = []
    with engine.connect() as conn:
        for _ in range(repeats):
            started = time.perf_counter()
            conn.execute(query).all()
            times.append((time.perf_counter() - started) * 1e3)
    return round(statistics.median(times), 3)


async def _measure(url: str, depths: Sequence[int], repeats: int) -> dict[str, Any]:
    registry = CollectorRegistry()
    app = demo.create_app(url, seed_rows=0, registry=registry, log_level="ERROR")
    driver = AsgiDriver(app)
    await driver.start()
    engine: sa.Engine = app.state.engine
    results: dict[str, Any] = {}
    for depth in depths:
        after = _position(engine, depth)
        cursor = demo.encode_cursor(*after) if after else None
        offset_query = f"skip={depth}&limit={PAGE}".encode()
        cursor_query = f"limit={PAGE}" + (f"&cursor={cursor}" if cursor else "")
        _, offset_body = await driver.get(demo.API_PREFIX, offset_query)
        _, cursor_body = await driver.get(f"{demo.API_PREFIX}/cursor", cursor_query.encode())
        if json.loads(offset_body)["items"] != json.loads(cursor_body)["items"]:
            raise RuntimeError(f"offset and cursor pages differ at depth {depth}")
        times: dict[str, list[float]] = {"offset": [], "cursor": []}
        for _ in range(repeats):
            for mode, path, query in (
                ("offset", demo.API_PREFIX, offset_query),
                ("cursor", f"{demo.API_PREFIX}/cursor", cursor_query.encode()),
            ):
                started = time.perf_counter()
                status, _ = await driver.get(path, query)
                times[mode].append((time.perf_counter() - started) * 1e3)
                if status != 200:
                    raise RuntimeError(f"{mode} at depth {depth} answered {status}")
        results[str(depth)] = {
            mode: round(statistics.median(values), 3) for mode, values in times.items()
        }
        results[str(depth)]["offset_query"] = _query_ms(
            engine, demo.offset_page_query(depth, PAGE + 1), repeats
        )
        results[str(depth)]["cursor_query"] = _query_ms(
            engine, demo.cursor_page_query(after, PAGE + 1), repeats
        )
    await driver.stop()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; see ``--help``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.pagination",
        description=__doc__,
        # The docstring's usage lines stay lines.
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=100_000, help="rows to seed (%(default)s)")
    parser.add_argument("--database-url", help="an empty database (default: temporary SQLite)")
    parser.add_argument(
        "--depths",
        default="0,1000,10000,50000,90000",
        help="comma-separated row depths (%(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=20, help="requests per point (%(default)s)")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"JSON results file ({DEFAULT_OUTPUT.relative_to(ROOT)})",
    )
    args = parser.parse_args(argv)
    try:
        depths = [int(d) for d in args.depths.split(",")]
    except ValueError:
        parser.error(f"--depths {args.depths!r}: give integers separated by commas")
    if args.rows < 1 or args.repeats < 1 or any(not 0 <= d < args.rows for d in depths):
        parser.error("--rows and --repeats must be positive and every depth below --rows")

    with tempfile.TemporaryDirectory(prefix="bench-pagination-") as scratch:
        url = args.database_url or f"sqlite:///{Path(scratch) / 'demo.db'}"
        engine = demo.make_engine(url)
        started = time.perf_counter()
        rows = demo.prepare_database(engine, args.rows)
        seed_seconds = time.perf_counter() - started
        engine.dispose()
        if rows != args.rows:
            parser.error(f"{url} already held {rows} rows: give an empty database")
        timings = asyncio.run(_measure(url, depths, args.repeats))

    backend = sa.make_url(url).get_backend_name()
    print(f"{backend}: seeded {args.rows} rows in {seed_seconds:.2f} s")
    print(f"{PAGE} rows per page, median ms of {args.repeats}: whole request (in-process) | query")
    print(f"  {'depth':>7} {'offset':>9} {'cursor':>9} {'ratio':>7} | {'offset':>9} {'cursor':>9}")
    for depth, entry in timings.items():
        ratio = entry["offset"] / entry["cursor"] if entry["cursor"] else float("nan")
        print(
            f"  {depth:>7} {entry['offset']:>9.2f} {entry['cursor']:>9.2f} {ratio:>6.1f}x | "
            f"{entry['offset_query']:>9.2f} {entry['cursor_query']:>9.2f}"
        )
    result = {
        "backend": backend,
        "rows": args.rows,
        "seed_seconds": round(seed_seconds, 3),
        "page_size": PAGE,
        "repeats": args.repeats,
        "median_ms_by_depth": timings,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
