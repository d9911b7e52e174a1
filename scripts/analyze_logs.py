"""Summarise the API's JSON logs: slow routes, pagination latency, errors, slow queries.

    python -m scripts.analyze_logs .run/logs/api.log
    docker compose logs --no-log-prefix api | python -m scripts.analyze_logs
    python -m scripts.analyze_logs --json api.log.1 api.log.gz > report.json

Reads the per-request lines (``event`` "request", logger ``genonaut_monitoring.access``) and the
slow-query lines (``event`` "slow_query", logger ``genonaut_monitoring.db``) that the exporters
write with ``LOG_FORMAT=json``. Other JSON lines are counted and ignored; lines that
are not JSON objects, or lack the fields a report needs, are skipped and counted.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from genonaut_monitoring.exporters import catalogue
from scripts._report import (
    OFFSET_RANGE_ORDER,
    PAGE_SIZE_ORDER,
    Progress,
    format_table,
    latency_summary,
)

# How many malformed lines the report quotes (all are counted).
MALFORMED_EXAMPLES = 5


@dataclass
class Tally:
    """Durations (ms) of one group, its error count, and the page-query times it logged."""

    durations: list[float] = field(default_factory=list)
    errors: int = 0
    query_durations: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        stats = latency_summary(self.durations)
        return {
            "count": len(self.durations),
            "errors": self.errors,
            "p50_ms": stats["p50_ms"],
            "p95_ms": stats["p95_ms"],
            "max_ms": stats["max_ms"],
            "mean_ms": stats["mean_ms"],
        }


@dataclass
class Analysis:
    """Everything counted while reading; :meth:`report` turns it into tables."""

    lines: int = 0
    requests: int = 0
    slow_query_lines: int = 0
    other: int = 0
    malformed: int = 0
    malformed_examples: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[tuple[str, str], Tally] = field(default_factory=lambda: defaultdict(Tally))
    offset_ranges: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    page_sizes: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    modes: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    queries: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    query_info: dict[str, tuple[str, str]] = field(default_factory=dict)
    query_routes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def skip(self, source: str, number: int, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < MALFORMED_EXAMPLES:
            self.malformed_examples.append({"source": source, "line": number, "reason": reason})

    def add_line(self, source: str, number: int, text: str) -> None:
        """Count one log line."""
        self.lines += 1
        text = text.strip()
        if not text:
            self.lines -= 1  # blank lines are not log lines
            return
        try:
            record = json.loads(text)
        except ValueError:
            self.skip(source, number, "not JSON")
            return
        if not isinstance(record, dict):
            self.skip(source, number, "not a JSON object")
            return
        event = record.get("event")
        if event == "request":
            self._request(source, number, record)
        elif event == "slow_query":
            self._slow_query(source, number, record)
        else:
            self.other += 1

    def _request(self, source: str, number: int, record: dict[str, Any]) -> None:
        route = record.get("route")
        status = _int(record.get("status"))
        duration = _number(record.get("duration_ms"))
        if not isinstance(route, str) or status is None or duration is None:
            self.skip(source, number, "request line without route, status or duration_ms")
            return
        self.requests += 1
        method = str(record.get("method") or "?")
        tally = self.routes[(method, route)]
        tally.durations.append(duration)
        tally.errors += status >= 500
        if status >= 400:
            self.statuses[(route, status)] += 1
        mode = record.get("pagination_mode")
        if isinstance(mode, str):
            query_ms = _number(record.get("pagination_query_ms"))
            for groups, key in (
                (self.modes, mode),
                (self.offset_ranges, _label(record, "offset_range", catalogue.NO_OFFSET)),
                (self.page_sizes, _label(record, "page_size_class", "?")),
            ):
                group = groups[key]
                group.durations.append(duration)
                group.errors += status >= 500
                if query_ms is not None:
                    group.query_durations.append(query_ms)

    def _slow_query(self, source: str, number: int, record: dict[str, Any]) -> None:
        fingerprint = record.get("fingerprint")
        duration = _number(record.get("duration_ms"))
        if not isinstance(fingerprint, str) or duration is None:
            self.skip(source, number, "slow_query line without fingerprint or duration_ms")
            return
        self.slow_query_lines += 1
        self.queries[fingerprint].durations.append(duration)
        self.query_info.setdefault(
            fingerprint, (str(record.get("operation") or "?"), str(record.get("table") or "?"))
        )
        self.query_routes[fingerprint][str(record.get("route") or "-")] += 1

    def report(self, top: int) -> dict[str, Any]:
        """The analysis as plain data (the ``--json`` output)."""
        limit = top or None
        routes: list[dict[str, Any]] = [
            {"method": method, "route": route, **tally.summary()}
            for (method, route), tally in self.routes.items()
        ]
        routes.sort(key=lambda r: (-r["p95_ms"], -r["count"], r["route"], r["method"]))
        queries: list[dict[str, Any]] = []
        for fingerprint, tally in self.queries.items():
            operation, table = self.query_info[fingerprint]
            queries.append(
                {
                    "fingerprint": fingerprint,
                    "operation": operation,
                    "table": table,
                    "count": len(tally.durations),
                    "total_ms": round(sum(tally.durations), 3),
                    "mean_ms": round(sum(tally.durations) / len(tally.durations), 3),
                    "max_ms": round(max(tally.durations), 3),
                    "routes": dict(sorted(self.query_routes[fingerprint].items())),
                }
            )
        queries.sort(key=lambda q: (-q["total_ms"], q["fingerprint"]))
        errors: list[dict[str, Any]] = [
            {"route": route, "status": status, "count": count}
            for (route, status), count in self.statuses.items()
        ]
        errors.sort(key=lambda e: (-e["count"], e["route"], e["status"]))
        return {
            "lines": {
                "total": self.lines,
                "requests": self.requests,
                "slow_queries": self.slow_query_lines,
                "other": self.other,
                "malformed": self.malformed,
            },
            "malformed_examples": self.malformed_examples,
            "routes": routes[:limit],
            "offset_ranges": _grouped(self.offset_ranges, OFFSET_RANGE_ORDER),
            "page_sizes": _grouped(self.page_sizes, PAGE_SIZE_ORDER),
            "modes": _grouped(self.modes, {m: i for i, m in enumerate(catalogue.PAGINATION_MODES)}),
            "errors": errors,
            "slow_queries": queries[:limit],
        }


def _grouped(groups: dict[str, Tally], order: dict[str, int]) -> list[dict[str, Any]]:
    """One row per label in catalogue order (unknown labels last), with query-time p95."""
    rows = []
    for label in sorted(groups, key=lambda k: (order.get(k, len(order)), k)):
        tally = groups[label]
        query = latency_summary(tally.query_durations)
        rows.append({"label": label, **tally.summary(), "query_p95_ms": query["p95_ms"]})
    return rows


def _label(record: dict[str, Any], name: str, default: str) -> str:
    value = record.get(name)
    return value if isinstance(value, str) and value else default


def _int(value: object) -> int | None:
    """``value`` if it is a JSON integer (not a boolean), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float | None:
    """``value`` as a float if it is a JSON number (not a boolean), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def render_text(report: dict[str, Any]) -> str:
    """The report as tables."""
    lines = report["lines"]
    head = (
        f"{lines['total']} lines: {lines['requests']} requests, {lines['slow_queries']} slow "
        f"queries, {lines['other']} other, {lines['malformed']} malformed (skipped)"
    )
    latency = ["count", "errors", "p50_ms", "p95_ms", "max_ms"]
    grouped = [*latency, "query_p95_ms"]
    parts = [
        head,
        "",
        format_table(
            "Slowest routes (by p95)",
            ["method", "route", *latency],
            [[r["method"], r["route"], *(r[k] for k in latency)] for r in report["routes"]],
        ),
    ]
    for key, title in (
        ("offset_ranges", "Paginated requests by offset range"),
        ("page_sizes", "Paginated requests by page size"),
        ("modes", "Paginated requests by mode"),
    ):
        rows = [[g["label"], *(g[k] for k in grouped)] for g in report[key]]
        parts += ["", format_table(title, ["label", *grouped], rows)]
    parts += [
        "",
        format_table(
            "Errors by route and status",
            ["route", "status", "count"],
            [[e["route"], e["status"], e["count"]] for e in report["errors"]],
        ),
        "",
        format_table(
            "Slow queries by total time",
            ["fingerprint", "operation", "table", "count", "total_ms", "mean_ms", "max_ms"],
            [
                [
                    _short(q["fingerprint"]),
                    q["operation"],
                    q["table"],
                    q["count"],
                    q["total_ms"],
                    q["mean_ms"],
                    q["max_ms"],
                ]
                for q in report["slow_queries"]
            ],
        ),
    ]
    for example in report["malformed_examples"]:
        parts.append(f"skipped {example['source']}:{example['line']}: {example['reason']}")
    return "\n".join(parts) + "\n"


def _short(text: str, width: int = 70) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def open_input(name: str) -> IO[str]:
    """A text stream for a path ('-' is stdin; .gz files are decompressed)."""
    if name == "-":
        return sys.stdin
    if name.endswith(".gz"):
        return gzip.open(name, "rt", encoding="utf-8", errors="replace")
    return open(name, encoding="utf-8", errors="replace")  # read_lines closes it


def read_lines(names: Iterable[str]) -> Iterator[tuple[str, int, str]]:
    """(source, line number, text) for every line of every input, in order."""
    for name in names:
        stream = open_input(name)
        try:
            for number, text in enumerate(stream, start=1):
                yield ("stdin" if name == "-" else name), number, text
        finally:
            if stream is not sys.stdin:
                stream.close()


def analyze(names: Iterable[str], progress: Progress | None = None) -> Analysis:
    """Read every input and count what it holds."""
    analysis = Analysis()
    for source, number, text in read_lines(names):
        analysis.add_line(source, number, text)
        if progress is not None and analysis.lines % 1000 == 0:
            progress.update(analysis.lines, f"{analysis.requests} requests")
    if progress is not None:
        progress.update(analysis.lines, f"{analysis.requests} requests", force=True)
        progress.done()
    return analysis


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.analyze_logs",
        description="Report slowest routes, latency by offset range and page size, errors by "
        "route and status, and slow-query fingerprints ranked by total time, from the API's "
        "JSON logs (LOG_FORMAT=json).",
    )
    parser.add_argument(
        "files", nargs="*", default=["-"], help="log files (.gz too); '-' or none reads stdin"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--top", type=int, default=20, help="rows in the route and slow-query lists (0: all)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    args = parser.parse_args(argv)
    if args.top < 0:
        parser.error("--top must be 0 (all) or more")
    for name in args.files:
        if name != "-" and not Path(name).is_file():
            parser.error(f"{name}: no such file")

    analysis = analyze(args.files, Progress("lines", quiet=args.quiet))
    if analysis.malformed:
        first = analysis.malformed_examples[0]
        print(
            f"skipped {analysis.malformed} malformed line(s); first at "
            f"{first['source']}:{first['line']} ({first['reason']})",
            file=sys.stderr,
        )
    if analysis.lines and analysis.malformed == analysis.lines:
        print(
            "error: no JSON log line found: run the API with LOG_FORMAT=json",
            file=sys.stderr,
        )
        return 1
    report = analysis.report(args.top)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
