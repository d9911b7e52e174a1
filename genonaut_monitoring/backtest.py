"""``genonaut-monitoring backtest``: how the generated alerts would have fired on recorded history.

    genonaut-monitoring backtest tests/fixtures/backtest/incidents.om.xz
    genonaut-monitoring backtest day.om.xz --config monitoring.toml --json report.json

A live Prometheus evaluates rules only from the moment it starts, so history
is replayed another way, with the real tools:

1. ``promtool tsdb create-blocks-from openmetrics`` turns the recording (see
   ``genonaut-monitoring record``) into TSDB blocks, and a real Prometheus
   starts on them with the generated rule files.
2. Recording rules are backfilled over the recorded range: each runs as one
   range query at the evaluation interval, which gives the values a live
   Prometheus would have recorded at those instants, and the samples join the
   TSDB as the recording did (``promtool tsdb create-blocks-from rules`` works
   the same way, one query per two-hour block). A rule that reads another
   rule's series needs that series first, so rules go in levels, and
   Prometheus restarts on the new blocks before the next level.
3. Each alert's expression is queried over the range at the evaluation
   interval (a range query is an instant query per step, as rule evaluation
   is) and ``for`` is applied as Prometheus applies it: pending from the first
   step its series is present, firing once present for ``for``, resolved at
   the first step it is absent. An alert that reads nothing the recording holds
   is listed, not evaluated (an ``absent()`` alert would fire all along).
4. Per SLO, its bad and all requests summed over the range give the error
   ratio; burn rate = ratio / budget; budget spent = burn x range / period.

Windows longer than the recording (say 3d and 30d over one day) hold only what
was recorded, as they would on a Prometheus that started with the recording.
Imported series carry no staleness markers (neither do promtool's backfills):
a series that stops is still read for the lookback delta (5m), where a live
Prometheus would drop it at once.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genonaut_monitoring import config
from genonaut_monitoring.alerts.model import Alert, Record, seconds
from genonaut_monitoring.processes import StackError
from genonaut_monitoring.replay import BacktestError, Replay

__all__ = ["BacktestError", "Replay", "Report", "run_backtest"]


@dataclass(frozen=True)
class Firing:
    """One time an alert fired: its labels, when it started firing and when it resolved."""

    labels: dict[str, str]
    start: float
    # None: still firing when the recording ends.
    end: float | None

    def duration(self, until: float) -> float:
        return (self.end if self.end is not None else until) - self.start


@dataclass(frozen=True)
class AlertResult:
    name: str
    severity: str
    for_: str
    firings: list[Firing]
    # Selectors of scraped series the alert reads (through recording rules too) that match
    # nothing in the recording: a counter never incremented, or a job not recorded.
    missing: list[str] = field(default_factory=list)
    # False when it reads nothing the recording holds: then it was not evaluated.
    covered: bool = True


@dataclass(frozen=True)
class BudgetResult:
    """What one SLO spent over the recording."""

    slo: str
    sli: str
    objective: float
    requests: float
    bad: float
    # None when the recording holds no request the SLO counts.
    error_ratio: float | None
    burn_rate: float | None
    # Share of the period's budget the recording spent (burn rate x range / period).
    budget_spent: float | None


@dataclass
class Report:
    source: str
    start: float
    end: float
    step: float
    period: str
    alerts: list[AlertResult] = field(default_factory=list)
    budgets: list[BudgetResult] = field(default_factory=list)
    elapsed: float = 0.0


# --- rules in levels, alerts with `for` --------------------------------------------------


def _selectors(expr: str) -> dict[str, str | None]:
    """Every vector selector in ``expr`` as PromQL text, with its metric name."""
    import promql_parser as pp

    found: dict[str, str | None] = {}

    def visit(node: Any) -> None:
        if isinstance(node, pp.VectorSelector):
            found[str(node)] = node.name

    pp.walk(pp.parse(expr), visit)
    return found


def _selected(expr: str) -> set[str]:
    return {name for name in _selectors(expr).values() if name}


def inputs(expr: str, records: Sequence[Record]) -> set[str]:
    """The scraped-series selectors ``expr`` reads, following recording rules to theirs."""
    by_name: dict[str, list[Record]] = {}
    for record in records:
        by_name.setdefault(record.name, []).append(record)
    found: set[str] = set()
    todo, seen = [expr], set()
    while todo:
        for text, name in _selectors(todo.pop()).items():
            if name in by_name:
                if name not in seen:
                    seen.add(name)
                    todo += [r.expr for r in by_name[name]]
            else:
                found.add(text)
    return found


def levels(records: Sequence[Record]) -> list[list[Record]]:
    """``records`` in backfill order: each level reads only raw series and earlier levels."""
    names = {r.name for r in records}
    reads = {index: _selected(r.expr) & names for index, r in enumerate(records)}
    out: list[list[Record]] = []
    done: set[str] = set()
    left = dict(enumerate(records))
    while left:
        ready = [i for i, r in left.items() if reads[i] <= done and r.name not in reads[i]]
        if not ready:
            raise BacktestError(f"recording rules read each other in a loop: {sorted(names)}")
        out.append([left.pop(i) for i in ready])
        done |= {r.name for r in out[-1]}
    return out


def firings(
    present: Sequence[float], start: float, end: float, step: float, hold: float
) -> Iterator[tuple[float, float | None]]:
    """(fired, resolved) times of an alert whose series is present at ``present`` steps.

    As Prometheus: active from the first step present; firing at the first step at
    least ``hold`` after that; resolved (and reset) at the first step absent.
    """
    steps = {round((at - start) / step) for at in present}
    active: float | None = None
    fired: float | None = None
    for index in range(round((end - start) / step) + 1):
        at = start + index * step
        if index in steps:
            active = at if active is None else active
            if fired is None and at - active >= hold:
                fired = at
        else:
            if fired is not None:
                yield fired, at
            active = fired = None
    if fired is not None:
        yield fired, None


def evaluate(
    replay: Replay, alert: Alert, records: Sequence[Record], start: float, end: float, step: float
) -> AlertResult:
    """The alert's firings over the range, unless the recording holds none of its inputs.

    Such an alert is reported, not evaluated: an absent() alert would fire at every
    step about a job that was never recorded (the PostgreSQL exporter of a recording
    of the API), any other could not fire at all.
    """
    span = f"{round(end - start + step)}s"
    needed = sorted(inputs(alert.expr, records))
    missing = [
        selector
        for selector in needed
        if not replay.query(f"count(present_over_time({selector}[{span}]))", end)
    ]
    if needed and len(missing) == len(needed):
        return AlertResult(alert.name, alert.severity, alert.for_, [], missing, covered=False)
    result = replay.query_range(alert.expr, start, end, step)
    found = []
    for item in result:
        # Alerting rules drop the metric name, as `x > 1` keeps it.
        metric = {k: v for k, v in item["metric"].items() if k != "__name__"}
        labels = {**metric, **alert.labels, "severity": alert.severity}
        times = [float(at) for at, _ in item["values"]]
        for fired, resolved in firings(times, start, end, step, seconds(alert.for_)):
            found.append(Firing(labels, fired, resolved))
    found.sort(key=lambda f: (f.start, sorted(f.labels.items())))
    return AlertResult(alert.name, alert.severity, alert.for_, found, missing)


def budgets(replay: Replay, cfg: config.Config, start: float, end: float) -> list[BudgetResult]:
    from genonaut_monitoring.alerts import slo as s

    base, step = s.base_window(cfg), seconds(cfg.intervals.evaluation_interval)
    span = f"{round(end - start + step)}s"
    out = []
    for objective in cfg.slos:
        where = f'{{slo="{objective.name}"}}'

        def total(name: str, where: str = where) -> float:
            found = replay.query(f"sum(sum_over_time({name}{where}[{span}]))", end)
            return float(found[0]["value"][1]) * step if found else 0.0

        everything, bad = total(s.requests_rate(base)), total(s.errors_rate(base))
        ratio = bad / everything if everything > 0 else None
        burn = ratio / s.budget(objective) if ratio is not None else None
        spent = (
            burn * (end - start) / seconds(cfg.slo_alerting.period) if burn is not None else None
        )
        out.append(
            BudgetResult(
                objective.name, objective.sli, objective.objective, everything, bad, ratio, burn,
                spent,
            )
        )  # fmt: skip
    return out


@contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    """A temporary folder, or ``keep`` (new or empty: nothing of the user's is overwritten)."""
    if keep is not None:
        if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
            raise BacktestError(f"--workdir {keep}: choose a new or empty folder")
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="genonaut-backtest-") as folder:
        yield Path(folder)


