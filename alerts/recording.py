"""Recording rules: the expensive expressions that dashboards and alerts share.

Names follow ``level:metric:operations``. The rate window comes from config, so
the operation part names it (``rate5m`` by default, ``rate10s`` in the test
profile): a name never claims a window it does not hold. Use the functions here
to get a name, never type one.

    >>> from genonaut_monitoring.config import CONFIG
    >>> http_error_ratio(CONFIG)
    'job:http_requests_5xx:ratio_rate5m'
"""

from __future__ import annotations

import json

from genonaut_monitoring import config
from genonaut_monitoring.alerts.model import Group, Record
from genonaut_monitoring.alerts.promql import job_selector, series, window_suffix
from genonaut_monitoring.exporters import catalogue as c

QUANTILE = 0.95


def _counted(level: str, spec: c.MetricSpec, operations: str) -> str:
    """``level:<counter>:operations``: the name of a rule over counter ``spec``, which
    drops the counter's ``_total`` as the naming convention asks."""
    return f"{level}:{series(spec).removesuffix('_total')}:{operations}"


def _increase_suffix(cfg: config.Config) -> str:
    """``increase5m`` for a 5m rate window, as :func:`window_suffix` is for rates."""
    return f"increase{cfg.intervals.rate_window}"


def http_requests_rate(cfg: config.Config) -> str:
    return _counted("job_route_status", c.HTTP_REQUESTS, window_suffix(cfg))


def http_error_ratio(cfg: config.Config) -> str:
    return f"job:http_requests_5xx:ratio_{window_suffix(cfg)}"


def http_duration_buckets(cfg: config.Config) -> str:
    return f"job_route_le:{series(c.HTTP_REQUEST_DURATION, '_bucket')}:{window_suffix(cfg)}"


def http_duration_p95(cfg: config.Config) -> str:
    return f"job_route:{c.HTTP_REQUEST_DURATION.name}:p95_{window_suffix(cfg)}"


def pagination_query_buckets(cfg: config.Config) -> str:
    name = series(c.PAGINATION_QUERY_DURATION, "_bucket")
    return f"job_route_mode_le:{name}:{window_suffix(cfg)}"


def pagination_query_p95(cfg: config.Config) -> str:
    return f"job_route_mode:{c.PAGINATION_QUERY_DURATION.name}:p95_{window_suffix(cfg)}"


def pagination_offset_buckets(cfg: config.Config) -> str:
    name = series(c.PAGINATION_REQUEST_DURATION, "_bucket")
    return f"job_route_offset_range_le:{name}:{window_suffix(cfg)}"


def pagination_offset_p95(cfg: config.Config) -> str:
    name = c.PAGINATION_REQUEST_DURATION.name
    return f"job_route_offset_range:{name}:p95_{window_suffix(cfg)}"


def db_duration_buckets(cfg: config.Config) -> str:
    return f"job_operation_table_le:{series(c.DB_QUERY_DURATION, '_bucket')}:{window_suffix(cfg)}"


def db_duration_p95(cfg: config.Config) -> str:
    return f"job_operation_table:{c.DB_QUERY_DURATION.name}:p95_{window_suffix(cfg)}"


def db_slow_queries_rate(cfg: config.Config) -> str:
    return _counted("job_operation_table", c.DB_SLOW_QUERIES, window_suffix(cfg))


def db_errors_rate(cfg: config.Config) -> str:
    return _counted("job_operation_table", c.DB_QUERY_ERRORS, window_suffix(cfg))


def db_queries_rate(cfg: config.Config) -> str:
    return f"job_operation_table:database_queries:{window_suffix(cfg)}"


def db_faults_rate(cfg: config.Config) -> str:
    return _counted("job_pool_kind", c.DB_ERRORS, window_suffix(cfg))


def checkout_timeouts_increase(cfg: config.Config) -> str:
    return _counted("job_instance_pool", c.DB_POOL_CHECKOUT_TIMEOUTS, _increase_suffix(cfg))


def writes_dropped_increase(cfg: config.Config) -> str:
    return _counted("job_instance_reason", c.METRICS_WRITES_DROPPED, _increase_suffix(cfg))


