"""Error budgets: one SLO at a time (the ``slo`` variable), and every SLO's budget side by side.

Every query reads the SLO recording rules (:mod:`genonaut_monitoring.alerts.slo`),
so the dashboard shows exactly what the burn-rate alerts evaluate; threshold lines
are the alerts' burn-rate factors from ``config.SloAlerting``.

Titled ``<Grafana.title>: SLOs and error budgets`` ("Genonaut: SLOs and error budgets" by
default).
"""

from __future__ import annotations

import grafanalib.core as g

from genonaut_monitoring import config
from genonaut_monitoring.alerts import slo
from genonaut_monitoring.alerts.model import seconds
from genonaut_monitoring.alerts.promql import job_matcher
from genonaut_monitoring.config import BurnRate, fmt_number
from genonaut_monitoring.dashboards import common as c

ONE = '{job="$job", slo="$slo"}'
JOIN = f"on ({', '.join(slo.LABELS)})"


def _now_window(cfg: config.Config) -> str:
    """The window "now" means on this dashboard: the first page condition's long window."""
    a = cfg.slo_alerting
    return (a.page or a.ticket)[0].long if (a.page or a.ticket) else slo.base_window(cfg)


def _burn(window: str) -> str:
    """The burn rate of the selected SLO over ``window``, from its recording rules."""
    return slo.burn_rate_of(slo.error_ratio(window), ONE)


def _slowest_page(cfg: config.Config) -> float:
    """The smallest page factor: the burn rate from which the page can fire (1 if none)."""
    return min((r.factor for r in cfg.slo_alerting.page), default=1.0)


def objective(cfg: config.Config) -> g.Panel:
    return c.stat(
        "Objective",
        f"Share of requests that must be good over {cfg.slo_alerting.period}: the rest is the "
        "error budget. Set per SLO in config.slos (or slos in monitoring.toml). "
        f"{c.WINDOW}none, a setting.",
        f"{slo.OBJECTIVE}{ONE}",
        unit="percentunit",
    )


def budget_left(cfg: config.Config) -> g.Panel:
    return c.stat(
        "Error budget left",
        f"Share of the {cfg.slo_alerting.period} error budget not yet spent: 1 minus the "
        f"error ratio over {cfg.slo_alerting.period} divided by the budget. Red once it is "
        "overspent, i.e. the objective is missed. "
        f"{c.WINDOW}the SLO period ({cfg.slo_alerting.period}), from its recording rule.",
        _budget_left_expr(cfg),
        unit="percentunit",
        steps=c.below(0.0),
    )


def _budget_left_expr(cfg: config.Config, selector: str = ONE) -> str:
    """Share of the period's error budget still unspent (negative once overspent)."""
    return f"1 - {slo.burn_rate_of(slo.error_ratio(cfg.slo_alerting.period), selector)}"


def burn_now(cfg: config.Config) -> g.Panel:
    window = _now_window(cfg)
    return c.stat(
        "Burn rate now",
        f"How fast the budget burns over the last {window}: 1x spends exactly the budget in "
        f"{cfg.slo_alerting.period}. Red from the slowest page factor "
        f"({fmt_number(_slowest_page(cfg))}x). "
        f"{c.WINDOW}the last {window}, from its recording rule.",
        _burn(window),
        unit="suffix:x",
        steps=_burn_steps(cfg.slo_alerting.page, c.BAD),
    )


def exhaustion(cfg: config.Config) -> g.Panel:
    window, period = _now_window(cfg), seconds(cfg.slo_alerting.period)
    slowest_page = _slowest_page(cfg)
    cap = f"{period:.0f}"
    left = f"clamp_min({_budget_left_expr(cfg)}, 0) * {cap}"
    return c.stat(
        "Time to budget exhaustion",
        f"How long the budget left lasts at the burn rate of the last {window}, capped at the "
        f"period ({cfg.slo_alerting.period}): at or beyond it, the budget outlasts the period. "
        f"Red below {slo.lasts(cfg, slowest_page)}, where the page starts. "
        f"{c.WINDOW}the last {window}.",
        f"clamp_max(\n  {left}\n  / {JOIN}\n  ({_burn(window)}),\n  {cap}\n)",
        unit="s",
        steps=c.below(period / slowest_page),
    )


def _burn_steps(rates: tuple[BurnRate, ...], colour: str) -> list[c.Step]:
    """A dashed line in ``colour`` at each factor of ``rates``, slowest first."""
    factors = sorted({r.factor for r in rates})
    return [{"color": c.OK, "value": None}, *({"color": colour, "value": f} for f in factors)]


def _windows_of(rates: tuple[BurnRate, ...]) -> list[str]:
    return sorted({w for r in rates for w in (r.short, r.long)}, key=seconds)


