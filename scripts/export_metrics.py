#!/usr/bin/env python3
"""Export series from Prometheus to CSV or JSON: chosen expressions or every dashboard panel.

    python -m scripts.export_metrics --start -1h --csv metrics.csv
    python -m scripts.export_metrics --query 'rate(http_requests_total[1m])' --json out.json
    python -m scripts.export_metrics --dashboards out/grafana/dashboards --var route=/api/v1/content

CSV is long format, one sample a row: dashboard, panel_id, panel, ref_id, expr
(as run, variables substituted), series (the panel's legend), labels (JSON),
timestamp (Unix seconds), value. Exit status: 0 exported, 1 a query or a
dashboard failed (nothing is written), 2 Prometheus unreachable or bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a file (python scripts/export_metrics.py): make the project importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genonaut_monitoring.openmetrics import format_value
from scripts import _grafana_json as gj
from scripts._promapi import (
    Prometheus,
    PrometheusUnreachable,
    QueryFailed,
    Series,
    Window,
    add_range_options,
    join_time_options,
    parse_duration,
    rfc3339,
    scrape_interval_of,
)

ROOT = Path(__file__).resolve().parent.parent
CSV_COLUMNS = (
    "dashboard",
    "panel_id",
    "panel",
    "ref_id",
    "expr",
    "series",
    "labels",
    "timestamp",
    "value",
)


def _json_value(value: float) -> float | str:
    # JSON has no NaN or infinity; those stay strings, as in Prometheus' own API.
    return value if math.isfinite(value) else format_value(value)


def _timestamp(t: float) -> int | float:
    return int(t) if t == int(t) else t


class Export:
    """Collected results: one entry per query with its series."""

    def __init__(self, prometheus: str, window: Window) -> None:
        self.prometheus = prometheus
        self.window = window
        self.entries: list[dict[str, Any]] = []

    def add(self, source: dict[str, Any], legend_format: str, series: list[Series]) -> None:
        self.entries.append(
            {
                **source,
                "series": [
                    {
                        "labels": dict(sorted(s.labels.items())),
                        "legend": gj.legend(legend_format, s.labels),
                        "values": s.values,
                    }
                    for s in series
                ],
            }
        )

    def rows(self) -> int:
        return sum(len(s["values"]) for e in self.entries for s in e["series"])

    def csv_text(self) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for entry in self.entries:
            for series in entry["series"]:
                labels = json.dumps(series["labels"], sort_keys=True, separators=(",", ":"))
                for t, v in series["values"]:
                    writer.writerow(
                        (
                            entry["dashboard"],
                            entry["panel_id"],
                            entry["panel"],
                            entry["ref_id"],
                            entry["expr"],
                            series["legend"],
                            labels,
                            _timestamp(t),
                            format_value(v),
                        )
                    )
        return buffer.getvalue()

    def json_text(self) -> str:
        document = {
            "prometheus": self.prometheus,
            "start": rfc3339(self.window.start),
            "end": rfc3339(self.window.end),
            "step_seconds": self.window.step,
            "queries": [
                {
                    **entry,
                    "series": [
                        {
                            **s,
                            "values": [[_timestamp(t), _json_value(v)] for t, v in s["values"]],
                        }
                        for s in entry["series"]
                    ],
                }
                for entry in self.entries
            ],
        }
        return json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n"


def write_atomic(target: str, text: str) -> None:
    """Write ``text`` to ``target`` (``-`` is stdout) so readers never see half a file."""
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.export_metrics",
        description="Export series from Prometheus over a time range to CSV (long format: one "
        "sample a row) and/or JSON: the expressions given with --query, or every query of "
        "every dashboard panel (Grafana dashboard JSON, template variables resolved).",
        epilog="Exit status: 0 exported; 1 a query or dashboard failed (nothing written); "
        "2 Prometheus unreachable or bad arguments.",
    )
    add_range_options(parser)
    parser.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="EXPR",
        help="a PromQL expression to export; repeat for several (default: the dashboards)",
    )
    parser.add_argument(
        "--dashboards",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="dashboard JSON file or folder; repeatable "
        f"(default {gj.DEFAULT_DASHBOARDS.relative_to(ROOT)} when no --query is given)",
    )
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a dashboard variable; repeat a name for several values "
        "(default: the saved selection, else All, else its first value)",
    )
    parser.add_argument("--csv", metavar="FILE", help="write CSV here (- for stdout)")
    parser.add_argument("--json", metavar="FILE", help="write JSON here (- for stdout)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_time_options(sys.argv[1:] if argv is None else argv))
    if not args.csv and not args.json:
        args.csv = "-"
    if args.csv == "-" and args.json == "-":
        parser.error("only one of --csv and --json can go to stdout")
    progress: Callable[[str], None] = (
        (lambda _m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    )
    try:
        window = Window.parse(args.start, args.end, args.step)
        overrides = gj.parse_vars(args.var)
        scrape_option = parse_duration(args.scrape_interval) if args.scrape_interval else None
        paths = args.dashboards or ([] if args.query else [gj.DEFAULT_DASHBOARDS])
        boards = gj.load_dashboards(paths) if paths else []
    except ValueError as exc:
        parser.error(str(exc))
    except gj.DashboardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    prom = Prometheus(args.prometheus)
    export = Export(prom.url, window)
    failures: list[str] = []
    began = time.monotonic()
    try:
        version = prom.check()
        progress(
            f"Prometheus {version} at {prom.url}; {rfc3339(window.start)} .. "
            f"{rfc3339(window.end)}, step {window.step:g}s"
        )
        interval = scrape_interval_of(prom, scrape_option)
        scope = {
            **gj.builtins(window, interval),
            **{name: gj.Value(tuple(values)) for name, values in overrides.items()},
        }
        for number, raw_expr in enumerate(args.query, start=1):
            source = {"dashboard": "", "panel_id": "", "panel": "", "ref_id": f"Q{number}"}
            expr = gj.interpolate(raw_expr, scope)
            try:
                series = prom.query_range(expr, window)
            except QueryFailed as exc:
                failures.append(f"--query {expr!r}: {exc.error}")
                continue
            export.add({**source, "expr": expr}, "", series)
            progress(f"query {number}: {len(series)} series  {expr}")
        for board in boards:
            try:
                variables = gj.resolve_variables(board, prom, window, overrides)
            except QueryFailed as exc:
                failures.append(exc.error)
                continue
            queries = gj.panel_queries(board, variables, window, interval)
            progress(f"dashboard {board.uid} ({board.path.name}): {len(queries)} queries")
            for query in queries:
                try:
                    series = gj.run(prom, query, window)
                except QueryFailed as exc:
                    failures.append(f"{exc.error}\n    expression: {query.expr}")
                    continue
                export.add(
                    {
                        "dashboard": board.uid,
                        "panel_id": query.panel.id,
                        "panel": query.panel.title,
                        "ref_id": query.target.ref_id,
                        "expr": query.expr,
                    },
                    query.target.legend_format,
                    series,
                )
                progress(f"  {query.panel.title} [{query.target.ref_id}]: {len(series)} series")
    except PrometheusUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if failures:
        print(f"error: {len(failures)} queries failed; nothing was written:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    if args.csv:
        write_atomic(args.csv, export.csv_text())
    if args.json:
        write_atomic(args.json, export.json_text())
    targets = " and ".join(t for t in (args.csv, args.json) if t and t != "-") or "stdout"
    progress(
        f"exported {len(export.entries)} queries, {export.rows()} samples to {targets} "
        f"in {time.monotonic() - began:.2f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
