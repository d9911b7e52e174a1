"""Service level objectives as code: SLI recording rules and burn-rate alerts for ``cfg.slos``.

The method is the SRE workbook's "multiwindow, multi-burn-rate alerts": an SLO
pages when its error budget burns fast over a long window *and* a short one
(the long one ignores a blip, the short one lets the alert end soon after the
burn does), and opens a ticket on a slow, steady burn. Every number comes from
``config.SloAlerting`` and ``config.Slo``.

Recording rules (labels ``job``, ``slo``, ``sli`` on every series)::

    slo:sli_requests:rate5m    requests per second the SLO counts        one rule per SLO
    slo:sli_errors:rate5m      the bad ones among them                   one rule per SLO
    slo:objective:ratio        the objective (0.995)                     one rule per SLO
    slo:error_budget:ratio     1 - objective                             one rule per SLO
    slo:sli_error:ratio_rate<W> bad / all over window W                  one rule per window

The longer windows (30m ... 30d) sum the two 5m rates over W rather than rating
the raw counters over W: a 30d rate over every raw series each evaluation would
read every sample of the month; a sum over one recorded series per SLO does not,
and the ratio of the two sums is still weighted by traffic.

    >>> error_ratio("1h")
    'slo:sli_error:ratio_rate1h'
"""

from __future__ import annotations

import json
import math
import re

from genonaut_monitoring import config
from genonaut_monitoring.alerts import slo_cases
from genonaut_monitoring.alerts.model import Alert, Group, Panel, Record, seconds
from genonaut_monitoring.alerts.promql import regex_alternation, series
from genonaut_monitoring.config import BurnRate, Slo, fmt_number, fmt_ratio
from genonaut_monitoring.exporters import catalogue as c

FAST_BURN = "SloErrorBudgetFastBurn"
SLOW_BURN = "SloErrorBudgetSlowBurn"
# The labels every SLO series carries, and what the alerts join and group on.
LABELS = ("job", "slo", "sli")
OBJECTIVE = "slo:objective:ratio"
ERROR_BUDGET = "slo:error_budget:ratio"
# The histogram a latency SLO reads; its buckets are the thresholds it can have.
LATENCY_HISTOGRAM = c.HTTP_REQUEST_DURATION
# The dashboard panels that show what each alert reads.
PAGE_PANEL, TICKET_PANEL = "Burn rate: page windows", "Burn rate: ticket windows"


# --- names --------------------------------------------------------------------------


def requests_rate(window: str) -> str:
    return f"slo:sli_requests:rate{window}"


def errors_rate(window: str) -> str:
    return f"slo:sli_errors:rate{window}"


