"""Shared dashboard styling: PromQL helpers, panel factories, template variables, layout.

Dashboard modules build panels only through these factories, so every panel
gets a datasource, a unit, a description and thresholds in the modern
(Grafana 10+) JSON shape. grafanalib's own classes for gauges, bar gauges,
heatmaps, tables and targets emit pre-8.0 fields; the subclasses here emit the
current ones instead.

    >>> from genonaut_monitoring.exporters import catalogue as c
    >>> quantile(0.95, c.HTTP_REQUEST_DURATION, by=("route",))
    'histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket{job="$job",instance=~"$instance"}[$__rate_interval])))'
"""  # noqa: E501

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, TypeAlias

import attr
import grafanalib.core as g

from genonaut_monitoring import config
from genonaut_monitoring.alerts.promql import hidden_routes_matcher, job_matcher, series
from genonaut_monitoring.exporters import catalogue
from genonaut_monitoring.exporters.catalogue import MetricSpec

# Every panel queries the dashboard's datasource variable, so one dashboard
# serves any Prometheus the user picks; the variable itself defaults to the
# provisioned uid from config.
DATASOURCE_VAR = "datasource"
PROMETHEUS = {"type": "prometheus", "uid": "${" + DATASOURCE_VAR + "}"}

# Matchers every query carries, so the job/instance variables filter everything.
SCOPE = ('job="$job"', 'instance=~"$instance"')
ROUTE = 'route=~"$route"'

# Series colours: one meaning per colour across all dashboards.
OK, WARN, BAD = "green", "orange", "red"

Step = dict[str, Any]


# --- PromQL -------------------------------------------------------------------


PROCESS_CPU = catalogue.PROCESS_CPU
PROCESS_MEMORY = catalogue.PROCESS_RESIDENT_MEMORY
UP = catalogue.UP


def selector(spec: MetricSpec, *matchers: str, suffix: str = "", route: bool = False) -> str:
    """``name{job="$job",instance=~"$instance",...}`` for one of ``spec``'s series."""
    labels = [*SCOPE, *((ROUTE,) if route else ()), *matchers]
    return f"{series(spec, suffix)}{{{','.join(labels)}}}"


def rate(
    spec: MetricSpec,
    *matchers: str,
    suffix: str = "",
    route: bool = False,
    window: str = "$__rate_interval",
) -> str:
    """``rate(selector[$__rate_interval])``."""
    return f"rate({selector(spec, *matchers, suffix=suffix, route=route)}[{window}])"


def increase(spec: MetricSpec, *matchers: str, suffix: str = "", route: bool = False) -> str:
    """``increase(selector[$__range])``: totals over the dashboard's time range."""
    return f"increase({selector(spec, *matchers, suffix=suffix, route=route)}[$__range])"


def sum_by(by: Sequence[str], inner: str) -> str:
    """``sum by (labels) (inner)``, or ``sum(inner)`` without labels."""
    return f"sum by ({', '.join(by)}) ({inner})" if by else f"sum({inner})"


def quantile(
    q: float,
    spec: MetricSpec,
    *matchers: str,
    by: Sequence[str] = (),
    route: bool = False,
    window: str = "$__rate_interval",
) -> str:
    """The ``q`` quantile of a histogram, aggregated ``by`` the given labels (``le`` kept)."""
    buckets = rate(spec, *matchers, suffix="_bucket", route=route, window=window)
    return f"histogram_quantile({q}, {sum_by(('le', *by), buckets)})"


def recorded(name: str, *matchers: str, route: bool = False) -> str:
    """A recording rule's series for the selected job (rules sum the instances)."""
    labels = [SCOPE[0], *((ROUTE,) if route else ()), *matchers]
    return f"{name}{{{','.join(labels)}}}"


# Every data panel's description ends with the window it shows (checked by the build),
# so a line that disagrees with an alert can be told apart from one that agrees.
WINDOW = "Window: "


def alert_window(cfg: config.Config) -> str:
    """The window sentence of a panel drawing an alert's own recording rule."""
    return (
        f"{WINDOW}the last {cfg.intervals.rate_window}, the alert rules' own window "
        "(their recording rule, all instances summed)."
    )