def folded_samples_increase(cfg: config.Config) -> str:
    return _counted("job_metric", c.FOLDED_SAMPLES, _increase_suffix(cfg))


def pg_deadlocks_increase(cfg: config.Config) -> str:
    from genonaut_monitoring.exporters import pgmetrics

    return _counted("job_instance_server_datname", pgmetrics.PG_DEADLOCKS, _increase_suffix(cfg))


def pool_saturation(cfg: config.Config) -> str:
    return f"job_instance_pool:{series(c.DB_POOL_CHECKED_OUT)}:ratio"


def _rate_by(cfg: config.Config, spec: c.MetricSpec, suffix: str, by: tuple[str, ...]) -> str:
    window = cfg.intervals.rate_window
    return f"sum by ({', '.join(by)}) (rate({series(spec, suffix)}{job_selector(cfg)}[{window}]))"


def _rate(
    cfg: config.Config, name: str, spec: c.MetricSpec, suffix: str, by: tuple[str, ...], why: str
) -> Record:
    """A per-second rate summed ``by`` the given labels, which are the ones it keeps."""
    return Record(name, _rate_by(cfg, spec, suffix, by), frozenset(by), why)


def _increase(
    cfg: config.Config,
    name: str,
    spec: c.MetricSpec,
    by: tuple[str, ...],
    why: str,
    selector: str | None = None,
) -> Record:
    """The increase of counter ``spec`` over the rate window, summed ``by`` the labels it
    keeps, of the configured jobs (or of the series ``selector`` picks)."""
    picked = job_selector(cfg) if selector is None else selector
    window = cfg.intervals.rate_window
    expr = f"sum by ({', '.join(by)}) (\n  increase({series(spec)}{picked}[{window}])\n)"
    return Record(name, expr, frozenset(by), why)


def _p95(name: str, buckets: Record, why: str) -> Record:
    """The p95 of a bucket-rate record; it keeps that record's labels but ``le``."""
    expr = f"histogram_quantile({QUANTILE}, {buckets.name})"
    return Record(name, expr, buckets.keeps - {"le"}, why)


