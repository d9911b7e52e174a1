"""Load the paginated content API and report latency by offset range, page size and mode.

    python -m scripts.performance_test                       # all scenarios, local demo API
    python -m scripts.performance_test --scenario offset --offsets 0,1000,50000 --requests 50
    python -m scripts.performance_test --scenario cursor --walk-pages 20 --json perf.json

Scenarios: ``offset`` sweeps offsets from the first page to deep ones at one page
size; ``size`` sweeps page sizes at offset 0; ``cursor`` walks the same pages by
cursor and by page number. Results are grouped with the catalogue's
``offset_range`` and ``page_size_class`` labels, so they line up with the
dashboards' panels. Only loopback is targeted unless ``--allow-remote`` is given;
every run is bounded by ``--requests`` and ``--duration`` under hard caps.
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import json
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from genonaut_monitoring.exporters import catalogue
from scripts._report import (
    OFFSET_RANGE_ORDER,
    PAGE_SIZE_ORDER,
    Progress,
    format_table,
    latency_summary,
)

DEFAULT_URL = "http://127.0.0.1:8000"
CONTENT = "/api/v1/content"
SCENARIOS = ("offset", "size", "cursor")
# Hard caps: a typo must not turn a measurement into a flood.
MAX_REQUESTS = 20_000
MAX_DURATION_SECONDS = 600.0
MAX_CONCURRENCY = 32
MAX_TIMEOUT_SECONDS = 60.0
MAX_PAGE_SIZE = 500  # the demo API's own limit (larger sizes are a 422)
CSV_COLUMNS = (
    "scenario",
    "mode",
    "offset_range",
    "page_size_class",
    "count",
    "errors",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
    "mean_ms",
)


@dataclass(frozen=True)
class Sample:
    """One request and how it went."""

    scenario: str
    mode: str
    page_size: int
    offset: int | None
    status: int  # 0 when no HTTP response arrived
    latency_ms: float
    error: str  # "" when the request succeeded

    @property
    def offset_range(self) -> str:
        return catalogue.NO_OFFSET if self.offset is None else catalogue.offset_range(self.offset)

    @property
    def page_size_class(self) -> str:
        return catalogue.page_size_class(self.page_size)


# A task sends one or more requests (a cursor walk is sequential) and returns their samples.
Task = Callable[["Runner"], list[Sample]]


class Runner:
    """Sends requests from worker threads until the plan or the deadline runs out."""

    def __init__(self, base_url: str, timeout: float, deadline: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline
        self.stop = threading.Event()
        # Set when the deadline or Ctrl-C left part of the plan unsent.
        self.cut_short = False
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def expired(self) -> bool:
        """True once the deadline passed or Ctrl-C was pressed; remembers that it cut the run."""
        if self.stop.is_set() or time.monotonic() >= self.deadline:
            self.cut_short = True
            return True
        return False

    def session(self) -> requests.Session:
        """One session per worker thread: requests.Session is not thread-safe."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def get(self, path: str, params: dict[str, Any]) -> tuple[int, float, str, Any]:
        """GET ``path``: status, latency in ms, error text, parsed body (None on error)."""
        started = time.perf_counter()
        try:
            response = self.session().get(self.base_url + path, params=params, timeout=self.timeout)
            body = response.content
        except requests.RequestException as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return 0, elapsed, type(exc).__name__, None
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            return response.status_code, elapsed, f"HTTP {response.status_code}", None
        try:
            return response.status_code, elapsed, "", json.loads(body)
        except ValueError:
            return response.status_code, elapsed, "invalid JSON", None

    def close(self) -> None:
        for session in self._sessions:
            session.close()


