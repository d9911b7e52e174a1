"""The backtest's tables (per alert: how often, how long, when; per SLO: budget spent) and command.

    genonaut-monitoring backtest FILE [--config monitoring.toml] [--json report.json]

Imported by the command line of every install, so it imports the replay (and
with it the build's dependencies) only when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genonaut_monitoring.config import fmt_ratio

if TYPE_CHECKING:
    from genonaut_monitoring.backtest import AlertResult, Report


def to_data(report: Report) -> dict[str, Any]:
    """The report as JSON data: times in Unix seconds, durations in seconds."""
    return {
        "source": report.source,
        "start": report.start,
        "end": report.end,
        "step": report.step,
        "period": report.period,
        "elapsed_seconds": round(report.elapsed, 1),
        "alerts": [
            {
                "name": a.name,
                "severity": a.severity,
                "for": a.for_,
                "fired": len(a.firings),
                "missing": a.missing,
                "covered": a.covered,
                "firing_seconds": sum(f.duration(report.end) for f in a.firings),
                "firings": [
                    {"labels": f.labels, "start": f.start, "end": f.end} for f in a.firings
                ],
            }
            for a in report.alerts
        ],
        "budgets": [vars(b) for b in report.budgets],
    }


def _clock(at: float, report: Report) -> str:
    moment = datetime.fromtimestamp(at, UTC)
    days = report.end - report.start > 86400
    return moment.strftime("%m-%d %H:%M:%S" if days else "%H:%M:%S")


def _common(report: Report) -> dict[str, str]:
    """Labels every firing shares (the job, with one service): said once, not per line."""
    sets = [f.labels for a in report.alerts for f in a.firings]
    if not sets:
        return {}
    shared = dict(sets[0])
    for labels in sets[1:]:
        shared = {k: v for k, v in shared.items() if labels.get(k) == v}
    shared.pop("severity", None)
    return shared


def _alert_lines(alert: AlertResult, report: Report, common: dict[str, str]) -> list[str]:
    from genonaut_monitoring.alerts.model import duration

    total = sum(f.duration(report.end) for f in alert.firings)
    head = f"{alert.name:<32} {alert.severity:<9} {len(alert.firings):>5}  {duration(total):<10}"
    lines = []
    for index, firing in enumerate(alert.firings):
        end = _clock(firing.end, report) if firing.end is not None else "(still firing)"
        labels = " ".join(
            f"{k}={v}"
            for k, v in sorted(firing.labels.items())
            if k != "severity" and common.get(k) != v
        )
        when = f"{_clock(firing.start, report)}-{end} {labels}".rstrip()
        lines.append(f"{head if index == 0 else ' ' * len(head)}  {when}")
    return lines


def render(report: Report) -> str:
    """The report as text tables."""
    from genonaut_monitoring.alerts.model import duration

    span = report.end - report.start
    first = datetime.fromtimestamp(report.start, UTC).strftime("%Y-%m-%d %H:%M:%S")
    last = datetime.fromtimestamp(report.end, UTC).strftime("%Y-%m-%d %H:%M:%S")
    common = _common(report)
    out = [
        f"Backtest of {report.source}",
        f"  {first} to {last} UTC ({duration(span)}), rules evaluated every "
        f"{duration(report.step)}; windows longer than {duration(span)} hold only the recording.",
    ]
    if common:
        out.append("  Every firing has " + " ".join(f"{k}={v}" for k, v in sorted(common.items())))
    out += ["", f"{'Alert':<32} {'Severity':<9} {'Fired':>5}  {'Firing for':<10}  When (UTC)"]
    quiet = [a.name for a in report.alerts if a.covered and not a.firings]
    for alert in report.alerts:
        if alert.firings:
            out += _alert_lines(alert, report, common)
    if quiet:
        out += ["", f"Never fired: {', '.join(quiet)}."]
    for alert in report.alerts:
        if alert.covered and alert.missing:
            out.append(
                f"  {alert.name} reads {', '.join(alert.missing)}, which the recording lacks "
                "(never incremented, or not recorded)."
            )
    uncovered = [a for a in report.alerts if not a.covered]
    if uncovered:
        out += ["", "Not evaluated, the recording holds nothing they read:"]
        out += [f"  {a.name}: {', '.join(a.missing)}" for a in uncovered]
    out += [
        "",
        f"{'SLO':<24} {'Objective':>9} {'Requests':>10} {'Bad':>9} {'Error ratio':>11} "
        f"{'Burn rate':>9}  Budget spent (of {report.period})",
    ]
    for b in report.budgets:
        out.append(
            f"{b.slo:<24} {fmt_ratio(b.objective):>9} {_count(b.requests):>10} "
            f"{_count(b.bad):>9} {_share(b.error_ratio):>11} "
            f"{'-' if b.burn_rate is None else f'{b.burn_rate:.2f}x':>9}  {_share(b.budget_spent)}"
        )
    out += ["", f"Replayed in {report.elapsed:.1f}s."]
    return "\n".join(out) + "\n"


def _count(value: float) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "backtest",
        help="replay recorded history through the generated rules: what would have fired",
        description="Build a Prometheus TSDB from an OpenMetrics recording (genonaut-monitoring "
        "record), start a real Prometheus on it with the generated rules, backfill the "
        "recording rules, and report per alert how often, how long and when it would have "
        "fired, and per SLO the error budget spent. Needs prometheus and promtool.",
    )
    from genonaut_monitoring.cli import add_config_options

    parser.add_argument("recording", type=Path, help="OpenMetrics file (.om, .om.gz, .om.xz)")
    add_config_options(parser)
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the TSDB, rules and Prometheus log in this new or empty folder "
        "(default: a temporary one)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from genonaut_monitoring.backtest import BacktestError, run_backtest
    from genonaut_monitoring.builder import BuildError
    from genonaut_monitoring.cli import load_config
    from genonaut_monitoring.settings import SettingsError

    try:
        cfg = load_config(args.config, args.profile)
        report = run_backtest(args.recording, cfg, keep=args.workdir)
    except (BacktestError, SettingsError, BuildError) as exc:
        print(f"backtest failed: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(to_data(report), indent=2, sort_keys=True) + "\n")
    return 0