def rules(cfg: config.Config) -> list[Record]:
    """Every recording rule, in dependency order (a rule only uses those above it)."""
    w = cfg.intervals.rate_window
    requests = _rate(
        cfg,
        http_requests_rate(cfg),
        c.HTTP_REQUESTS,
        "",
        ("job", "route", "status"),
        f"Request rate per route and status over {w}: request-rate panels and the error ratio.",
    )
    http_buckets = _rate(
        cfg,
        http_duration_buckets(cfg),
        c.HTTP_REQUEST_DURATION,
        "_bucket",
        ("job", "route", "le"),
        f"Response-time buckets per route over {w}, instances summed: latency quantiles.",
    )
    query_buckets = _rate(
        cfg,
        pagination_query_buckets(cfg),
        c.PAGINATION_QUERY_DURATION,
        "_bucket",
        ("job", "route", "mode", "le"),
        f"Page-query time buckets per route and pagination mode over {w}.",
    )
    offset_buckets = _rate(
        cfg,
        pagination_offset_buckets(cfg),
        c.PAGINATION_REQUEST_DURATION,
        "_bucket",
        ("job", "route", "offset_range", "le"),
        f"Paginated response-time buckets per offset range over {w}.",
    )
    db_buckets = _rate(
        cfg,
        db_duration_buckets(cfg),
        c.DB_QUERY_DURATION,
        "_bucket",
        ("job", "operation", "table", "le"),
        f"Statement time buckets per operation and table over {w}.",
    )
    return [
        requests,
        Record(
            http_error_ratio(cfg),
            # A ratio of two sums, not a sum of ratios: busy routes weigh more. With no 5xx
            # series yet, "or ... * 0" makes the ratio 0 instead of absent.
            f'(\n  sum by (job) ({requests.name}{{status=~"5.."}})\n  or\n'
            f"  sum by (job) ({requests.name}) * 0\n)\n/\nsum by (job) ({requests.name})",
            frozenset({"job"}),
            f"Share of requests answered 5xx over {w}: ApiHighErrorRate and the Error rate panel.",
        ),
        http_buckets,
        _p95(
            http_duration_p95(cfg),
            http_buckets,
            "p95 response time per route: ApiHighLatency and the Response time panel.",
        ),
        query_buckets,
        _p95(
            pagination_query_p95(cfg),
            query_buckets,
            "p95 page-query time per route and mode: PaginationSlowQueries.",
        ),
        offset_buckets,
        _p95(
            pagination_offset_p95(cfg),
            offset_buckets,
            "p95 paginated response time per offset range: PaginationDeepOffsetSlow.",
        ),
        db_buckets,
        _p95(
            db_duration_p95(cfg),
            db_buckets,
            "p95 statement time per operation and table: DatabaseSlowQueries.",
        ),
        _rate(
            cfg,
            db_slow_queries_rate(cfg),
            c.DB_SLOW_QUERIES,
            "",
            ("job", "operation", "table"),
            f"Slow statements per second over {w}: DatabaseSlowQueries.",
        ),
        _rate(
            cfg,
            db_queries_rate(cfg),
            c.DB_QUERY_DURATION,
            "_count",
            ("job", "operation", "table"),
            f"Statements per second over {w}: the zero baseline of the Slow queries panel.",
        ),
        _rate(
            cfg,
            db_errors_rate(cfg),
            c.DB_QUERY_ERRORS,
            "",
            ("job", "operation", "table"),
            f"Failed statements per second over {w}, by operation and table.",
        ),
        _rate(
            cfg,
            db_faults_rate(cfg),
            c.DB_ERRORS,
            "",
            ("job", "pool", "kind"),
            f"Database faults per second over {w} (connection, pool timeout, statement): "
            "DatabaseQueryErrors and the Database errors panel.",
        ),
        _increase(
            cfg,
            checkout_timeouts_increase(cfg),
            c.DB_POOL_CHECKOUT_TIMEOUTS,
            ("job", "instance", "pool"),
            f"Checkouts that timed out in the last {w}: DatabasePoolCheckoutTimeouts and the "
            "Pool checkout timeouts panel.",
        ),
        _increase(
            cfg,
            writes_dropped_increase(cfg),
            c.METRICS_WRITES_DROPPED,
            # Per instance: the multiprocess directory that is full or unwritable is a host's.
            ("job", "instance", "reason"),
            f"Metric writes dropped in the last {w}, by reason: MetricsWritesDropped and the "
            "Metric writes dropped panel.",
        ),
        _increase(
            cfg,
            folded_samples_increase(cfg),
            c.FOLDED_SAMPLES,
            # Per job: the series cap is the app's, and every instance reaches it alike.
            ("job", "metric"),
            f'Observations folded into route="other" in the last {w}, by metric: '
            "MetricsSamplesFolded and the Samples folded panel.",
        ),
        Record(
            pool_saturation(cfg),
            # Pools without a limit (size and overflow both 0) are left out, not divided by 0.
            f"{series(c.DB_POOL_CHECKED_OUT)}{job_selector(cfg)}\n/\n"
            f"(({series(c.DB_POOL_SIZE)}{job_selector(cfg)}"
            f" + {series(c.DB_POOL_MAX_OVERFLOW)}{job_selector(cfg)}) > 0)",
            frozenset({"job", "instance", "pool"}),
            "Share of each pool's connections (size plus max overflow) checked out.",
        ),
        *_postgres(cfg),
    ]


def _postgres(cfg: config.Config) -> list[Record]:
    """Rules over postgres_exporter's series (empty when no exporter is scraped; the
    PostgreSQL dashboard draws them whatever the config)."""
    from genonaut_monitoring.exporters import pgmetrics

    w = cfg.intervals.rate_window
    return [
        _increase(
            cfg,
            pg_deadlocks_increase(cfg),
            pgmetrics.PG_DEADLOCKS,
            ("job", "instance", "server", "datname"),
            f"Deadlocks per database in the last {w}: PostgresDeadlocks and its panel.",
            selector=f"{{job={json.dumps(cfg.postgres.job)}}}",
        )
    ]


def group(cfg: config.Config) -> Group:
    """The recording rules as one group, evaluated before the alert groups."""
    return Group("recording", tuple(rules(cfg)))
