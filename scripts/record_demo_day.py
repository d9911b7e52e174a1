"""Record a day of the demo API under load, with injected incidents, as a backtest fixture.

    python -m scripts.record_demo_day healthy   --out tests/fixtures/backtest/healthy.om.xz
    python -m scripts.record_demo_day incidents --out tests/fixtures/backtest/incidents.om.xz

Runs the demo API and a real Prometheus (scraping every second) on loopback,
sends an open-loop stream of requests (offset pages, cursor pages, items,
health checks; seeded, so runs are alike) and injects the scenario's faults
through ``/debug/faults`` at their times. Then ``genonaut-monitoring record``
exports what Prometheus scraped, re-timed by ``--speedup``: a 24-minute run
at speedup 60 becomes a day, one scrape a minute, counters scaled so that
request rates, error ratios and latencies read as they did while recorded. An
incident of 30 minutes in the day is 30 seconds of the run. Next to the
recording, ``<name>.json`` says what was injected when, in the day's time.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from genonaut_monitoring import cli
from genonaut_monitoring.alerts.model import seconds
from genonaut_monitoring.stack import Stack

DAY_MINUTES = 24 * 60
# The recording's first sample moves here: a fixed day, so reports read the same.
DAY_START = "2024-01-02T00:00:00Z"
SEED = 20240102
PAGE_SIZE = 50


@dataclass(frozen=True)
class Incident:
    """Faults (the body of PUT /debug/faults) from ``start`` to ``end``, in minutes of the day."""

    start: int
    end: int
    faults: dict[str, Any]
    what: str


@dataclass(frozen=True)
class Scenario:
    what: str
    incidents: list[Incident] = field(default_factory=list)


SCENARIOS = {
    "healthy": Scenario("A day of steady traffic and no fault."),
    "incidents": Scenario(
        "A day with three incidents: an outage, slow pages, a slow error leak.",
        [
            Incident(
                180,
                210,
                {"error_rate": 0.5, "route_prefix": "/api/"},
                "half of all API requests fail for 30 minutes: a fast availability burn",
            ),
            Incident(
                540,
                630,
                {"latency_seconds": 0.6, "route_prefix": "/api/v1/content"},
                "every content request takes 600ms more for 90 minutes: a latency burn",
            ),
            Incident(
                900,
                1260,
                {"error_rate": 0.02, "route_prefix": "/api/"},
                "2% of API requests fail for 6 hours: a slow availability burn",
            ),
        ],
    ),
}


def request_plan(rng: random.Random, seed_rows: int) -> tuple[str, dict[str, Any]]:
    """One request of the mix: offset pages, cursor pages, items, health checks."""
    pick = rng.random()
    # One page size: each size class multiplies the pagination histograms' series.
    if pick < 0.45:
        return "/api/v1/content", {"page": rng.randint(1, 40), "page_size": PAGE_SIZE}
    if pick < 0.65:
        return "/api/v1/content/cursor", {"limit": PAGE_SIZE}
    if pick < 0.95:
        return f"/api/v1/content/{rng.randint(1, seed_rows)}", {}
    return "/health", {}


class Load:
    """Open-loop load: one request every 1/rate seconds, whatever the answers take."""

    def __init__(self, base: str, rate: float, seed_rows: int) -> None:
        self.base, self.rate, self.seed_rows = base, rate, seed_rows
        self.rng = random.Random(SEED)
        self.local = threading.local()
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self.lock = threading.Lock()

    def _send(self, path: str, params: dict[str, Any]) -> None:
        session = getattr(self.local, "session", None) or requests.Session()
        self.local.session = session
        try:
            status = session.get(self.base + path, params=params, timeout=30).status_code
        except requests.RequestException:
            status = 0
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def run(self, until: float, on_tick: Any) -> None:
        with ThreadPoolExecutor(max_workers=64) as pool:
            next_at = time.monotonic()
            while next_at < until:
                on_tick()
                time.sleep(max(0.0, next_at - time.monotonic()))
                pool.submit(self._send, *request_plan(self.rng, self.seed_rows))
                self.sent += 1
                next_at += 1 / self.rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--out", type=Path, required=True, help="recording (.om.xz)")
    parser.add_argument("--speedup", type=float, default=60.0, help="day minutes per run second")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--seed-rows", type=int, default=20_000, help="demo catalogue size")
    parser.add_argument(
        "--minutes", type=int, default=DAY_MINUTES, help="length of the day (a shorter trial)"
    )
    parser.add_argument("--workdir", type=Path, default=Path(".run/record-demo-day"))
    args = parser.parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    real = 60 / args.speedup  # seconds of the run per minute of the day
    env = {"DEMO_FAULTS": "1", "DEMO_SEED_ROWS": str(args.seed_rows)}
    workdir = args.workdir / args.scenario
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh TSDB and demo database
    with Stack(workdir, components={"api", "prometheus"}, api_env=env) as stack:
        stack.wait_for(lambda: stack.query("up == 1"), 30, "the first scrape of the API")
        load = Load(stack.api_url, args.rate, args.seed_rows)
        began = time.time()
        pending = sorted(
            [(i.start, i.faults) for i in scenario.incidents]
            + [(i.end, None) for i in scenario.incidents],
            key=lambda change: change[0],
        )

        def on_tick() -> None:
            minute = (time.time() - began) / real
            while pending and pending[0][0] <= minute:
                _, faults = pending.pop(0)
                url = f"{stack.api_url}/debug/faults"
                response = requests.put(url, json=faults) if faults else requests.delete(url)
                response.raise_for_status()
                print(f"minute {minute:6.1f}: faults {faults or 'cleared'}", flush=True)

        load.run(time.monotonic() + args.minutes * real, on_tick)
        # Two more scrapes, so the last requests are in Prometheus too.
        time.sleep(2.5 * seconds(stack.cfg.intervals.scrape_interval))
        end = began + args.minutes * real
        print(f"sent {load.sent} requests; statuses {dict(sorted(load.statuses.items()))}")
        code = cli.main(
            ["record", "--profile", "test", "--prometheus", stack.prometheus_url,
             "--start", str(began), "--end", str(end), "--speedup", str(args.speedup),
             "--start-at", DAY_START, "--out", str(args.out)]
        )  # fmt: skip
    about = {
        "scenario": args.scenario,
        "what": scenario.what,
        "day_start": DAY_START,
        "speedup": args.speedup,
        "requests_per_second": args.rate,
        "incidents": [asdict(i) for i in scenario.incidents],
    }
    sidecar = args.out.with_name(args.out.name.split(".")[0] + ".json")
    sidecar.write_text(json.dumps(about, indent=2) + "\n")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
