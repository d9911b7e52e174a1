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
   the first step it is absent.
4. Per SLO, its bad and all requests summed over the range give the error
   ratio; burn rate = ratio / budget; budget spent = burn x range / period.

Windows longer than the recording (say 3d and 30d over one day) hold only what
was recorded, as they would on a Prometheus that started with the recording.
Imported series carry no staleness markers (neither do promtool's backfills):
a series that stops is still read for the lookback delta (5m), where a live
Prometheus would drop it at once.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genonaut_monitoring import config, openmetrics
from genonaut_monitoring.alerts.model import Alert, Record, seconds
from genonaut_monitoring.openmetrics import Recorded
from genonaut_monitoring.processes import Process, StackError, find_binary, free_port

Labels = tuple[tuple[str, str], ...]


class BacktestError(Exception):
    """The replay failed; the message says where (and the Prometheus log when it helps)."""


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
    # Scraped series the alert reads (through recording rules too) that the recording lacks:
    # a counter never incremented, or a job that was not recorded.
    missing: list[str] = field(default_factory=list)


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


# --- the replay --------------------------------------------------------------------------


class Replay:
    """A real Prometheus over a TSDB built from a recording, in ``workdir``."""

    def __init__(self, workdir: Path, cfg: config.Config) -> None:
        self.workdir, self.cfg = workdir, cfg
        self.data = workdir / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Process | None = None
        # Series names in the recording.
        self.names: set[str] = set()

    def run_tool(self, args: list[str], what: str) -> None:
        import subprocess

        result = subprocess.run(
            [find_binary(args[0]), *args[1:]], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-2000:]
            raise BacktestError(f"{what}: {' '.join(args)} failed:\n{output}")

    def load(self, recording: Path) -> tuple[float, float]:
        """Blocks from ``recording``; returns the first and last timestamp."""
        plain = self.workdir / "recording.om"
        first, last = _copy_plain(recording, plain, self.names)
        self.run_tool(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(plain),
             str(self.data)],
            f"{recording}",
        )  # fmt: skip
        plain.unlink()
        return first, last

    def write_config(self, rule_files: dict[str, bytes]) -> Path:
        from genonaut_monitoring.alerts.render import dump

        for relative, content in rule_files.items():
            target = self.workdir / "rules" / Path(relative).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        path = self.workdir / "prometheus.yml"
        interval = self.cfg.intervals.evaluation_interval
        # No scrape jobs: the TSDB holds all the data there is.
        settings = {"evaluation_interval": interval, "scrape_interval": interval}
        path.write_text(dump({"global": settings, "rule_files": ["rules/*.yml"]}))
        return path

    def start(self) -> None:
        args = [
            find_binary("prometheus"),
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.data}",
            # Retention counts back from the newest block; the recording may be old.
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        log = self.workdir / "prometheus.log"
        self.process = Process("prometheus", args, log, {}, self.workdir)
        self.process.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not self.process.alive():
                raise BacktestError(f"prometheus exited at start:\n{self.process.tail()}")
            try:
                if _get(f"{self.url}/-/ready", {}).status_code == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise BacktestError(f"prometheus did not get ready in 60s:\n{self.process.tail()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def backfill(self, level: Sequence[Record], start: float, end: float, index: int) -> None:
        """Evaluate ``level``'s recording rules over the range; add their series; restart.

        One range query per rule at the evaluation interval: the instants and values a
        live Prometheus would have recorded (``promtool tsdb create-blocks-from rules``
        does the same in one query per two-hour block, which is far slower over days).
        """
        step = seconds(self.cfg.intervals.evaluation_interval)
        found: dict[tuple[str, Labels], Recorded] = {}
        for record in level:
            for item in self.query_range(record.expr, start, end, step):
                labels = {k: v for k, v in item["metric"].items() if k != "__name__"}
                labels.update(record.labels)
                key = (record.name, tuple(sorted(labels.items())))
                one = found.setdefault(key, Recorded(record.name, labels))
                one.samples.extend((float(at), float(value)) for at, value in item["values"])
        self.stop()
        if found:
            path = self.workdir / f"backfill-{index}.om"
            openmetrics.write(path, found.values())
            names = ", ".join(sorted({r.name for r in level}))
            self.run_tool(
                ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(path),
                 str(self.data)],
                f"importing the backfilled recording rules {names}",
            )  # fmt: skip
            path.unlink()
        self.start()

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query, in pieces of at most 10,000 steps (Prometheus' limit is 11,000)."""
        found: dict[Labels, dict[str, Any]] = {}
        piece = 10_000 * step
        at = start
        while at <= end:
            upto = min(end, at + piece - step)
            params = {"query": expr, "start": at, "end": upto, "step": step}
            for item in self._api("/api/v1/query_range", params):
                key = tuple(sorted(item["metric"].items()))
                found.setdefault(key, {"metric": item["metric"], "values": []})
                found[key]["values"] += item["values"]
            at = upto + step
        return list(found.values())

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        return list(self._api("/api/v1/query", {"query": expr, "time": at}))

    def _api(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        response = _get(f"{self.url}{path}", params)
        body = response.json()
        if body.get("status") != "success":
            raise BacktestError(f"Prometheus refused {params['query']!r}: {body.get('error')}")
        return list(body["data"]["result"])


def _get(url: str, params: dict[str, Any]) -> Any:
    import requests

    try:
        return requests.get(url, params=params, timeout=120)
    except requests.RequestException as exc:
        raise OSError(str(exc)) from exc


def _copy_plain(recording: Path, target: Path, names: set[str]) -> tuple[float, float]:
    """Decompress ``recording`` to ``target``; the first and last timestamp in it.

    ``names`` collects the series names the recording holds.
    """
    first, last = float("inf"), float("-inf")
    try:
        with openmetrics.open_text(recording) as source, target.open("w") as out:
            for line in source:
                out.write(line)
                if not line.startswith("#"):
                    at = float(line.rsplit(" ", 1)[1])
                    first, last = min(first, at), max(last, at)
                    names.add(line.split("{", 1)[0].split(" ", 1)[0])
    except (OSError, EOFError, ValueError, IndexError) as exc:
        raise BacktestError(f"{recording}: cannot be read as OpenMetrics: {exc}") from None
    if first > last:
        raise BacktestError(f"{recording}: holds no samples")
    return first, last


# --- rules in levels, alerts with `for` --------------------------------------------------


def _selected(expr: str) -> set[str]:
    import promql_parser as pp

    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, pp.VectorSelector) and node.name:
            found.add(node.name)

    pp.walk(pp.parse(expr), visit)
    return found


def inputs(expr: str, records: Sequence[Record]) -> set[str]:
    """The scraped series ``expr`` reads, following recording rules to what they read."""
    by_name: dict[str, list[Record]] = {}
    for record in records:
        by_name.setdefault(record.name, []).append(record)
    found: set[str] = set()
    todo, seen = list(_selected(expr)), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in by_name:
            todo += [n for r in by_name[name] for n in _selected(r.expr)]
        else:
            found.add(name)
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
    missing = sorted(inputs(alert.expr, records) - replay.names)
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
    if keep is not None:
        shutil.rmtree(keep, ignore_errors=True)
        keep.mkdir(parents=True)
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
