"""``genonaut-monitoring record``: export series from a running Prometheus to an OpenMetrics file.

    genonaut-monitoring record --prometheus http://127.0.0.1:9090 --start -24h --out day.om.xz
    genonaut-monitoring record --start -24m --speedup 60 --start-at 2024-01-02T00:00:00Z \\
        --out fast-day.om.xz

It reads the raw samples (``name{...}[range]`` instant queries, an hour at a
time), not a resampled range query, so the file holds what Prometheus scraped.
By default it takes only what the generated rules read (the metric names in
every alert and recording rule, for the configured jobs), which keeps a day of
history small; ``--match`` picks other series. ``--speedup`` re-times a short
run as a longer one (see :func:`genonaut_monitoring.openmetrics.retime`).
``genonaut-monitoring backtest FILE`` replays the file.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from genonaut_monitoring import config, openmetrics
from genonaut_monitoring.openmetrics import Recorded

# One query reads at most this much history: bounded memory and query size on a busy server.
CHUNK_SECONDS = 3600
_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class RecordError(Exception):
    """The recording cannot be made; the message says why and what to do."""


def parse_time(text: str, now: float) -> float:
    """Unix seconds from ``now``, ``-1h`` style offsets, Unix seconds or RFC 3339."""
    text = text.strip()
    if text == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative:
        return now - float(relative[1]) * _UNITS[relative[2]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(
            f"{text!r} is not a time: use now, -24h, Unix seconds or 2024-01-02T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


TIME_OPTIONS = ("--start", "--end", "--start-at")


def join_time_options(argv: list[str]) -> list[str]:
    """Write ``--start -1h`` as ``--start=-1h``: argparse would take ``-1h`` for an option."""
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] in TIME_OPTIONS and arg.startswith("-"):
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return joined


def rule_inputs(cfg: config.Config) -> list[str]:
    """The series every generated rule reads from scrapes (recorded series left out)."""
    import promql_parser as pp

    from genonaut_monitoring import alerts

    recorded = set(alerts.recorded_series(cfg))
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, pp.VectorSelector) and node.name and node.name not in recorded:
            names.add(node.name)

    for group in alerts.groups(cfg):
        for rule in group.rules:
            pp.walk(pp.parse(rule.expr), visit)
    return sorted(names)


def default_selector(cfg: config.Config) -> str:
    """Every series of the configured jobs (services and the PostgreSQL exporter) that some
    rule reads."""
    from genonaut_monitoring.alerts.promql import regex_alternation

    jobs = [*cfg.jobs, *([cfg.postgres.job] if cfg.postgres.targets else [])]
    names, wanted = regex_alternation(rule_inputs(cfg)), regex_alternation(jobs)
    return f'{{__name__=~"{names}", job=~"{wanted}"}}'


def fetch(url: str, selector: str, start: float, end: float) -> list[Recorded]:
    """Every raw sample of ``selector`` with ``start < t <= end``, series by series."""
    import requests

    found: dict[tuple[tuple[str, str], ...], Recorded] = {}
    chunk_end = end
    while chunk_end > start:
        length = min(CHUNK_SECONDS, chunk_end - start)
        query = f"{selector}[{length * 1000:.0f}ms]"
        params: dict[str, str | float] = {"query": query, "time": chunk_end}
        try:
            response = requests.get(f"{url}/api/v1/query", params=params, timeout=120)
        except requests.ConnectionError:
            raise RecordError(f"cannot reach Prometheus at {url}; is it running?") from None
        body: dict[str, Any] = response.json() if response.content else {}
        if response.status_code != 200 or body.get("status") != "success":
            raise RecordError(f"Prometheus refused {query!r}: {body.get('error', response.text)}")
        for item in body["data"]["result"]:
            labels = dict(item["metric"])
            name = labels.pop("__name__")
            key = (("__name__", name), *sorted(labels.items()))
            one = found.setdefault(key, Recorded(name, labels))
            # Chunks arrive newest first; prepend to keep every series in time order.
            one.samples[:0] = [(float(at), float(value)) for at, value in item["values"]]
        chunk_end -= length
    return list(found.values())


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "record",
        help="export series from a running Prometheus to an OpenMetrics file for backtest",
        description="Export raw samples from any running Prometheus to an OpenMetrics file "
        "(.om, .om.gz or .om.xz) that `genonaut-monitoring backtest` replays. By default only "
        "the series the generated rules read, for the configured jobs.",
    )
    from genonaut_monitoring.cli import add_config_options

    add_config_options(parser)
    parser.add_argument(
        "--prometheus",
        default=f"http://127.0.0.1:{config.CONFIG.ports.prometheus}",
        help="Prometheus base URL (default: %(default)s)",
    )
    parser.add_argument("--start", default="-24h", help="first time: -24h, Unix s or RFC 3339")
    parser.add_argument("--end", default="now", help="last time (default: now)")
    parser.add_argument(
        "--match", help="a series selector instead of the rules' inputs, e.g. '{job=\"api\"}'"
    )
    parser.add_argument(
        "--speedup",
        type=float,
        default=1.0,
        help="the run was N times faster than the history it stands for: stretch time and "
        "counters N times (default 1: as recorded)",
    )
    parser.add_argument("--start-at", help="move the first sample to this time (RFC 3339)")
    parser.add_argument("--out", type=Path, required=True, help="file to write (.om, .gz, .xz)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from genonaut_monitoring.cli import load_config
    from genonaut_monitoring.settings import SettingsError

    try:
        cfg = load_config(args.config, args.profile)
        now = time.time()
        start, end = parse_time(args.start, now), parse_time(args.end, now)
        if end <= start:
            raise RecordError(f"--end ({args.end}) must come after --start ({args.start})")
        selector = args.match or default_selector(cfg)
        series = fetch(args.prometheus.rstrip("/"), selector, start, end)
        if not series:
            raise RecordError(
                f"no samples of {selector} between --start and --end; check the time range "
                "and that Prometheus scrapes the configured jobs"
            )
        if args.speedup != 1.0 or args.start_at:
            at = parse_time(args.start_at, now) if args.start_at else None
            series = openmetrics.retime(series, args.speedup, at)
        openmetrics.write(args.out, series)
    except (RecordError, SettingsError) as exc:
        print(f"record failed: {exc}", file=sys.stderr)
        return 1
    samples = sum(len(s.samples) for s in series)
    first, last = openmetrics.span(series)
    print(
        f"wrote {len(series)} series, {samples} samples "
        f"({_iso(first)} to {_iso(last)}) to {args.out}"
    )
    return 0


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
