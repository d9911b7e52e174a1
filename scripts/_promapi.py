"""A small client for Prometheus' HTTP query API, with time and duration parsing.

prom = Prometheus("http://127.0.0.1:9090")
window = Window.parse("-1h", "now", "auto")
series = prom.query_range('rate(http_requests_total[1m])', window)
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from genonaut_monitoring import config

DEFAULT_URL = f"http://127.0.0.1:{config.CONFIG.ports.prometheus}"
# Start the local stack, or point the scripts at another Prometheus.
UNREACHABLE_HINT = (
    "is Prometheus running? Start the local stack with `genonaut-monitoring up` (`make up`) "
    "(or `docker compose up prometheus`), or pass --prometheus URL"
)
# Prometheus refuses range queries with more points than this per series.
MAX_POINTS = 11_000
# The automatic step aims at about this many points per series, like a panel's width.
AUTO_POINTS = 300

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}


class PrometheusUnreachable(Exception):
    """Nothing answered at the Prometheus URL."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        super().__init__(f"cannot reach Prometheus at {url} ({reason}); {UNREACHABLE_HINT}")


class QueryFailed(Exception):
    """Prometheus answered a query with an error; ``error`` is its own message."""

    def __init__(self, expr: str, error: str) -> None:
        self.expr = expr
        self.error = error
        super().__init__(f"{error} (expression: {expr})")


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration (``1h30m``, ``15s``, ``500ms``) or a plain number."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration: write it like 15s, 5m, 1h30m or 500ms")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """A Prometheus duration for ``seconds``, in the largest unit that is exact."""
    millis = round(seconds * 1000)
    if millis <= 0:
        raise ValueError(f"a duration must be positive, not {seconds}")
    if millis % 1000:
        return f"{millis}ms"
    whole = millis // 1000
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def parse_time(text: str, now: float) -> float:
    """Unix seconds for ``now``, ``-1h``/``now-1h``, RFC3339 or a Unix timestamp."""
    text = text.strip()
    if text == "now":
        return now
    relative = text.removeprefix("now")
    if relative.startswith("-"):
        return now - parse_duration(relative[1:])
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use RFC3339 (2026-01-02T15:04:05Z), "
            "a relative time (-1h, now-30m), now, or Unix seconds"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


TIME_OPTIONS = ("--start", "--end")


def join_time_options(argv: list[str]) -> list[str]:
    """Write ``--start -1h`` as ``--start=-1h``: argparse takes ``-1h`` for an option."""
    joined: list[str] = []
    pending = None
    for arg in argv:
        if pending is not None:
            joined.append(f"{pending}={arg}")
            pending = None
        elif arg in TIME_OPTIONS:
            pending = arg
        else:
            joined.append(arg)
    if pending is not None:
        joined.append(pending)  # argparse reports the missing value
    return joined