def offset_request(scenario: str, page_size: int, offset: int, by_page: bool = False) -> Task:
    """One offset-paginated request (``skip``/``limit``, or ``page``/``page_size``)."""
    if by_page:
        params = {"page": offset // page_size + 1, "page_size": page_size}
    else:
        params = {"skip": offset, "limit": page_size}

    def task(runner: Runner) -> list[Sample]:
        if runner.expired():
            return []
        status, ms, error, _ = runner.get(CONTENT, params)
        return [Sample(scenario, "offset", page_size, offset, status, ms, error)]

    return task


def cursor_walk(scenario: str, page_size: int, pages: int) -> Task:
    """Follow ``next_cursor`` from the newest item for up to ``pages`` pages."""

    def task(runner: Runner) -> list[Sample]:
        samples: list[Sample] = []
        cursor: str | None = None
        for _ in range(pages):
            if runner.expired():
                break
            params: dict[str, Any] = {"limit": page_size}
            if cursor is not None:
                params["cursor"] = cursor
            status, ms, error, body = runner.get(f"{CONTENT}/cursor", params)
            samples.append(Sample(scenario, "cursor", page_size, None, status, ms, error))
            if error:
                break  # without this page's cursor the walk cannot go on
            cursor = body["pagination"].get("next_cursor")
            if not cursor:
                break
        return samples

    return task


@dataclass(frozen=True)
class Plan:
    """What to send: the tasks and how many requests they add up to at most."""

    tasks: list[Task]
    requests: int


def make_plan(args: argparse.Namespace) -> Plan:
    """Tasks for the chosen scenarios, in scenario order."""
    tasks: list[Task] = []
    total = 0
    if "offset" in args.scenario:
        for offset in args.offsets:
            tasks += [offset_request("offset", args.page_size, offset)] * args.requests
            total += args.requests
    if "size" in args.scenario:
        for size in args.page_sizes:
            tasks += [offset_request("size", size, 0)] * args.requests
            total += args.requests
    if "cursor" in args.scenario:
        for _ in range(args.requests):
            tasks.append(cursor_walk("cursor", args.walk_page_size, args.walk_pages))
            for page in range(args.walk_pages):
                offset = page * args.walk_page_size
                tasks.append(offset_request("cursor", args.walk_page_size, offset, by_page=True))
        total += 2 * args.requests * args.walk_pages
    return Plan(tasks, total)


def run(plan: Plan, runner: Runner, concurrency: int, progress: Progress) -> list[Sample]:
    """Run every task on ``concurrency`` threads; stop early on the deadline or Ctrl-C."""
    samples: list[Sample] = []
    errors = 0
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="load") as pool:
        pending: set[Future[list[Sample]]] = set()
        queue = iter(plan.tasks)
        try:
            # Keep the queue short so the deadline stops submission, not only sending.
            for task in _take(queue, concurrency * 2):
                pending.add(pool.submit(task, runner))
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    batch = future.result()
                    samples.extend(batch)
                    errors += sum(1 for s in batch if s.error)
                    next_task = _take(queue, 1)
                    if next_task and not runner.expired():
                        pending.add(pool.submit(next_task[0], runner))
                progress.update(len(samples), f"{errors} errors")
        except KeyboardInterrupt:
            runner.stop.set()
            print("\ninterrupted: finishing the requests in flight", file=sys.stderr)
            for future in pending:
                samples.extend(future.result())
    progress.update(len(samples), f"{errors} errors", force=True)
    progress.done()
    return samples


def _take(tasks: Iterator[Task], n: int) -> list[Task]:
    return [task for _, task in zip(range(n), tasks, strict=False)]


# --- Report -----------------------------------------------------------------------------


