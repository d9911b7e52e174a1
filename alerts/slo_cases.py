"""The SLO alerts' promtool cases: every SLO burning its budget at a chosen rate.

Each SLO gets traffic of its own (100 requests a second to one of its routes),
a share of it bad: answered 500 for availability, slower than the threshold
for latency. The share is ``burn x budget``, so the burn rate every window
reads is ``burn`` from the first evaluation on (a ratio of two rates over the
same samples needs no full window). The longer promises (a full outage after a
healthy history, a spike, a steady 1x burn) are in ``tests/test_slo_rules.py``.
"""

from __future__ import annotations

import math
import re

from genonaut_monitoring import config
from genonaut_monitoring.alerts.cases import Cases, Counter, Expect, Scenario, le_text, target_of
from genonaut_monitoring.config import BurnRate, Slo, fmt_number
from genonaut_monitoring.exporters import catalogue as c

# Requests a second each SLO receives in a case.
RATE = 100.0


def route_of(slo: Slo) -> str:
    """A route the SLO counts and no other SLO's case uses unless it names it too."""
    if slo.routes:
        return slo.routes[0]
    if not slo.route_regex:
        return f"/{slo.name}"
    literal = re.sub(r"\.\*|\.\+|[$^]", "", slo.route_regex)
    if re.fullmatch(slo.route_regex, literal):
        return literal
    raise ValueError(
        f"SLO {slo.name}: no route for its promtool cases: route_regex {slo.route_regex!r} "
        "does not match its own literal part; give routes instead"
    )


def traffic(cfg: config.Config, slo: Slo, burn: float) -> list[Counter]:
    """RATE requests a second to the SLO's route, ``burn`` times its budget of them bad."""
    from genonaut_monitoring.alerts import slo as s

    service = next(x for x in cfg.services if x.name == cfg.slo_job(slo))
    labels = target_of(service, method="GET", route=route_of(slo))
    bad = min(1.0, burn * s.budget(slo)) * RATE
    if slo.sli == "availability":
        name = c.HTTP_REQUESTS.name
        return [
            Counter(name, {**labels, "status": "200"}, RATE - bad),
            Counter(name, {**labels, "status": "500"}, bad),
        ]
    spec, threshold = s.LATENCY_HISTOGRAM, s.boundary(slo.latency_seconds or 0)
    if threshold is None:
        return []  # a threshold off the buckets: slo.problems() fails the build, naming it
    edges = [*(spec.buckets or ()), math.inf]
    slow = edges[edges.index(threshold) + 1]
    buckets = [
        Counter(
            spec.name + "_bucket",
            {**labels, "le": le_text(le)},
            (RATE - bad if le >= threshold else 0.0) + (bad if le >= slow else 0.0),
        )
        for le in edges
    ]
    return [*buckets, Counter(spec.name + "_count", labels, RATE)]


def _burns(cfg: config.Config, rates: tuple[BurnRate, ...]) -> list[tuple[Slo, float]]:
    """For each SLO that can burn fast enough, a burn a quarter above the largest factor
    it can reach (every request bad burns at 1 / budget)."""
    from genonaut_monitoring.alerts import slo as s

    found = []
    for slo in cfg.slos:
        if not traffic(cfg, slo, 0.0):
            continue
        most = 1 / s.budget(slo)
        reachable = [r.factor for r in rates if r.factor * 1.25 <= most]
        if reachable:
            found.append((slo, max(reachable) * 1.25))
    return found


def cases(cfg: config.Config, rates: tuple[BurnRate, ...]) -> Cases:
    """Every SLO burns a quarter above the fastest factor it can reach: one alert each; at
    half the slowest factor, none."""
    burning = _burns(cfg, rates)
    quiet = min(r.factor for r in rates) / 2
    fires = [x for slo, burn in burning for x in traffic(cfg, slo, burn)]
    calm = [x for slo in cfg.slos for x in traffic(cfg, slo, quiet)]
    return Cases(
        fires=Scenario(
            "each SLO burns its budget a quarter above the largest factor it can reach",
            fires,
            [
                Expect({"job": cfg.slo_job(slo), "slo": slo.name, "sli": slo.sli}, burn)
                for slo, burn in burning
            ],
        ),
        quiet=[Scenario(f"every SLO burns its budget at {fmt_number(quiet)}x", calm)],
    )