RATE_WINDOW = f"{WINDOW}Grafana's rate interval (at least four scrapes), per instance selected."
RANGE_WINDOW = f"{WINDOW}the dashboard's time range."
SCRAPE_WINDOW = f"{WINDOW}the last scrape."


def or_zero(present: str, baseline: str) -> str:
    """``present``, with 0 for each series of ``baseline`` that ``present`` lacks.

    Counters the exporters create on first use (errors, slow queries, 5xx
    statuses) are absent until that happens; filling from a series that always
    exists keeps the panel at a labelled 0 instead of "No data".
    """
    return f"{present} or 0 * {baseline}"


def ratio(spec: MetricSpec, part: str, by: Sequence[str] = (), route: bool = False) -> str:
    """Share of ``spec``'s rate whose labels match ``part`` (e.g. ``result="hit"``); 0, not
    absent, while no series matches ``part`` yet."""
    whole = rate(spec, route=route)
    return f"{sum_by(by, or_zero(rate(spec, part, route=route), whole))}\n  / {sum_by(by, whole)}"


def mean(spec: MetricSpec, by: Sequence[str] = (), route: bool = False) -> str:
    """Mean observed value of a histogram: rate of ``_sum`` over rate of ``_count``."""
    total = sum_by(by, rate(spec, suffix="_sum", route=route))
    count = sum_by(by, rate(spec, suffix="_count", route=route))
    return f"{total}\n  / {count}"


# --- thresholds ---------------------------------------------------------------


def above(limit: float, base: str = OK, over: str = BAD) -> list[Step]:
    """Threshold steps: ``base`` colour, ``over`` from ``limit`` upwards (bad when high)."""
    return [{"color": base, "value": None}, {"color": over, "value": limit}]


def below(limit: float) -> list[Step]:
    """Threshold steps: red under ``limit``, green from it upwards (bad when low)."""
    return [{"color": BAD, "value": None}, {"color": OK, "value": limit}]


NEUTRAL: list[Step] = [{"color": OK, "value": None}]


# --- targets ------------------------------------------------------------------


@attr.s
class Query:
    """One PromQL query of a panel, in the Prometheus datasource's current shape."""

    expr: str = attr.ib()
    legend: str = attr.ib(default="__auto")
    instant: bool = attr.ib(default=False)
    table: bool = attr.ib(default=False)
    heatmap: bool = attr.ib(default=False)
    refId: str = attr.ib(default="")  # grafanalib's auto-id reads this name

    def to_json_data(self) -> dict[str, Any]:
        fmt = "table" if self.table else "heatmap" if self.heatmap else "time_series"
        return {
            "datasource": PROMETHEUS,
            "editorMode": "code",
            "expr": self.expr,
            "format": fmt,
            "instant": self.instant,
            "legendFormat": self.legend,
            "range": not self.instant,
            "refId": self.refId,
        }


def _queries(queries: Iterable[Query | str]) -> list[Query]:
    """Give each query a refId (A, B, ...); a bare string becomes a Query."""
    out = []
    for index, query in enumerate(queries):
        query = query if isinstance(query, Query) else Query(query)
        out.append(attr.evolve(query, refId=chr(ord("A") + index)))
    return out


# --- panels grafanalib renders in a pre-8.0 shape ---------------------------------


def _reduce(calc: str) -> dict[str, Any]:
    return {"calcs": [calc], "fields": "", "values": False}


@attr.s
class Gauge(g.Panel):
    """A gauge panel (``gauge``) with modern fieldConfig/options."""

    unit: str = attr.ib(default="")
    min: float = attr.ib(default=0)
    max: float = attr.ib(default=1)
    calc: str = attr.ib(default="lastNotNull")

    def to_json_data(self) -> dict[str, Any]:
        return self.panel_json(
            {
                "fieldConfig": {
                    "defaults": {"unit": self.unit, "min": self.min, "max": self.max},
                    "overrides": [],
                },
                "options": {
                    "reduceOptions": _reduce(self.calc),
                    "showThresholdLabels": False,
                    "showThresholdMarkers": True,
                },
                "type": g.GAUGE_TYPE,
            }
        )