def run_backtest(recording: Path, cfg: config.Config, keep: Path | None = None) -> Report:
    """Replay ``recording`` with the rules generated from ``cfg``."""
    from genonaut_monitoring import alerts

    began = time.monotonic()
    if not recording.is_file():
        raise BacktestError(
            f"{recording}: no such file; record one with genonaut-monitoring record"
        )
    step = seconds(cfg.intervals.evaluation_interval)
    with _workdir(keep) as workdir:
        replay = Replay(workdir, cfg)
        first, last = replay.load(recording)
        replay.write_config(alerts.rule_outputs(cfg, alerts.dashboard_panel_ids(cfg)))
        try:
            replay.start()
            start, end = float(int(first)), float(int(last))
            records = [r for g in alerts.groups(cfg) for r in g.records]
            for index, level in enumerate(levels(records)):
                replay.backfill(level, start, end, index)
            report = Report(str(recording), start, end, step, cfg.slo_alerting.period)
            for alert in alerts.all_alerts(cfg):
                report.alerts.append(evaluate(replay, alert, records, start, end, step))
            report.budgets = budgets(replay, cfg, start, end)
        except StackError as exc:
            raise BacktestError(str(exc)) from None
        finally:
            replay.stop()
    report.elapsed = time.monotonic() - began
    return report
