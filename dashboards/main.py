"""Main development dashboard: traffic, latency, errors, saturation and firing alerts.

Titled ``<Grafana.title>: main development`` ("Genonaut: main development" by default).
"""

from __future__ import annotations

import grafanalib.core as g

from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording as r
from genonaut_monitoring.config import fmt_ratio, fmt_seconds
from genonaut_monitoring.dashboards import common as c
from genonaut_monitoring.exporters import catalogue as m

HTTP = ("route",)


def _recorded_p95(buckets: str, by: tuple[str, ...] = (), route: bool = False) -> str:
    """The alerts' quantile (p95) of a bucket-rate recording rule: their window too."""
    inner = c.sum_by(("le", *by), c.recorded(buckets, route=route))
    return f"histogram_quantile({r.QUANTILE}, {inner})"


def request_rate(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Request rate by route",
        "Requests per second each route template serves, all methods and status codes. "
        f"A sudden drop usually means the API or its scrape target is down. {c.RATE_WINDOW}",
        [c.Query(c.sum_by(HTTP, c.rate(m.HTTP_REQUESTS, route=True)), "{{route}}")],
        unit="reqps",
        stack=True,
    )


def response_time(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Response time",
        "Response time percentiles over all selected routes, from the request-duration "
        f"histogram. The dashed line is the p95 alert threshold "
        f"({fmt_seconds(cfg.thresholds.latency_p95_seconds)}, ApiHighLatency). {c.RATE_WINDOW}",
        [
            c.Query(c.quantile(q, m.HTTP_REQUEST_DURATION, route=True), f"p{round(q * 100)}")
            for q in (0.5, 0.95, 0.99)
        ],
        unit="s",
        steps=c.above(cfg.thresholds.latency_p95_seconds),
    )


def response_time_by_route(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "p95 response time by route",
        "95th percentile response time of each route, as ApiHighLatency reads it. A route "
        f"above the dashed line ({fmt_seconds(cfg.thresholds.latency_p95_seconds)}) for "
        f"{cfg.durations.api_high_latency} fires ApiHighLatency. {c.alert_window(cfg)}",
        [c.Query(c.recorded(r.http_duration_p95(cfg), route=True), "{{route}}")],
        unit="s",
        steps=c.above(cfg.thresholds.latency_p95_seconds),
    )


def _route_error_ratio(cfg: config.Config) -> str:
    """5xx share per selected route, from the recorded request rates (the alert's window)."""
    rates = r.http_requests_rate(cfg)
    errors = c.sum_by(HTTP, c.recorded(rates, 'status=~"5.."', route=True))
    every = c.sum_by(HTTP, c.recorded(rates, route=True))
    return f"({errors} or 0 * {every})\n  / {every}"


def error_ratio(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Error rate",
        "Share of responses with a 5xx status: the ratio ApiHighErrorRate reads (all routes "
        "of the job, whatever the route selection) and each selected route's. Above the "
        f"dashed line ({fmt_ratio(cfg.thresholds.error_ratio)}) for "
        f"{cfg.durations.api_high_error_rate} fires ApiHighErrorRate. 4xx responses are client "
        f"mistakes and do not count. {c.alert_window(cfg)}",
        [
            c.Query(c.recorded(r.http_error_ratio(cfg)), "all routes"),
            c.Query(_route_error_ratio(cfg), "{{route}}"),
        ],
        unit="percentunit",
        steps=c.above(cfg.thresholds.error_ratio),
        max_value=1,
    )


def error_ratio_now(cfg: config.Config) -> g.Panel:
    return c.stat(
        "5xx ratio",
        f"Share of 5xx responses, as ApiHighErrorRate reads it; red from "
        f"{fmt_ratio(cfg.thresholds.error_ratio)}, its threshold. {c.alert_window(cfg)}",
        c.recorded(r.http_error_ratio(cfg)),
        unit="percentunit",
        steps=c.above(cfg.thresholds.error_ratio),
    )


