"""A real Prometheus over a TSDB built from a recording: load, backfill, query, restart.

Used by :mod:`genonaut_monitoring.backtest`; see there for the method.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genonaut_monitoring import config, openmetrics
from genonaut_monitoring.alerts.model import Record, seconds
from genonaut_monitoring.openmetrics import Recorded
from genonaut_monitoring.processes import Process, find_binary, free_port

Labels = tuple[tuple[str, str], ...]


class BacktestError(Exception):
    """The replay failed; the message says where (and the Prometheus log when it helps)."""


class Replay:
    """A real Prometheus over a TSDB built from a recording, in ``workdir``."""

    def __init__(self, workdir: Path, cfg: config.Config) -> None:
        self.workdir, self.cfg = workdir, cfg
        self.data = workdir / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Process | None = None

    def run_tool(self, args: list[str], what: str) -> None:
        result = subprocess.run(
            [find_binary(args[0]), *args[1:]], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip()[-2000:]
            raise BacktestError(f"{what}: {' '.join(args)} failed:\n{output}")

    def load(self, recording: Path) -> tuple[float, float]:
        """Blocks from ``recording``; returns the first and last timestamp."""
        plain = self.workdir / "recording.om"
        first, last = _copy_plain(recording, plain)
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


def _copy_plain(recording: Path, target: Path) -> tuple[float, float]:
    """Decompress ``recording`` to ``target``; the first and last timestamp in it."""
    first, last = float("inf"), float("-inf")
    try:
        with openmetrics.open_text(recording) as source, target.open("w") as out:
            for line in source:
                out.write(line)
                if not line.startswith("#"):
                    at = float(line.rsplit(" ", 1)[1])
                    first, last = min(first, at), max(last, at)
    except (OSError, EOFError, ValueError, IndexError) as exc:
        raise BacktestError(f"{recording}: cannot be read as OpenMetrics: {exc}") from None
    if first > last:
        raise BacktestError(f"{recording}: holds no samples")
    return first, last