def summarize(samples: list[Sample]) -> dict[str, Any]:
    """Counts, errors and latency percentiles per group and per mode."""
    groups: dict[tuple[str, str, str, str], list[Sample]] = defaultdict(list)
    modes: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[(s.scenario, s.mode, s.offset_range, s.page_size_class)].append(s)
        modes[s.mode].append(s)

    def order(key: tuple[str, str, str, str]) -> tuple[int, int, int, int]:
        scenario, mode, offset_range, size = key
        return (
            SCENARIOS.index(scenario),
            catalogue.PAGINATION_MODES.index(mode),
            OFFSET_RANGE_ORDER[offset_range],
            PAGE_SIZE_ORDER[size],
        )

    def stats(members: list[Sample]) -> dict[str, Any]:
        return {
            "count": len(members),
            "errors": sum(1 for s in members if s.error),
            **latency_summary(s.latency_ms for s in members),
        }

    return {
        "groups": [
            {
                "scenario": key[0],
                "mode": key[1],
                "offset_range": key[2],
                "page_size_class": key[3],
                **stats(groups[key]),
            }
            for key in sorted(groups, key=order)
        ],
        "modes": [
            {"mode": mode, **stats(modes[mode])}
            for mode in catalogue.PAGINATION_MODES
            if mode in modes
        ],
        "error_kinds": dict(sorted(Counter(s.error for s in samples if s.error).items())),
    }


def render_text(report: dict[str, Any]) -> str:
    """The report as tables."""
    latency = ("p50_ms", "p95_ms", "p99_ms", "max_ms")
    group_rows = [
        [g["scenario"], g["mode"], g["offset_range"], g["page_size_class"], g["count"],
         g["errors"], *(g[k] for k in latency)]
        for g in report["groups"]
    ]  # fmt: skip
    mode_rows = [[m["mode"], m["count"], m["errors"], *(m[k] for k in latency)]
                 for m in report["modes"]]  # fmt: skip
    run_info = report["run"]
    head = (
        f"{run_info['sent']} of {run_info['planned']} planned requests to {run_info['url']} "
        f"in {run_info['elapsed_seconds']:.1f}s, {run_info['errors']} errors"
        + (" (stopped at the --duration limit)" if run_info["stopped_early"] else "")
    )
    parts = [
        head,
        "",
        format_table(
            "Latency by scenario, mode, offset range and page size (ms)",
            ["scenario", "mode", "offset_range", "page_size", "count", "errors", *latency],
            group_rows,
        ),
        "",
        format_table(
            "Latency by pagination mode (ms)", ["mode", "count", "errors", *latency], mode_rows
        ),
    ]
    if report["error_kinds"]:
        kinds = [[kind, n] for kind, n in report["error_kinds"].items()]
        parts += ["", format_table("Errors", ["error", "count"], kinds)]
    return "\n".join(parts) + "\n"