def _burn_panel(title: str, alert: str, rates: tuple[BurnRate, ...], colour: str) -> g.Panel:
    if not rates:
        note = f"config.SloAlerting lists no burn-rate condition for {alert}: it never fires."
        return c.text(title, note, note)
    return c.timeseries(
        title,
        f"Error ratio over each window {alert} reads, divided by the error budget (1x spends "
        f"it exactly over the period). It fires when {slo.conditions(rates)}: both windows "
        "of a pair above the dashed line of its factor. "
        f"{c.WINDOW}each window the alert reads, from the same recording rules.",
        [c.Query(_burn(w), w) for w in _windows_of(rates)],
        unit="suffix:x",
        steps=_burn_steps(rates, colour),
    )


def page_burn(cfg: config.Config) -> g.Panel:
    return _burn_panel(slo.PAGE_PANEL, slo.FAST_BURN, cfg.slo_alerting.page, c.BAD)


def ticket_burn(cfg: config.Config) -> g.Panel:
    return _burn_panel(slo.TICKET_PANEL, slo.SLOW_BURN, cfg.slo_alerting.ticket, c.WARN)


def budget_over_time(cfg: config.Config) -> g.Panel:
    return c.timeseries(
        "Error budget left over time",
        f"Share of the error budget left, over a {cfg.slo_alerting.period} window ending at "
        "each point: a steep fall is an incident, a steady slope a chronic burn. "
        f"{c.WINDOW}the SLO period ({cfg.slo_alerting.period}) ending at each point.",
        [c.Query(_budget_left_expr(cfg), "$slo")],
        unit="percentunit",
        steps=c.below(0.0),
    )


def traffic(cfg: config.Config) -> g.Panel:
    base = slo.base_window(cfg)
    return c.timeseries(
        "Requests and bad requests",
        f"Requests per second the SLO counts, and the bad ones among them (rates over {base}): "
        "availability counts 5xx responses as bad, latency the responses slower than its "
        f"threshold. {c.WINDOW}the last {base}, from the SLO's recording rules.",
        [
            c.Query(f"{slo.requests_rate(base)}{ONE}", "requests"),
            c.Query(f"{slo.errors_rate(base)}{ONE}", "bad"),
        ],
        unit="reqps",
    )


def budgets(cfg: config.Config) -> g.Panel:
    return c.bars(
        "Error budget left per SLO",
        f"Every SLO of the job's unspent share of its {cfg.slo_alerting.period} error budget, "
        "whichever is selected above. Red once overspent. "
        f"{c.WINDOW}the SLO period ({cfg.slo_alerting.period}).",
        c.Query(_budget_left_expr(cfg, selector='{job="$job"}'), "{{slo}}", instant=True),
        unit="percentunit",
        steps=c.below(0.0),
    )


def variables(cfg: config.Config) -> list[c.Variable]:
    """Datasource, the service (job) and one of its SLOs."""
    job = cfg.jobs[0]
    first = next((s.name for s in cfg.slos if cfg.slo_job(s) == job), "")
    return [
        c.datasource_variable(cfg.grafana.prometheus_uid, cfg.grafana.prometheus_name),
        c.Variable(
            "job",
            "Job",
            "query",
            f"label_values({slo.OBJECTIVE}{{{job_matcher(cfg)}}}, job)",
            "Prometheus job: one per configured service.",
            current=job,
        ),
        c.Variable(
            "slo",
            "SLO",
            "query",
            f'label_values({slo.OBJECTIVE}{{job="$job"}}, slo)',
            "The service level objective to show (config.slos).",
            current=first,
        ),
    ]


TITLE = "SLOs and error budgets"
DESCRIPTION = "Service level objectives: budget left, burn rate per window, time to exhaustion."


def dashboard(cfg: config.Config) -> g.Dashboard:
    """The error-budget dashboard; without SLOs, a note saying how to add one."""
    if not cfg.slos:
        note = (
            "No service level objectives are configured, so no SLO series are recorded. "
            "Add some to config.slos (or slos in monitoring.toml) and rebuild."
        )
        return g.Dashboard(
            title=TITLE,
            description=DESCRIPTION,
            panels=c.layout(c.row(4, c.text("No SLOs configured", note, note))),
        )
    return g.Dashboard(
        title=TITLE,
        description=DESCRIPTION,
        templating=g.Templating(variables(cfg)),
        panels=c.layout(
            c.row(4, objective(cfg), budget_left(cfg), burn_now(cfg), exhaustion(cfg)),
            c.row(8, (page_burn(cfg), 12), (ticket_burn(cfg), 12)),
            c.row(8, budget_over_time(cfg), traffic(cfg), budgets(cfg)),
        ),
    )