@attr.s
class Bars(g.Panel):
    """A bar gauge panel (``bargauge``) with modern fieldConfig/options."""

    unit: str = attr.ib(default="")
    calc: str = attr.ib(default="lastNotNull")
    decimals: int | None = attr.ib(default=None)
    # Field display names by regex of the series name (``le`` bounds -> value ranges).
    names: tuple[tuple[str, str], ...] = attr.ib(default=())

    def to_json_data(self) -> dict[str, Any]:
        defaults: dict[str, Any] = {"unit": self.unit, "min": 0, "color": {"mode": "thresholds"}}
        if self.decimals is not None:
            defaults["decimals"] = self.decimals
        return self.panel_json(
            {
                "fieldConfig": {
                    "defaults": defaults,
                    "overrides": [display_name(pattern, name) for pattern, name in self.names],
                },
                "options": {
                    "displayMode": "gradient",
                    "orientation": "horizontal",
                    "reduceOptions": _reduce(self.calc),
                    "showUnfilled": True,
                    "valueMode": "color",
                },
                "type": g.BARGAUGE_TYPE,
            }
        )


@attr.s
class HeatmapPanel(g.Panel):
    """A heatmap of pre-bucketed Prometheus histograms (Grafana 9+ ``heatmap`` options)."""

    unit: str = attr.ib(default="")
    cell_unit: str = attr.ib(default="short")

    def to_json_data(self) -> dict[str, Any]:
        return self.panel_json(
            {
                "fieldConfig": {"defaults": {"unit": self.unit}, "overrides": []},
                "options": {
                    # Prometheus already bucketed the data: never re-bucket it.
                    "calculate": False,
                    "cellGap": 1,
                    # The heatmap gives its cells the first bucket field's config, unit
                    # included: without this the counts would read as seconds.
                    "cellValues": {"unit": self.cell_unit},
                    "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                    "filterValues": {"le": 1e-9},
                    "legend": {"show": True},
                    "rowsFrame": {"layout": "auto"},
                    "tooltip": {"mode": "single", "yHistogram": True},
                    "yAxis": {"axisPlacement": "left", "unit": self.unit},
                },
                "type": g.HEATMAP_TYPE,
            }
        )


@attr.s
class TablePanel(g.Panel):
    """A table of instant-query results, sorted by one column."""

    unit: str = attr.ib(default="")
    # The query's value column ("Value" in Grafana) is shown, and sorted, under this name.
    value_name: str = attr.ib(default="Value")
    hide: tuple[str, ...] = attr.ib(default=("Time",))

    def to_json_data(self) -> dict[str, Any]:
        return self.panel_json(
            {
                "fieldConfig": {
                    "defaults": {
                        "unit": self.unit,
                        "color": {"mode": "thresholds"},
                        "custom": {"align": "auto", "cellOptions": {"type": "color-text"}},
                    },
                    "overrides": [],
                },
                "options": {
                    "showHeader": True,
                    "sortBy": [{"desc": True, "displayName": self.value_name}],
                },
                "transformations": [
                    {
                        "id": "organize",
                        "options": {
                            "excludeByName": {name: True for name in self.hide},
                            "renameByName": {"Value": self.value_name},
                        },
                    }
                ],
                "type": g.TABLE_TYPE,
            }
        )


@attr.s
class AlertListPanel(g.Panel):
    """Grafana's unified alert list (``alertlist``), which grafanalib only has in 7.x form."""

    datasource_name: str = attr.ib(default="")

    def to_json_data(self) -> dict[str, Any]:
        return self.panel_json(
            {
                "fieldConfig": {"defaults": {}, "overrides": []},
                "options": {
                    "alertInstanceLabelFilter": "",
                    "alertName": "",
                    "dashboardAlerts": False,
                    # Rules Prometheus evaluates, read through this datasource's rules API.
                    "datasource": self.datasource_name,
                    "groupBy": [],
                    "groupMode": "default",
                    "maxItems": 20,
                    "sortOrder": 3,  # importance: firing first
                    "stateFilter": {
                        "error": True,
                        "firing": True,
                        "noData": False,
                        "normal": False,
                        "pending": True,
                    },
                    "viewMode": "list",
                },
                "type": "alertlist",
            }
        )