def requests_now(cfg: config.Config) -> g.Panel:
    return c.stat(
        "Requests per second",
        f"Requests per second over all selected routes. {c.RATE_WINDOW}",
        c.sum_by((), c.rate(m.HTTP_REQUESTS, route=True)),
        unit="reqps",
    )


def p95_now(cfg: config.Config) -> g.Panel:
    return c.stat(
        "p95 response time",
        "95th percentile response time over all selected routes; red from "
        f"{fmt_seconds(cfg.thresholds.latency_p95_seconds)}, the ApiHighLatency threshold. "
        f"{c.alert_window(cfg)}",
        _recorded_p95(r.http_duration_buckets(cfg), route=True),
        unit="s",
        steps=c.above(cfg.thresholds.latency_p95_seconds),
    )


def targets_up(cfg: config.Config) -> g.Panel:
    return c.stat(
        "Targets up",
        "How many API instances Prometheus scraped successfully on its last scrape. "
        f"Zero means the API is down or unreachable (ApiTargetDown). {c.SCRAPE_WINDOW}",
        c.sum_by((), c.selector(c.UP)),
        unit="none",
        steps=c.below(1),
    )


def errors_by_status(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Errors by status code",
        "4xx and 5xx responses per second by status code. 404s on item routes are "
        "normal; 499 is a client that left before the answer; 500s are bugs or faults and "
        f"also show in the 5xx ratio. {c.RATE_WINDOW}",
        [
            c.Query(
                c.sum_by(("status",), c.rate(m.HTTP_REQUESTS, 'status=~"[45].."', route=True)),
                "{{status}}",
            )
        ],
        unit="reqps",
        stack=True,
        no_value="no 4xx/5xx responses",
    )


def exceptions(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Unhandled exceptions by type and route",
        "Exceptions per second that escaped a route's handler, by exception type and route; "
        "each one was answered with a 500 and is in the 5xx ratio. Empty while no handler "
        f"raises: that is the normal state. {c.RATE_WINDOW}",
        [
            c.Query(
                c.sum_by(("exception", "route"), c.rate(m.HTTP_EXCEPTIONS, route=True)),
                "{{exception}} {{route}}",
            )
        ],
        unit="reqps",
        no_value="no unhandled exceptions",
    )


def folded_samples(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Samples folded into route=other",
        'Observations recorded under route="other" because their metric reached its series '
        "cap (instrument(max_series_per_metric=...)), by metric, as MetricsSamplesFolded "
        "counts them; any for "
        f"{cfg.durations.metrics_samples_folded} fires it. Zero in a healthy app: route "
        "labels are templates, so only an app with very many routes gets here; then raise "
        f"the cap or drop routes from the metrics. {c.alert_window(cfg)}",
        [c.Query(c.recorded(r.folded_samples_increase(cfg)), "{{metric}}")],
        unit="short",
    )


def in_progress(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Requests in progress",
        "Requests being served at scrape time, by method. A steady climb means "
        "requests arrive faster than they finish: look at response time and the pool. "
        f"{c.SCRAPE_WINDOW}",
        [
            c.Query(
                c.sum_by(("method",), c.selector(m.HTTP_REQUESTS_IN_PROGRESS)),
                "{{method}}",
            )
        ],
        unit="short",
    )


def cpu(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Process CPU",
        f"CPU time the API processes use per second: 100% is one full core. {c.RATE_WINDOW}",
        [c.Query(c.rate(c.PROCESS_CPU), "{{instance}}")],
        unit="percentunit",
    )


def memory(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Process memory (RSS)",
        "Resident memory of each API process. Steady growth under constant load "
        f"suggests a leak (an unbounded cache or label set). {c.SCRAPE_WINDOW}",
        [c.Query(c.selector(c.PROCESS_MEMORY), "{{instance}}")],
        unit="bytes",
    )


