"""One promtool test case per alert: input series above and below its threshold.

Every number comes from the config profile, so the cases follow the config:
the firing input sits at about twice the threshold, the quiet one at about
half, and the evaluation times are derived from ``for``, the rate window and
the evaluation interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from genonaut_monitoring import config
from genonaut_monitoring.alerts.model import seconds
from genonaut_monitoring.exporters import catalogue as c

INSTANCE = "127.0.0.1:8000"
QUANTILE = 0.95


@dataclass(frozen=True)
class Expected:
    """One alert instance the case expects: its labels (besides alertname) and $value."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Scenario:
    what: str  # completes "… when <what>"
    series: list[dict[str, str]]
    expected: list[Expected] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    alert: str
    fires: Scenario
    quiet: Scenario | None


class Timeline:
    """Sample and evaluation spacing for one config profile."""

    def __init__(self, cfg: config.Config) -> None:
        self.step = seconds(cfg.intervals.evaluation_interval)
        self.window = seconds(cfg.intervals.rate_window)

    def points(self, until: float) -> int:
        return math.ceil(until / self.step) + 2


def labels_text(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


# The cases label series with the shipped job name; case() refuses a profile with another.
JOB = config.CONFIG.jobs[0]


def target(**labels: str) -> dict[str, str]:
    return {"job": JOB, "instance": INSTANCE, **labels}


def counter(name: str, labels: dict[str, str], per_step: float, n: int) -> dict[str, str]:
    return {"series": name + labels_text(labels), "values": f"0+{per_step!r}x{n}"}


def gauge(name: str, labels: dict[str, str], value: float, n: int) -> dict[str, str]:
    return {"series": name + labels_text(labels), "values": f"{value!r}x{n}"}


def le_text(le: float) -> str:
    return "+Inf" if math.isinf(le) else repr(float(le))


def histogram(
    spec: c.MetricSpec, labels: dict[str, str], bucket: tuple[float, float], n: int, step: float
) -> list[dict[str, str]]:
    """Bucket series with one observation per second, all inside ``bucket`` = (lower, upper]."""
    edges = [*(spec.buckets or ()), math.inf]
    return [
        counter(
            spec.name + "_bucket", {**labels, "le": le_text(le)}, step if le >= bucket[1] else 0, n
        )
        for le in edges
    ]


def binary_above(value: float) -> float:
    """A power of two above ``value`` (at least twice it): rates that add up exactly."""
    return 2.0 ** math.ceil(math.log2(2 * value)) if value > 0 else 0.5


def binary_below(value: float) -> float:
    """A power of two at most half ``value``, or 0."""
    return 2.0 ** math.floor(math.log2(value / 2)) if value > 0 else 0.0


def bucket_above(spec: c.MetricSpec, threshold: float) -> tuple[float, float]:
    """The first bucket entirely above ``threshold``; its p95 exceeds it."""
    edges = list(spec.buckets or ())
    lower = next(e for e in edges if e >= threshold)
    return lower, edges[edges.index(lower) + 1]


def bucket_below(spec: c.MetricSpec, threshold: float) -> tuple[float, float]:
    """The last bucket ending at or below ``threshold``; its p95 stays under it."""
    edges = [0.0, *(spec.buckets or ())]
    upper = max(e for e in edges if e <= threshold)
    return edges[edges.index(upper) - 1], upper


def p95(bucket: tuple[float, float]) -> float:
    lower, upper = bucket
    return lower + (upper - lower) * QUANTILE


def _http_error_rate(cfg: config.Config, tl: Timeline, n: int) -> Case:
    r = cfg.thresholds.error_ratio
    route = {"method": "GET", "route": "/api/v1/content"}

    def traffic(errors: int) -> list[dict[str, str]]:
        return [
            # Per second: 100 requests, ``errors`` of them answered 500.
            counter(
                c.HTTP_REQUESTS.name, target(**route, status="200"), (100 - errors) * tl.step, n
            ),
            counter(c.HTTP_REQUESTS.name, target(**route, status="500"), errors * tl.step, n),
        ]

    hot, cold = min(100, math.ceil(200 * r)), math.floor(50 * r)
    job = {"job": cfg.jobs[0]}
    return Case(
        "ApiHighErrorRate",
        Scenario(f"{hot}% of requests fail", traffic(hot), [Expected(job, hot / 100)]),
        Scenario(f"{cold}% of requests fail", traffic(cold)),
    )


def _latency(
    name: str,
    spec: c.MetricSpec,
    threshold: float,
    hot_labels: dict[str, str],
    keeps: tuple[str, ...],
    quiet_extra: Callable[[int], list[dict[str, str]]] | None = None,
) -> Callable[[config.Config, Timeline, int], Case]:
    """A case for a p95-above-threshold alert on histogram ``spec``."""

    def build(cfg: config.Config, tl: Timeline, n: int) -> Case:
        hot, cold = bucket_above(spec, threshold), bucket_below(spec, threshold)
        labels = target(**hot_labels)
        kept = {k: labels[k] for k in keeps}
        quiet = histogram(spec, labels, cold, n, tl.step) + (quiet_extra(n) if quiet_extra else [])
        return Case(
            name,
            Scenario(
                f"all requests take {hot[0]}s to {hot[1]}s",
                histogram(spec, labels, hot, n, tl.step),
                [Expected(kept, p95(hot))],
            ),
            Scenario(f"all requests take {cold[0]}s to {cold[1]}s", quiet),
        )

    return build


def _deep_offset(cfg: config.Config, tl: Timeline, n: int) -> Case:
    spec, t = c.PAGINATION_REQUEST_DURATION, cfg.thresholds.deep_offset_p95_seconds
    deep = c.offset_ranges_from(cfg.thresholds.deep_offset_min)[0]
    base = {"route": "/api/v1/content", "mode": "offset"}
    shallow_slow = histogram(
        spec, target(**base, offset_range=c.offset_range(1)), bucket_above(spec, t), n, tl.step
    )
    return _latency(
        "PaginationDeepOffsetSlow",
        spec,
        t,
        {**base, "offset_range": deep},
        ("job", "route", "offset_range"),
        # Slow shallow pages are ApiHighLatency's business, not this alert's.
        quiet_extra=lambda _: shallow_slow,
    )(cfg, tl, n)


def _db_slow(cfg: config.Config, tl: Timeline, n: int) -> Case:
    t = cfg.thresholds
    spec = c.DB_QUERY_DURATION
    content = {"operation": "select", "table": "content_items"}
    tags = {"operation": "insert", "table": "tags"}
    hot_rate = binary_above(t.slow_queries_per_second)
    cold_rate = binary_below(t.slow_queries_per_second)
    hot_bucket = bucket_above(spec, t.db_query_p95_seconds)
    cold_bucket = bucket_below(spec, t.db_query_p95_seconds)
    job = {"job": cfg.jobs[0]}
    return Case(
        "DatabaseSlowQueries",
        Scenario(
            "select statements are slow and insert statements are often slow",
            [
                *histogram(spec, target(**content), hot_bucket, n, tl.step),
                counter(c.DB_SLOW_QUERIES.name, target(**tags), hot_rate * tl.step, n),
            ],
            [
                Expected(
                    {**job, **content, "signal": "p95 statement time in seconds"}, p95(hot_bucket)
                ),
                Expected({**job, **tags, "signal": "slow statements per second"}, hot_rate),
            ],
        ),
        Scenario(
            "statements are fast and rarely slow",
            [
                *histogram(spec, target(**content), cold_bucket, n, tl.step),
                counter(c.DB_SLOW_QUERIES.name, target(**tags), cold_rate * tl.step, n),
            ],
        ),
    )


def _db_errors(cfg: config.Config, tl: Timeline, n: int) -> Case:
    t = cfg.thresholds.db_errors_per_second
    hot, cold = binary_above(t), binary_below(t)
    # The database is gone: connections fail, and no statement runs to fail.
    down = {"pool": "postgresql:genonaut", "kind": "connection"}
    statement = {"pool": "postgresql:genonaut", "kind": "statement"}
    return Case(
        "DatabaseQueryErrors",
        Scenario(
            f"{hot} connections fail per second and no statement fails",
            [
                counter(c.DB_ERRORS.name, target(**down), hot * tl.step, n),
                counter(c.DB_ERRORS.name, target(**statement), 0, n),
            ],
            [Expected({"job": cfg.jobs[0], **down}, hot)],
        ),
        Scenario(
            f"{cold} database operations fail per second",
            [
                counter(c.DB_ERRORS.name, target(**down), cold * tl.step, n),
                counter(c.DB_ERRORS.name, target(**statement), cold * tl.step, n),
            ],
        ),
    )


def _pool(checked_out: float, n: int, pool: str = "default", size: float = 10) -> list[dict]:
    return [
        gauge(c.DB_POOL_SIZE.name, target(pool=pool), size, n),
        gauge(c.DB_POOL_MAX_OVERFLOW.name, target(pool=pool), size, n),
        gauge(c.DB_POOL_CHECKED_OUT.name, target(pool=pool), checked_out, n),
    ]


def _pool_saturation(cfg: config.Config, tl: Timeline, n: int) -> Case:
    t = cfg.thresholds.pool_saturation_ratio
    cold = math.floor(20 * t) - 1
    return Case(
        "DatabasePoolNearExhaustion",
        Scenario(
            "all 20 connections are checked out",
            _pool(20, n),
            [Expected(target(pool="default"), 1.0)],
        ),
        Scenario(
            f"{cold} of 20 connections are checked out and an unlimited pool is in use",
            # A pool reporting size 0 and overflow 0 must not divide by zero into +Inf.
            _pool(cold, n) + _pool(3, n, pool="unlimited", size=0),
        ),
    )


def _checkout_timeouts(cfg: config.Config, tl: Timeline, n: int) -> Case:
    name = c.DB_POOL_CHECKOUT_TIMEOUTS.name
    return Case(
        "DatabasePoolCheckoutTimeouts",
        Scenario(
            "one checkout times out every evaluation interval",
            [counter(name, target(pool="default"), 1, n)],
            [Expected(target(pool="default"), tl.window / tl.step)],
        ),
        Scenario("no checkout times out", [counter(name, target(pool="default"), 0, n)]),
    )


def _target_down(cfg: config.Config, tl: Timeline, n: int) -> Case:
    return Case(
        "ApiTargetDown",
        Scenario("every scrape fails", [gauge("up", target(), 0, n)], [Expected(target(), 0)]),
        Scenario("every scrape succeeds", [gauge("up", target(), 1, n)]),
    )


def _target_missing(cfg: config.Config, tl: Timeline, n: int) -> Case:
    other = {"job": "prometheus", "instance": "127.0.0.1:9090"}
    return Case(
        "ApiTargetMissing",
        Scenario(
            "only another job is scraped",
            [gauge("up", other, 1, n)],
            [Expected({"job": cfg.jobs[0]}, 1)],
        ),
        Scenario("the API job is scraped", [gauge("up", target(), 1, n)]),
    )


def _watchdog(cfg: config.Config, tl: Timeline, n: int) -> Case:
    return Case("Watchdog", Scenario("nothing else happens", [], [Expected({}, 1)]), None)


BUILDERS: dict[str, Callable[[config.Config, Timeline, int], Case]] = {
    "ApiHighErrorRate": _http_error_rate,
    "ApiHighLatency": lambda cfg, tl, n: _latency(
        "ApiHighLatency",
        c.HTTP_REQUEST_DURATION,
        cfg.thresholds.latency_p95_seconds,
        {"method": "GET", "route": "/api/v1/content/{item_id}"},
        ("job", "route"),
    )(cfg, tl, n),
    "PaginationSlowQueries": lambda cfg, tl, n: _latency(
        "PaginationSlowQueries",
        c.PAGINATION_QUERY_DURATION,
        cfg.thresholds.pagination_query_p95_seconds,
        {
            "route": "/api/v1/content",
            "mode": "offset",
            "page_size_class": "26-50",
            "offset_range": "1-100",
        },
        ("job", "route", "mode"),
    )(cfg, tl, n),
    "PaginationDeepOffsetSlow": _deep_offset,
    "DatabaseSlowQueries": _db_slow,
    "DatabaseQueryErrors": _db_errors,
    "DatabasePoolNearExhaustion": _pool_saturation,
    "DatabasePoolCheckoutTimeouts": _checkout_timeouts,
    "ApiTargetDown": _target_down,
    "ApiTargetMissing": _target_missing,
    "Watchdog": _watchdog,
}


def case(cfg: config.Config, alert: str, until: float) -> Case:
    """The case for ``alert`` with enough samples to evaluate up to ``until`` seconds."""
    if cfg.jobs[0] != JOB:
        raise ValueError(f"the rule test cases label series job={JOB!r}, not {cfg.jobs[0]!r}")
    tl = Timeline(cfg)
    return BUILDERS[alert](cfg, tl, tl.points(until))