# --- panel factories ------------------------------------------------------------


def _new(cls: Any, **fields: Any) -> Any:
    """Instantiate a panel class; its inherited grafanalib fields are untyped."""
    return cls(**fields)


def _common(title: str, description: str, queries: Iterable[Query | str]) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "dataSource": PROMETHEUS,
        "targets": _queries(queries),
    }


def timeseries(
    title: str,
    description: str,
    queries: Iterable[Query | str],
    unit: str,
    steps: list[Step] | None = None,
    stack: bool = False,
    max_value: int | None = None,
    no_value: str | None = None,
) -> g.TimeSeries:
    """A time series; ``steps`` draws dashed threshold lines (from config values)."""
    extra: dict[str, Any] = {"fieldConfig": {"defaults": {}}}
    if no_value is not None:
        extra["fieldConfig"]["defaults"]["noValue"] = no_value
    return g.TimeSeries(
        **_common(title, description, queries),
        unit=unit,
        thresholds=steps or NEUTRAL,
        thresholdsStyleMode="dashed" if steps else "off",
        fillOpacity=10,
        showPoints="never",
        stacking={"mode": "normal", "group": "A"} if stack else {"mode": "none"},
        legendDisplayMode="table",
        legendPlacement="bottom",
        legendCalcs=["mean", "max", "lastNotNull"],
        tooltipMode="multi",
        tooltipSort="desc",
        valueMin=0,
        valueMax=max_value,
        extraJson=extra,
    )


def stat(
    title: str,
    description: str,
    query: Query | str,
    unit: str,
    steps: list[Step] | None = None,
) -> g.Stat:
    """One big number (last value), coloured by ``steps``."""
    return g.Stat(
        **_common(title, description, [query]),
        format=unit,
        thresholds=steps or NEUTRAL,
        color={"mode": "thresholds"},
        reduceCalc="lastNotNull",
        graphMode="area",
        colorMode="value",
        noValue="No data",
    )


def gauge(title: str, description: str, query: Query | str, unit: str, steps: list[Step]) -> Gauge:
    """A 0..1 gauge with threshold markers."""
    return _new(Gauge, **_common(title, description, [query]), unit=unit, thresholds=steps)


def bars(
    title: str,
    description: str,
    query: Query,
    unit: str,
    steps: list[Step] | None = None,
    decimals: int | None = None,
    names: tuple[tuple[str, str], ...] = (),
) -> Bars:
    """Horizontal bars, one per series (e.g. one per histogram bucket)."""
    return _new(
        Bars,
        **_common(title, description, [query]),
        unit=unit,
        thresholds=steps or NEUTRAL,
        decimals=decimals,
        names=names,
    )


def pie(title: str, description: str, query: Query, unit: str) -> g.PieChartv2:
    """A donut of each series' share of the total."""
    return g.PieChartv2(
        **_common(title, description, [query]),
        unit=unit,
        pieType="donut",
        legendDisplayMode="table",
        legendPlacement="right",
        legendValues=["value", "percent"],
        reduceOptionsCalcs=["lastNotNull"],
        thresholds=NEUTRAL,
    )


def heatmap(
    title: str, description: str, query: Query, unit: str, cell_unit: str = "short"
) -> HeatmapPanel:
    """A heatmap of a histogram's ``_bucket`` rates: buckets in ``unit``, cells counted."""
    return _new(
        HeatmapPanel,
        **_common(title, description, [query]),
        unit=unit,
        cell_unit=cell_unit,
        thresholds=NEUTRAL,
    )


def table(
    title: str,
    description: str,
    query: Query,
    unit: str,
    value_name: str,
    steps: list[Step] | None = None,
) -> TablePanel:
    """A table of one instant query, its value column named ``value_name``, highest first."""
    return _new(
        TablePanel,
        **_common(title, description, [query]),
        unit=unit,
        value_name=value_name,
        thresholds=steps or NEUTRAL,
    )


def alert_list(title: str, description: str, datasource_name: str) -> AlertListPanel:
    """Firing and pending alerts of the rules Prometheus evaluates."""
    return _new(
        AlertListPanel, title=title, description=description, datasource_name=datasource_name
    )


