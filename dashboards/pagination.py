"""Pagination performance dashboard: what paging costs by page size, depth and mode.

Titled ``<Grafana.title>: pagination performance`` ("Genonaut: pagination performance" by default).
"""

from __future__ import annotations

import grafanalib.core as g

from genonaut_monitoring import config
from genonaut_monitoring.alerts import recording as r
from genonaut_monitoring.alerts.promql import deep_offset_matcher
from genonaut_monitoring.config import fmt_ratio, fmt_seconds
from genonaut_monitoring.dashboards import common as c
from genonaut_monitoring.exporters import catalogue as m

# Why the frontend panels may be empty, said where a reader looks first.
FRONTEND_ONLY = (
    "Empty until a frontend reports its caches (POST /api/v1/telemetry/frontend, see "
    "instrument()); the API alone never does."
)


def query_time(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Pagination query time",
        "95th percentile time of the database statements that fetch one page, per route and "
        "mode, as PaginationSlowQueries reads it: above the dashed line "
        f"({fmt_seconds(cfg.thresholds.pagination_query_p95_seconds)}) for "
        f"{cfg.durations.pagination_slow_queries} it fires. The statements that page are "
        "timed by the database listeners, or by pagination_query() where the code has one. "
        f"{c.alert_window(cfg)}",
        [c.Query(c.recorded(r.pagination_query_p95(cfg), route=True), "{{route}} {{mode}}")],
        unit="s",
        steps=c.above(cfg.thresholds.pagination_query_p95_seconds),
    )


def query_time_by_page_size(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Query time by page size",
        "95th percentile time of the page query per page-size class: bigger pages cost more "
        "rows. The dashed line is the PaginationSlowQueries threshold "
        f"({fmt_seconds(cfg.thresholds.pagination_query_p95_seconds)}). {c.RATE_WINDOW}",
        [
            c.Query(
                c.quantile(0.95, m.PAGINATION_QUERY_DURATION, by=("page_size_class",), route=True),
                "{{page_size_class}}",
            )
        ],
        unit="s",
        steps=c.above(cfg.thresholds.pagination_query_p95_seconds),
    )


def response_time_by_offset(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Response time by offset range",
        "95th percentile duration of offset-paginated requests per route and offset range, "
        "as PaginationDeepOffsetSlow reads it. OFFSET makes the database skip rows, so deep "
        f"pages get slower; at offsets from {cfg.thresholds.deep_offset_min:,} above the "
        f"dashed line ({fmt_seconds(cfg.thresholds.deep_offset_p95_seconds)}) for "
        f"{cfg.durations.pagination_deep_offset_slow} fires PaginationDeepOffsetSlow. "
        f"{c.alert_window(cfg)}",
        [
            c.Query(
                c.recorded(r.pagination_offset_p95(cfg), 'offset_range!="none"', route=True),
                "{{route}} {{offset_range}}",
            )
        ],
        unit="s",
        steps=c.above(cfg.thresholds.deep_offset_p95_seconds),
    )


def offset_vs_cursor(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Offset vs cursor: response time",
        "Median and 95th percentile duration of paginated requests by mode. Cursor "
        "(keyset) pagination should stay flat however deep the user pages; offset grows. "
        f"{c.RATE_WINDOW}",
        [
            c.Query(
                c.quantile(q, m.PAGINATION_REQUEST_DURATION, by=("mode",), route=True),
                f"{{{{mode}}}} p{round(q * 100)}",
            )
            for q in (0.5, 0.95)
        ],
        unit="s",
        steps=c.above(cfg.thresholds.deep_offset_p95_seconds),
    )


def requests_by_mode(cfg: config.Config) -> g.Panel:
    return c.pie(
        "Requests by pagination mode",
        f"Share of paginated requests using offset vs cursor pagination. {c.RANGE_WINDOW}",
        c.Query(
            c.sum_by(
                ("mode",), c.increase(m.PAGINATION_REQUEST_DURATION, suffix="_count", route=True)
            ),
            "{{mode}}",
            instant=True,
        ),
        unit="short",
    )


def page_size_distribution(cfg: config.Config) -> g.Panel:
    return c.bucket_bars(
        "Page size distribution",
        "How many requests asked for a page size in each range (ranges are the page-size "
        "histogram's buckets). "
        f"{c.RANGE_WINDOW}",
        m.PAGINATION_PAGE_SIZE,
    )


def most_requested_pages(cfg: config.Config) -> g.Panel:
    return c.bucket_bars(
        "Most requested pages",
        "Offset-paginated requests per page-number range (1 is the first page). Most traffic "
        f"should be on the first pages. {c.RANGE_WINDOW}",
        m.PAGINATION_PAGE_NUMBER,
    )