def error_ratio(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


def windows(cfg: config.Config) -> list[str]:
    """Every window the alerts and the dashboard read, shortest first; the period last."""
    a = cfg.slo_alerting
    found = {w for rate in (*a.page, *a.ticket) for w in (rate.long, rate.short)}
    found.add(a.period)
    return sorted(found, key=seconds)


def base_window(cfg: config.Config) -> str:
    """The shortest window: the rate every longer window is summed from."""
    return windows(cfg)[0]


# --- what a request counts as -------------------------------------------------------


def le_matcher(threshold: float) -> str:
    """``le`` matching the bucket boundary ``threshold`` however the client spelt it.

    prometheus_client writes ``1.0``, Go's client ``1``, and Prometheus 3 rewrites both
    as ``1.0``: a matcher for one spelling would silently select nothing on another.
    """
    spellings = sorted({repr(float(threshold)), f"{threshold:g}"})
    if len(spellings) == 1:
        return f'le="{spellings[0]}"'
    return f'le=~"{regex_alternation(spellings)}"'


def boundary(threshold: float) -> float | None:
    """The bucket boundary of the latency histogram equal to ``threshold``, if there is one."""
    return next(
        (b for b in LATENCY_HISTOGRAM.buckets or () if math.isclose(b, threshold, rel_tol=1e-9)),
        None,
    )


def budget(slo: Slo) -> float:
    """The error budget: the share of requests allowed to be bad (0.005 for 99.5%)."""
    return round(1 - slo.objective, 12)


def _selector(cfg: config.Config, slo: Slo, *extra: str) -> str:
    """The SLO's requests: its job, its routes, plus ``extra`` matchers."""
    parts = [f"job={json.dumps(cfg.slo_job(slo))}"]
    if slo.routes:
        parts.append(f'route=~"{regex_alternation(list(slo.routes))}"')
    elif slo.route_regex:
        parts.append(f"route=~{json.dumps(slo.route_regex)}")
    return "{" + ", ".join([*parts, *extra]) + "}"


def _rate(name: str, selector: str, window: str) -> str:
    return f"sum by (job) (rate({name}{selector}[{window}]))"


def _sli_rates(cfg: config.Config, slo: Slo, window: str) -> tuple[str, str]:
    """PromQL for (all requests, bad requests) per second over ``window``."""
    if slo.sli == "availability":
        name = series(c.HTTP_REQUESTS)
        everything = _rate(name, _selector(cfg, slo), window)
        failed = _rate(name, _selector(cfg, slo, 'status=~"5.."'), window)
        # No 5xx series exists before the first 5xx: 0, not absent, until then.
        return everything, f"{failed}\nor\n0 * {everything}"
    assert slo.latency_seconds is not None
    edge = boundary(slo.latency_seconds) or slo.latency_seconds
    count = _rate(series(LATENCY_HISTOGRAM, "_count"), _selector(cfg, slo), window)
    fast = _rate(
        series(LATENCY_HISTOGRAM, "_bucket"), _selector(cfg, slo, le_matcher(edge)), window
    )
    return count, f"{count}\n-\n{fast}"


def _what(cfg: config.Config, slo: Slo) -> str:
    """What the SLO promises, in words: the comment above its rules."""
    where = (
        f"routes {', '.join(slo.routes)}"
        if slo.routes
        else f"routes matching {slo.route_regex}"
        if slo.route_regex
        else "all routes"
    )
    good = (
        "are not answered 5xx"
        if slo.sli == "availability"
        else f"are answered within {config.fmt_seconds(slo.latency_seconds or 0)}"
    )
    job = cfg.slo_job(slo)
    return f"SLO {slo.name}: {fmt_ratio(slo.objective)} of {job} requests to {where} {good}."


# --- recording rules ------------------------------------------------------------------


def records(cfg: config.Config) -> list[Record]:
    """Per SLO its two base rates and constants, then one error-ratio rule per window."""
    base, keeps = base_window(cfg), frozenset(LABELS)
    found: list[Record] = []
    for slo in cfg.slos:
        labels = {"slo": slo.name, "sli": slo.sli}
        constants = {"job": cfg.slo_job(slo), **labels}
        everything, bad = _sli_rates(cfg, slo, base)
        what = _what(cfg, slo)
        found += [
            Record(requests_rate(base), everything, keeps, f"{what}\nRequests it counts.", labels),
            Record(errors_rate(base), bad, keeps, f"{what}\nThe bad ones.", labels),
            Record(OBJECTIVE, f"vector({slo.objective!r})", keeps, f"{what}", constants),
            Record(
                ERROR_BUDGET,
                f"vector({budget(slo)!r})",
                keeps,
                f"{what}\nIts error budget: the share of requests allowed to be bad.",
                constants,
            ),
        ]
    for window in windows(cfg):
        if window == base:
            # No traffic means no ratio, not NaN: "> 0" drops the series instead.
            expr = f"{errors_rate(base)}\n/\n({requests_rate(base)} > 0)"
        else:
            expr = (
                f"sum_over_time({errors_rate(base)}[{window}])\n/\n"
                f"(sum_over_time({requests_rate(base)}[{window}]) > 0)"
            )
        why = f"Share of bad requests over {window}, per SLO, weighted by traffic."
        found.append(Record(error_ratio(window), expr, keeps, why))
    return found


# --- alerts -----------------------------------------------------------------------------


def burn_rate_of(ratio: str, selector: str = "") -> str:
    """The burn rate of an error-ratio series: the ratio over the error budget, per SLO."""
    return f"{ratio}{selector} / on ({', '.join(LABELS)}) {ERROR_BUDGET}{selector}"


def burn_rate(window: str) -> str:
    """The burn rate over ``window`` of every SLO."""
    return burn_rate_of(error_ratio(window))


def _burning(rate: BurnRate) -> str:
    factor = fmt_number(rate.factor)
    return f"(\n  {burn_rate(rate.long)} > {factor}\n  and\n  {burn_rate(rate.short)} > {factor}\n)"


def conditions(rates: tuple[BurnRate, ...]) -> str:
    """``rates`` in words: ``1h and 5m above 14.4x, or 6h and 30m above 6x``."""
    return ", or ".join(f"{r.long} and {r.short} above {fmt_number(r.factor)}x" for r in rates)


def lasts(cfg: config.Config, factor: float) -> str:
    """How long the budget lasts at burn rate ``factor``, as people say it (``5d``)."""
    left = seconds(cfg.slo_alerting.period) / factor
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if left >= size:
            return f"{fmt_number(round(left / size, 1))}{unit}"
    return f"{round(left)}s"


def _alert(
    cfg: config.Config,
    name: str,
    rates: tuple[BurnRate, ...],
    for_: str,
    *,
    page: bool,
) -> Alert:
    period, slowest = cfg.slo_alerting.period, min(r.factor for r in rates)
    return Alert(
        name=name,
        # Each pair: long window AND short window above the factor. $value is the burn
        # rate over the first long window that qualifies.
        expr="\nor\n".join(_burning(r) for r in rates),
        for_=for_,
        severity="critical" if page else "warning",
        summary=(
            f"An SLO burns its {period} error budget at {fmt_number(slowest)}x or faster, "
            f"which spends it within {lasts(cfg, slowest)}."
        ),
        description=(
            "SLO {{ $labels.slo }} ({{ $labels.sli }} of {{ $labels.job }}) spends its "
            "error budget {{ $value | humanize }} times as fast as the objective allows "
            f"({conditions(rates)})."
        ),
        panel=Panel("slo", PAGE_PANEL if page else TICKET_PANEL),
        cases=slo_cases.cases(cfg, rates),
    )


def alerts(cfg: config.Config) -> list[Alert]:
    """The page and the ticket, each across every SLO; none without SLOs or conditions."""
    if not cfg.slos:
        return []
    a = cfg.slo_alerting
    found = []
    if a.page:
        found.append(_alert(cfg, FAST_BURN, a.page, a.page_for, page=True))
    if a.ticket:
        found.append(_alert(cfg, SLOW_BURN, a.ticket, a.ticket_for, page=False))
    return found


def group(cfg: config.Config) -> Group:
    """Records before alerts: a group evaluates in order, so alerts read fresh ratios."""
    return Group("slo", (*records(cfg), *alerts(cfg)))


# --- checks ---------------------------------------------------------------------------


def problems(cfg: config.Config) -> list[str]:
    """SLO settings that cannot work, each naming the config key and what to do."""
    found: list[str] = []
    seen: dict[str, int] = {}
    for index, slo in enumerate(cfg.slos):
        where = f"slos[{index}] ({slo.name})"
        if slo.name in seen:
            found.append(f"{where}: the name is also slos[{seen[slo.name]}]'s; names are unique")
        seen.setdefault(slo.name, index)
        if slo.service is not None and slo.service not in cfg.jobs:
            found.append(
                f"{where}: service {slo.service!r} is not a configured service "
                f"({', '.join(cfg.jobs)}); name one of them"
            )
        if slo.sli == "latency":
            found.extend(_latency_problems(where, slo))
        elif slo.latency_seconds is not None:
            found.append(
                f'{where}: latency_seconds only applies to sli = "latency"; remove it or '
                "make this a latency SLO"
            )
        if slo.routes and slo.route_regex:
            found.append(f"{where}: give routes or route_regex, not both")
        if slo.route_regex:
            try:
                re.compile(slo.route_regex)
            except re.error as exc:
                found.append(f"{where}: route_regex {slo.route_regex!r} is not a regex: {exc}")
    found.extend(_alerting_problems(cfg))
    return found


def _latency_problems(where: str, slo: Slo) -> list[str]:
    spec = LATENCY_HISTOGRAM
    if slo.latency_seconds is None:
        return [f"{where}: a latency SLO needs latency_seconds, the time a good request beats"]
    if boundary(slo.latency_seconds) is None:
        edges = ", ".join(fmt_number(b) for b in spec.buckets or ())
        return [
            f"{where}: latency_seconds {fmt_number(slo.latency_seconds)} is not a bucket "
            f"boundary of {spec.name} (boundaries: {edges}); the SLI can only count requests "
            "up to a boundary: pick one of those, or add it to that histogram's buckets in "
            "exporters/catalogue.py"
        ]
    return []


def _alerting_problems(cfg: config.Config) -> list[str]:
    a, found = cfg.slo_alerting, []
    period = seconds(a.period)
    for kind, rates in (("page", a.page), ("ticket", a.ticket)):
        for index, rate in enumerate(rates):
            where = f"slo_alerting.{kind}[{index}]"
            if seconds(rate.short) >= seconds(rate.long):
                found.append(
                    f"{where}: short window {rate.short} must be shorter than long {rate.long}"
                )
            if seconds(rate.long) > period:
                found.append(f"{where}: long window {rate.long} is longer than period {a.period}")
    return found