def text(title: str, description: str, markdown: str) -> g.Text:
    """A markdown note."""
    return g.Text(title=title, description=description, content=markdown)


# --- template variables -----------------------------------------------------------


@attr.s
class Variable:
    """A dashboard template variable in Grafana 10's shape."""

    name: str = attr.ib()
    label: str = attr.ib()
    type: str = attr.ib()
    query: str = attr.ib()
    description: str = attr.ib()
    current: str = attr.ib(default="")
    current_text: str = attr.ib(default="")
    include_all: bool = attr.ib(default=False)

    def to_json_data(self) -> dict[str, Any]:
        current = (
            {"selected": True, "text": ["All"], "value": ["$__all"]}
            if self.include_all
            else {
                "selected": True,
                "text": self.current_text or self.current,
                "value": self.current,
            }
        )
        data: dict[str, Any] = {
            "current": current,
            "description": self.description,
            "hide": 0,
            "includeAll": self.include_all,
            "label": self.label,
            "multi": self.include_all,
            "name": self.name,
            "options": [],
            "query": self.query,
            "skipUrlSync": False,
            "type": self.type,
        }
        if self.type == "query":
            # Refresh the values whenever the time range changes: new instances appear.
            # No "definition": the dashboard model (VariableModel) has no such key.
            data.update(datasource=PROMETHEUS, refresh=2, regex="", sort=1)
        else:
            data.update(refresh=1, regex="")
        return data


def datasource_variable(default_uid: str, default_name: str) -> Variable:
    """The Prometheus datasource picker every panel queries through."""
    return Variable(
        DATASOURCE_VAR,
        "Data source",
        "datasource",
        "prometheus",
        "Prometheus to query; defaults to the provisioned one.",
        current=default_uid,
        current_text=default_name,
    )


def label_variable(
    name: str, spec: MetricSpec, description: str, *matchers: str, suffix: str = "", **kw: Any
) -> Variable:
    """A query variable listing ``name`` label values of a catalogue metric."""
    selected = series(spec, suffix) + (f"{{{','.join(matchers)}}}" if matchers else "")
    return Variable(
        name,
        name.capitalize(),
        "query",
        f"label_values({selected}, {name})",
        description,
        **kw,
    )


def share_per_cache(
    title: str, description: str, spec: MetricSpec, part: str, minimum: float
) -> g.Panel:
    """The share of ``spec``'s events matching ``part``, per cache; red below ``minimum``."""
    return timeseries(
        title,
        description,
        [Query(ratio(spec, part, by=("cache",)), "{{cache}}")],
        unit="percentunit",
        steps=below(minimum),
        max_value=1,
        no_value="no lookups reported",
    )


def display_name(pattern: str, name: str) -> dict[str, Any]:
    """A field override: series whose name matches ``pattern`` are shown as ``name``."""
    return {
        "matcher": {"id": "byRegexp", "options": pattern},
        "properties": [{"id": "displayName", "value": name}],
    }


def bucket_ranges(spec: MetricSpec, minimum: int) -> list[tuple[float, str]]:
    """Each bucket of a whole-number histogram, by upper bound, as the values it counts.

    >>> bucket_ranges(catalogue.MetricSpec("x", "histogram", "X.", buckets=(1, 5, 10)), 1)
    [(1, '1'), (5, '2-5'), (10, '6-10'), (inf, '11+')]
    """
    ranges, lower = [], minimum
    for bound in spec.buckets or ():
        if not float(bound).is_integer() or bound < lower:
            raise ValueError(
                f"{spec.name}: bucket {bound} is not a whole number of at least {lower}; "
                "bucket_bars labels whole-number ranges"
            )
        upper = int(bound)
        ranges.append((bound, str(upper) if upper == lower else f"{lower}-{upper}"))
        lower = upper + 1
    return [*ranges, (math.inf, f"{lower}+")]


def _le_pattern(bound: float) -> str:
    """An anchored regex for an ``le`` value as clients write it: 5, 5.0 or +Inf."""
    return r"^\+Inf$" if math.isinf(bound) else rf"^{int(bound)}(\.0)?$"