def rfc3339(timestamp: float) -> str:
    """``timestamp`` as an RFC3339 UTC string (to the millisecond when not whole)."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    spec = "seconds" if timestamp == int(timestamp) else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


@dataclass(frozen=True)
class Window:
    """The time range and resolution of range queries, in Unix seconds."""

    start: float
    end: float
    step: float

    @classmethod
    def parse(cls, start: str, end: str, step: str, now: float | None = None) -> Window:
        """Build from command-line text; ``step`` ``auto`` gives about 300 points."""
        now = time.time() if now is None else now
        begin, finish = parse_time(start, now), parse_time(end, now)
        if finish <= begin:
            raise ValueError(f"--end ({end}) must be after --start ({start})")
        if step == "auto":
            seconds = max(1.0, float(math.ceil((finish - begin) / AUTO_POINTS)))
        else:
            seconds = parse_duration(step)
        if seconds <= 0:
            raise ValueError(f"--step must be positive, not {step!r}")
        points = (finish - begin) / seconds
        if points > MAX_POINTS:
            least = format_duration(math.ceil((finish - begin) / MAX_POINTS))
            raise ValueError(
                f"--step {step} gives {points:.0f} points per series; Prometheus allows "
                f"{MAX_POINTS}: use a step of at least {least}"
            )
        # Whole seconds keep timestamps aligned to the step, as Grafana does.
        return cls(float(math.floor(begin)), float(math.floor(finish)), seconds)

    @property
    def range(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Series:
    """One series from a range query: its labels and (timestamp, value) samples."""

    labels: dict[str, str]
    values: list[tuple[float, float]] = field(default_factory=list)


def _value(text: str) -> float:
    # Prometheus sends sample values as strings: "42", "NaN", "+Inf".
    return float(text)


class Prometheus:
    """Prometheus' HTTP API at ``url``; errors come out as the two exceptions above."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def _get(self, path: str, params: dict[str, Any], what: str) -> Any:
        try:
            response = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        except requests.ConnectionError as exc:
            raise PrometheusUnreachable(self.url, _short_reason(exc)) from None
        except requests.Timeout:
            raise PrometheusUnreachable(self.url, f"no answer within {self.timeout:g}s") from None
        try:
            body = response.json()
        except ValueError:
            raise QueryFailed(
                what, f"HTTP {response.status_code} from {path}: {response.text[:200].strip()}"
            ) from None
        if body.get("status") != "success":
            error = body.get("error") or f"HTTP {response.status_code}"
            kind = body.get("errorType")
            raise QueryFailed(what, f"{kind}: {error}" if kind else str(error))
        return body.get("data")

    def check(self) -> str:
        """Prometheus' version; raises PrometheusUnreachable when nothing answers."""
        data = self._get("/api/v1/status/buildinfo", {}, "buildinfo")
        return str(data.get("version", "unknown"))

    def scrape_interval(self) -> float | None:
        """The global scrape interval from Prometheus' loaded configuration, if readable."""
        import yaml

        try:
            data = self._get("/api/v1/status/config", {}, "status/config")
            loaded = yaml.safe_load(data["yaml"])
            return parse_duration(str(loaded["global"]["scrape_interval"]))
        except (QueryFailed, KeyError, TypeError, ValueError, yaml.YAMLError):
            return None

    def query_range(self, expr: str, window: Window) -> list[Series]:
        """Every series ``expr`` yields over ``window``, in Prometheus' order."""
        params = {"query": expr, "start": window.start, "end": window.end, "step": window.step}
        data = self._get("/api/v1/query_range", params, expr)
        return [
            Series(dict(item["metric"]), [(float(t), _value(v)) for t, v in item["values"]])
            for item in data["result"]
        ]

    def query(self, expr: str, at: float) -> list[Series]:
        """Instant query at ``at``: one sample per series."""
        data = self._get("/api/v1/query", {"query": expr, "time": at}, expr)
        if data["resultType"] in ("scalar", "string"):
            t, v = data["result"]
            return [Series({}, [(float(t), _value(v))])]
        return [
            Series(dict(item["metric"]), [(float(item["value"][0]), _value(item["value"][1]))])
            for item in data["result"]
        ]

    def label_values(self, label: str, match: str | None, window: Window) -> list[str]:
        """Values of ``label`` over ``window``, optionally among series matching ``match``."""
        params: dict[str, Any] = {"start": window.start, "end": window.end}
        if match:
            params["match[]"] = match
        what = f"label_values({match + ', ' if match else ''}{label})"
        return sorted(self._get(f"/api/v1/label/{label}/values", params, what))

    def label_names(self, window: Window) -> list[str]:
        """Every label name Prometheus holds over ``window``."""
        params = {"start": window.start, "end": window.end}
        return sorted(self._get("/api/v1/labels", params, "label_names()"))


def _short_reason(exc: requests.ConnectionError) -> str:
    """The useful end of a requests connection error, e.g. 'Connection refused'."""
    text = str(exc)
    for known in ("Connection refused", "Name or service not known", "No route to host"):
        if known in text:
            return known.lower()
    return text.split(": ")[-1].rstrip(")'\"") or "connection failed"


def add_range_options(parser: argparse.ArgumentParser) -> None:
    """--prometheus, --start, --end, --step and --scrape-interval, as the scripts share them."""
    parser.add_argument(
        "--prometheus",
        default=os.environ.get("PROMETHEUS_URL", DEFAULT_URL),
        help=f"Prometheus base URL (default $PROMETHEUS_URL or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--start", default="-1h", help="RFC3339, Unix seconds, now or -1h/now-30m (default -1h)"
    )
    parser.add_argument("--end", default="now", help="same forms as --start (default now)")
    parser.add_argument(
        "--step",
        default="auto",
        help="resolution, e.g. 15s or 1m (default auto: about 300 points per series)",
    )
    parser.add_argument(
        "--scrape-interval",
        help="for $__rate_interval (default: Prometheus' global scrape_interval, else "
        f"{config.CONFIG.intervals.scrape_interval})",
    )


def scrape_interval_of(prom: Prometheus, option: float | None) -> float:
    """The scrape interval for $__rate_interval: the option, Prometheus' config, or ours."""
    if option:
        return option
    return prom.scrape_interval() or parse_duration(config.CONFIG.intervals.scrape_interval)


if __name__ == "__main__":
    sys.exit(
        f"{__file__}: not a command, a helper of scripts.preview and scripts.export_metrics; "
        "run one of those (python -m scripts.NAME --help)"
    )