def write_csv(path: Path, report: dict[str, Any]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(report["groups"])


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


# --- Command line -----------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of integers"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("the list is empty")
    return values


def _scenarios(text: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown) or '(none)'}: choose from {', '.join(SCENARIOS)}"
        )
    return chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.performance_test",
        description="Load the demo content API with offset and cursor pagination and report "
        "latency percentiles (p50/p95/p99) per offset range, page size and mode. Targets "
        "loopback only unless --allow-remote; bounded by --requests and --duration.",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"API base URL (default {DEFAULT_URL})")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a URL whose host is not loopback"
    )
    parser.add_argument(
        "--scenario",
        type=_scenarios,
        default=list(SCENARIOS),
        help="comma-separated: offset (offset sweep), size (page-size sweep), cursor "
        "(cursor vs offset walk); default all",
    )
    parser.add_argument(
        "--offsets",
        type=_int_list,
        default=[0, 100, 1_000, 10_000, 50_000],
        help="offsets for the offset sweep (default 0,100,1000,10000,50000)",
    )
    parser.add_argument(
        "--page-size", type=int, default=50, help="page size of the offset sweep (default 50)"
    )
    parser.add_argument(
        "--page-sizes",
        type=_int_list,
        default=[10, 25, 50, 100, 250],
        help="page sizes for the page-size sweep, at offset 0 (default 10,25,50,100,250)",
    )
    parser.add_argument(
        "--walk-pages", type=int, default=10, help="pages per cursor/offset walk (default 10)"
    )
    parser.add_argument(
        "--walk-page-size", type=int, default=50, help="page size of the walks (default 50)"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=20,
        help="requests per sweep point, and walks per mode in the cursor scenario (default 20)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=60.0,
        help="stop sending after this many seconds "
        f"(default 60, at most {MAX_DURATION_SECONDS:.0f})",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help=f"requests in flight at once (default 4, at most {MAX_CONCURRENCY})",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per request (default 30)"
    )
    parser.add_argument("--csv", type=Path, help="write the per-group table as CSV to this file")
    parser.add_argument("--json", type=Path, help="write the whole report as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    args = parser.parse_args(argv)

    problems = []
    host = urlsplit(args.url).hostname
    if urlsplit(args.url).scheme not in ("http", "https") or not host:
        problems.append(f"--url {args.url!r} is not an http(s) URL with a host")
    elif not args.allow_remote and not is_loopback(host):
        problems.append(
            f"--url host {host!r} is not loopback: this tool only loads local services; "
            "pass --allow-remote if you really mean to load that host"
        )
    for name in ("requests", "walk_pages", "concurrency"):
        if getattr(args, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be at least 1")
    sizes = [args.page_size, args.walk_page_size, *args.page_sizes]
    if any(not 1 <= size <= MAX_PAGE_SIZE for size in sizes):
        problems.append(f"page sizes must be between 1 and {MAX_PAGE_SIZE} (the API's limit)")
    if any(offset < 0 for offset in args.offsets):
        problems.append("--offsets must not be negative")
    if args.concurrency > MAX_CONCURRENCY:
        problems.append(f"--concurrency {args.concurrency} is above the cap of {MAX_CONCURRENCY}")
    if not 0 < args.duration <= MAX_DURATION_SECONDS:
        problems.append(f"--duration must be above 0 and at most {MAX_DURATION_SECONDS:.0f}")
    if not 0 < args.timeout <= MAX_TIMEOUT_SECONDS:
        problems.append(f"--timeout must be above 0 and at most {MAX_TIMEOUT_SECONDS:.0f}")
    if not problems:
        planned = make_plan(args).requests
        if planned > MAX_REQUESTS:
            problems.append(
                f"this run would send {planned} requests, above the cap of {MAX_REQUESTS}: "
                "lower --requests, --walk-pages or the number of sweep points"
            )
    if problems:
        parser.error("; ".join(problems))
    return args


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses; names are not resolved."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base = args.url.rstrip("/")
    try:
        health = requests.get(f"{base}/health", timeout=args.timeout)
    except requests.RequestException as exc:
        print(
            f"error: cannot reach {base}/health ({type(exc).__name__}): start the API first "
            "(genonaut-monitoring up, or docker compose up)",
            file=sys.stderr,
        )
        return 1
    if health.status_code != 200:
        print(f"error: {base}/health answered {health.status_code}: {health.text[:200]}",
              file=sys.stderr)  # fmt: skip
        return 1

    plan = make_plan(args)
    started = time.monotonic()
    runner = Runner(base, args.timeout, started + args.duration)
    progress = Progress("requests", total=plan.requests, quiet=args.quiet)
    try:
        samples = run(plan, runner, args.concurrency, progress)
    finally:
        runner.close()
    elapsed = time.monotonic() - started
    report = summarize(samples)
    report["run"] = {
        "url": base,
        "scenarios": args.scenario,
        "planned": plan.requests,
        "sent": len(samples),
        "errors": sum(1 for s in samples if s.error),
        "elapsed_seconds": round(elapsed, 3),
        "stopped_early": runner.cut_short,
        "concurrency": args.concurrency,
        "settings": {
            "offsets": args.offsets,
            "page_size": args.page_size,
            "page_sizes": args.page_sizes,
            "walk_pages": args.walk_pages,
            "walk_page_size": args.walk_page_size,
            "requests": args.requests,
            "duration": args.duration,
        },
    }
    sys.stdout.write(render_text(report))
    if args.csv:
        write_csv(args.csv, report)
        print(f"wrote {args.csv}")
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