def bucket_bars(
    title: str, description: str, spec: MetricSpec, *matchers: str, minimum: int = 1
) -> g.Panel:
    """Requests per bucket of whole-number histogram ``spec`` over the dashboard's range.

    Grafana's heatmap format sorts the buckets by ``le`` and de-accumulates them; each
    bar is named by the values it counts (``2-5``, not its bound ``5.0``) and shows a
    whole count: ``increase()`` extrapolates to fractions (40.2 requests), so each
    cumulative bucket is rounded first and their differences stay whole.
    """
    buckets = sum_by(("le",), increase(spec, *matchers, suffix="_bucket", route=True))
    return bars(
        title,
        description,
        Query(f"round({buckets})", "{{le}}", instant=True, heatmap=True),
        unit="short",
        names=tuple((_le_pattern(bound), label) for bound, label in bucket_ranges(spec, minimum)),
    )


def api_variables(
    cfg: config.Config, spec: MetricSpec, *, suffix: str = "", route: str | None = None
) -> list[Variable]:
    """Datasource, job and instance variables (and route, described by ``route``) from ``spec``."""
    variables = [
        datasource_variable(cfg.grafana.prometheus_uid, cfg.grafana.prometheus_name),
        label_variable(
            "job",
            spec,
            "Prometheus job: one per configured service.",
            job_matcher(cfg),
            suffix=suffix,
            current=cfg.jobs[0],
        ),
        label_variable(
            "instance",
            spec,
            "API instances (host:port) to include.",
            'job="$job"',
            suffix=suffix,
            include_all=True,
        ),
    ]
    if route is not None:
        # One shared matcher keeps probes, scrapes and debug endpoints out of the picker,
        # and so out of every route panel ("All" stands for the routes listed).
        hidden = hidden_routes_matcher(cfg)
        variables.append(
            label_variable(
                "route", spec, route, 'job="$job"', hidden, suffix=suffix, include_all=True
            )
        )
    return variables


def dashboard_link(cfg: config.Config, key: str, title: str) -> g.DashboardLink:
    """A link to the dashboard ``key`` (of ``cfg.grafana.dashboard_uids``), same time range.

    Variables are not carried over: the two dashboards select different jobs.
    """
    return g.DashboardLink(
        title=title,
        type="link",
        uri=f"/d/{cfg.grafana.dashboard_uids[key]}",
        keepTime=True,
        includeVars=False,
        icon="dashboard",
    )


# --- layout -----------------------------------------------------------------------

GRID_WIDTH = 24

# A panel, or (panel, width in columns). grafanalib is untyped, so panels are Any.
Cell: TypeAlias = Any


def row(height: int, *cells: Cell) -> tuple[int, list[Cell]]:
    """One row of panels of one ``height``; a cell is a panel or ``(panel, width)``."""
    return height, list(cells)


def layout(*rows: tuple[int, list[Cell]]) -> list[g.Panel]:
    """Place rows top to bottom; panels without a width share what is left of the 24 columns.

    >>> [p.gridPos.x for p in layout(row(8, g.Text(title="a"), (g.Text(title="b"), 16)))]
    [0, 8]
    """
    placed: list[g.Panel] = []
    y = 0
    for height, cells in rows:
        fixed = sum(cell[1] for cell in cells if isinstance(cell, tuple))
        free = [cell for cell in cells if not isinstance(cell, tuple)]
        if fixed > GRID_WIDTH or (free and fixed + len(free) > GRID_WIDTH):
            titles = [c[0].title if isinstance(c, tuple) else c.title for c in cells]
            raise ValueError(f"row {titles} is wider than the {GRID_WIDTH}-column grid")
        share, extra = divmod(GRID_WIDTH - fixed, len(free)) if free else (0, 0)
        x = 0
        for cell in cells:
            if isinstance(cell, tuple):
                panel, width = cell
            else:
                panel, width = cell, share + (1 if extra > 0 else 0)
                extra -= 1
            placed.append(attr.evolve(panel, gridPos=g.GridPos(h=height, w=width, x=x, y=y)))
            x += width
        y += height
    return placed