def requests_by_offset(cfg: config.Config) -> g.Panel:
    return c.bucket_bars(
        "Requests by offset range",
        "Offset-paginated requests per range of the row offset they asked for. Traffic in the "
        "deep ranges is what a cursor would make cheap; every paginated route's series exist "
        f"from start-up, so even one deep request shows. {c.RANGE_WINDOW}",
        m.PAGINATION_OFFSET,
        minimum=0,
    )


def deep_share(cfg: config.Config) -> g.Panel:
    count = m.PAGINATION_REQUEST_DURATION
    deep = c.rate(count, deep_offset_matcher(cfg), suffix="_count", route=True)
    every = c.rate(count, 'mode="offset"', suffix="_count", route=True)
    return c.stat(
        "Deep offset share",
        "Share of offset-paginated requests at offsets from "
        f"{cfg.thresholds.deep_offset_min:,} (deep pages) on the selected routes. "
        f"{c.RATE_WINDOW}",
        f"{c.sum_by((), c.or_zero(deep, every))}\n  / {c.sum_by((), every)}",
        unit="percentunit",
    )


def expensive_queries(cfg: config.Config) -> g.Panel:
    # "> 0" drops route/offset combinations that saw no query in the range (NaN quantiles).
    p95 = c.quantile(
        0.95,
        m.PAGINATION_QUERY_DURATION,
        by=("route", "offset_range"),
        route=True,
        window="$__range",
    )
    return c.table(
        "Most expensive pagination queries",
        "Route and offset range pairs ranked by the 95th percentile time of their page "
        "query, slowest first (top 10). Red rows are above the PaginationSlowQueries "
        f"threshold ({fmt_seconds(cfg.thresholds.pagination_query_p95_seconds)}). "
        f"{c.RANGE_WINDOW}",
        c.Query(f"topk(10, {p95} > 0)", "", instant=True, table=True),
        unit="s",
        value_name="p95 page query time",
        steps=c.above(cfg.thresholds.pagination_query_p95_seconds),
    )


def items_returned(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Items returned per page",
        "Mean number of items a page returned, by mode (the rows the driver reports for the "
        "statements that page, or pagination_query()'s count). Well under the page size "
        f"means users page past the end or filters drop rows. {c.RATE_WINDOW}",
        [c.Query(c.mean(m.PAGINATION_ITEMS_RETURNED, by=("mode",), route=True), "{{mode}}")],
        unit="short",
    )


def frontend_cache(cfg: config.Config) -> g.Panel:
    return c.share_per_cache(
        "Frontend cache hit rate",
        "Share of frontend page-cache lookups that hit, per cache, as reported by browsers. "
        f"Below the dashed line ({fmt_ratio(cfg.thresholds.cache_hit_ratio_min)}) the cache "
        f"saves little. {FRONTEND_ONLY} {c.RATE_WINDOW}",
        m.FRONTEND_CACHE_REQUESTS,
        'result="hit"',
        cfg.thresholds.cache_hit_ratio_min,
    )


def prefetch_efficiency(cfg: config.Config) -> g.Panel:
    return c.share_per_cache(
        "Prefetch efficiency",
        "Share of prefetched pages the user then opened, per cache. Below the dashed line "
        f"({fmt_ratio(cfg.thresholds.prefetch_efficiency_min)}) most prefetches are wasted "
        f"requests. {FRONTEND_ONLY} {c.RATE_WINDOW}",
        m.FRONTEND_PREFETCHES,
        'outcome="used"',
        cfg.thresholds.prefetch_efficiency_min,
    )


def dashboard(cfg: config.Config) -> g.Dashboard:
    """The pagination performance dashboard."""
    return g.Dashboard(
        title="pagination performance",
        description="Cost of paginated reads by page size, offset depth and mode.",
        templating=g.Templating(
            c.api_variables(
                cfg,
                m.PAGINATION_REQUEST_DURATION,
                suffix="_count",
                route="Paginated route templates to include.",
            )
        ),
        panels=c.layout(
            c.row(8, (query_time(cfg), 12), (response_time_by_offset(cfg), 12)),
            c.row(
                8,
                (query_time_by_page_size(cfg), 8),
                (offset_vs_cursor(cfg), 8),
                (requests_by_mode(cfg), 4),
                (deep_share(cfg), 4),
            ),
            c.row(
                8,
                page_size_distribution(cfg),
                most_requested_pages(cfg),
                requests_by_offset(cfg),
            ),
            c.row(9, (expensive_queries(cfg), 12), (items_returned(cfg), 12)),
            c.row(8, frontend_cache(cfg), prefetch_efficiency(cfg)),
        ),
    )