def writes_dropped(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Metric writes dropped",
        "Metric updates the API workers could not write to their multiprocess directory "
        "(PROMETHEUS_MULTIPROC_DIR), by reason (full, read_only, missing, error) and "
        "instance, as MetricsWritesDropped counts them; any for "
        f"{cfg.durations.metrics_writes_dropped} fires it. Requests are served all the "
        "same; the values wait in each worker's memory, and the worker's log names the "
        f"directory and the fix. Zero is the normal state. {c.alert_window(cfg)}",
        [
            c.Query(
                c.recorded(r.writes_dropped_increase(cfg), c.SCOPE[1]),
                "{{reason}} {{instance}}",
            )
        ],
        unit="short",
        no_value="no dropped writes",
    )


def samples_per_scrape(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Samples per scrape",
        "Samples each API instance exposed at its last scrape: its series count, so a "
        "steady climb is label cardinality growing toward the series cap (see Samples "
        "folded). Zero on a target that is up means /metrics answered empty: its "
        "multiprocess directory is missing, or was read-only or full at start; for "
        f"{cfg.durations.metrics_scrape_empty} that fires MetricsScrapeEmpty. "
        f"{c.SCRAPE_WINDOW}",
        [c.Query(c.selector(m.SCRAPE_SAMPLES), "{{instance}}")],
        unit="short",
    )


def db_summary(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Database query time p95 by operation",
        "95th percentile statement time per SQL operation. DatabaseSlowQueries fires for an "
        "operation and table above the dashed line "
        f"({fmt_seconds(cfg.thresholds.db_query_p95_seconds)}) for "
        f"{cfg.durations.database_slow_queries}. Details: the database dashboard. "
        f"{c.alert_window(cfg)}",
        [
            c.Query(
                _recorded_p95(r.db_duration_buckets(cfg), by=("operation",)),
                "{{operation}}",
            )
        ],
        unit="s",
        steps=c.above(cfg.thresholds.db_query_p95_seconds),
    )


def pagination_summary(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Pagination query time p95 by mode",
        "95th percentile time of the statements that fetch one page, offset vs cursor. "
        "PaginationSlowQueries fires for a route and mode above the dashed line "
        f"({fmt_seconds(cfg.thresholds.pagination_query_p95_seconds)}) for "
        f"{cfg.durations.pagination_slow_queries}. Details: the pagination dashboard. "
        f"{c.alert_window(cfg)}",
        [
            c.Query(
                _recorded_p95(r.pagination_query_buckets(cfg), by=("mode",), route=True),
                "{{mode}}",
            )
        ],
        unit="s",
        steps=c.above(cfg.thresholds.pagination_query_p95_seconds),
    )


def firing_alerts(cfg: config.Config) -> g.Panel:
    return c.alert_list(
        "Firing alerts",
        "Alerts Prometheus is evaluating that are firing or pending, read through the "
        f"{cfg.grafana.prometheus_name} datasource's rules API (the rules live in "
        "Prometheus, so Grafana needs no alerting provisioning of its own to list them).",
        cfg.grafana.prometheus_name,
    )


def dashboard(cfg: config.Config) -> g.Dashboard:
    """The main development dashboard."""
    return g.Dashboard(
        title="main development",
        description="Traffic, latency, errors and saturation of the API.",
        templating=g.Templating(
            c.api_variables(cfg, m.HTTP_REQUESTS, route="Route templates to include.")
        ),
        panels=c.layout(
            c.row(4, requests_now(cfg), error_ratio_now(cfg), p95_now(cfg), targets_up(cfg)),
            c.row(8, (request_rate(cfg), 12), (response_time(cfg), 12)),
            c.row(8, (error_ratio(cfg), 12), (errors_by_status(cfg), 12)),
            c.row(8, (response_time_by_route(cfg), 12), (exceptions(cfg), 12)),
            c.row(8, in_progress(cfg), db_summary(cfg), pagination_summary(cfg)),
            c.row(
                8,
                (cpu(cfg), 6),
                (memory(cfg), 6),
                (folded_samples(cfg), 4),
                (firing_alerts(cfg), 8),
            ),
            c.row(6, (writes_dropped(cfg), 16), (samples_per_scrape(cfg), 8)),
        ),
    )
