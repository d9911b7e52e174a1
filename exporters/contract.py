"""The PromQL contract: every expression the build generates is checked against the catalogue.

Build-time only (it needs ``promql_parser``); the runtime never imports it.
Besides the metric contract (:func:`check_expression`), it holds the rules
that keep percentiles honest: a quantile is only compared with a threshold
that is one of its histogram's bucket boundaries (:func:`threshold_problem`,
with :func:`quantile_specs` finding the histograms behind an expression, through
recording rules), and duration histograms are fine enough where latencies
matter (:func:`bucket_problems`).

    >>> check_expression("rate(http_requests_total[5m])")
    []
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from genonaut_monitoring.exporters.catalogue import (
    CATALOGUE,
    TARGET_LABELS,
    MetricSpec,
    lookup,
)

# Duration histograms: between these bounds (seconds), where request and query
# latencies are read, no two adjacent boundaries are further apart than MAX_BUCKET_RATIO.
# histogram_quantile() interpolates inside a bucket: the wider it is, the further off.
FINE_FROM, FINE_TO = 0.05, 5.0
MAX_BUCKET_RATIO = 1.6


@dataclass(frozen=True)
class Problem:
    """One way an expression breaks the metric contract."""

    message: str

    def __str__(self) -> str:
        return self.message


def _children(node: Any) -> list[Any]:
    """Direct sub-expressions of a promql_parser node."""
    import promql_parser as pp

    if isinstance(node, pp.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, pp.AggregateExpr):
        return [node.expr] + ([node.param] if node.param is not None else [])
    if isinstance(node, pp.Call):
        return list(node.args)
    if isinstance(node, pp.MatrixSelector):
        return [node.vector_selector]
    if isinstance(node, (pp.ParenExpr, pp.UnaryExpr, pp.SubqueryExpr)):
        return [node.expr]
    return []


def _walk(node: Any, rated: bool = False) -> Iterator[tuple[Any, bool]]:
    """Every node below and including ``node``, with whether a range function rates it."""
    import promql_parser as pp

    yield node, rated
    inner = rated or (isinstance(node, pp.Call) and node.func.name in _RANGE_FUNCTIONS)
    for child in _children(node):
        yield from _walk(child, inner)


def check_expression(
    expr: str, extra_series: Mapping[str, frozenset[str]] | None = None
) -> list[Problem]:
    """Check a PromQL expression (Grafana variables already substituted).

    ``extra_series`` maps recording-rule names to the labels they keep. Returns
    the problems found: a parse error, an unknown metric, a label the metric
    lacks, a histogram quantile without ``_bucket``/``le``, a counter used
    outside ``rate``/``increase``. An empty list means the expression is sound.
    """
    import promql_parser as pp

    try:
        ast = pp.parse(expr)
    except ValueError as exc:
        return [Problem(f"does not parse: {exc}")]

    extra = dict(extra_series or {})
    problems: list[Problem] = []

    def series_labels(name: str) -> tuple[MetricSpec | None, frozenset[str]] | None:
        if name in extra:
            return None, extra[name] | TARGET_LABELS
        return lookup(name)

    def selector_labels(node: Any) -> frozenset[str]:
        """Labels available below ``node``: those of every metric it selects."""
        labels: set[str] = set()
        for child, _ in _walk(node):
            if isinstance(child, pp.VectorSelector) and child.name:
                found = series_labels(child.name)
                if found:
                    labels |= found[1]
            if isinstance(child, pp.Call) and child.func.name in ("label_replace", "label_join"):
                target = child.args[1]
                if isinstance(target, pp.StringLiteral):
                    labels.add(target.val)
        return frozenset(labels)

    for node, rated in _walk(ast):
        if isinstance(node, pp.VectorSelector):
            name = node.name
            if not name:
                problems.append(Problem("selects series without a metric name"))
                continue
            found = series_labels(name)
            if found is None:
                problems.append(
                    Problem(
                        f"metric {name!r} is not in the catalogue (exporters/catalogue.py), "
                        "nor recorded from another exporter (exporters/*.json), "
                        "nor produced by a recording rule"
                    )
                )
                continue
            spec, labels = found
            for matcher in node.matchers.matchers:
                if matcher.name in ("le", "quantile") and not _every_spelling(matcher):
                    problems.append(
                        Problem(
                            f"matches {matcher.name!r} literally; Prometheus 3 normalises its "
                            f'values (le="1" becomes le="1.0"): aggregate by {matcher.name}, '
                            "use histogram_quantile(), or match every spelling of the value "
                            f'({matcher.name}=~"1\\\\.0|1")'
                        )
                    )
                if matcher.name != "__name__" and matcher.name not in labels:
                    problems.append(
                        Problem(
                            f"metric {name!r} has no label {matcher.name!r} "
                            f"(it has: {', '.join(sorted(labels))})"
                        )
                    )
            if spec is not None and spec.counter_like and not rated:
                problems.append(
                    Problem(
                        f"{spec.kind} {name!r} is used outside rate()/increase(): "
                        "its raw value only ever grows; wrap it in rate(...[$__rate_interval])"
                    )
                )
        elif isinstance(node, pp.AggregateExpr) and node.modifier is not None:
            available = selector_labels(node.expr)
            for label in node.modifier.labels:
                if label not in available:
                    problems.append(
                        Problem(
                            f"{node.op} groups by {label!r}, which none of its metrics has "
                            f"(they have: {', '.join(sorted(available)) or 'no labels'})"
                        )
                    )
        elif isinstance(node, pp.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            join = list(matching.labels) if matching is not None else []
            if matching is not None and matching.type == pp.LabelModifierType.Include:
                for side in (node.lhs, node.rhs):
                    available = selector_labels(side)
                    for label in join:
                        if label not in available:
                            problems.append(Problem(f"on({label}) names a label the operand lacks"))
        elif isinstance(node, pp.Call) and node.func.name == "histogram_quantile":
            inner = [n for n, _ in _walk(node.args[1]) if isinstance(n, pp.VectorSelector)]
            if not any(n.name and n.name.endswith("_bucket") for n in inner) and not any(
                n.name in extra for n in inner
            ):
                problems.append(
                    Problem("histogram_quantile() needs a *_bucket series (with its le label)")
                )
            for agg, _ in _walk(node.args[1]):
                if (
                    isinstance(agg, pp.AggregateExpr)
                    and agg.modifier is not None
                    and agg.modifier.type == pp.AggModifierType.By
                    and "le" not in agg.modifier.labels
                ):
                    problems.append(
                        Problem(f"histogram_quantile() over {agg.op} by (...) must keep 'le'")
                    )
    # One message per distinct problem, in a stable order.
    return list(dict.fromkeys(problems))


# Functions whose range-vector argument legitimately holds counters.
_RANGE_FUNCTIONS = frozenset(
    {
        "rate",
        "irate",
        "increase",
        "resets",
        "absent_over_time",
        "present_over_time",
        "count_over_time",
        "changes",
    }
)


def _spellings(value: str) -> set[str] | None:
    """How clients and Prometheus versions write a bucket bound (None: not a number)."""
    try:
        number = float(value)
    except ValueError:
        return None
    if value in ("+Inf", "Inf", "-Inf"):
        return {value}
    return {repr(number), f"{number:g}"}


def _every_spelling(matcher: Any) -> bool:
    """Whether an ``le``/``quantile`` matcher selects its values however they are spelt.

    ``le="0.25"`` is fine (0.25 has one spelling); ``le="1.0"`` is not (Go's client
    writes ``1``, Prometheus 3 rewrites it as ``1.0``); ``le=~"1\\.0|1"`` names both.
    """
    op, value = str(matcher.op), matcher.value
    if op in ("MatchOp.Equal", "MatchOp.NotEqual"):
        spellings = _spellings(value)
        return spellings is not None and spellings == {value}
    alternatives = {part.replace("\\.", ".") for part in value.split("|")}
    for part in alternatives:
        spellings = _spellings(part)
        if spellings is None or not spellings <= alternatives:
            return False
    return True


# --- Percentiles ----------------------------------------------------------------


def quantile_specs(expr: str, recorded: Mapping[str, str] | None = None) -> set[MetricSpec]:
    """The histograms whose quantile ``expr`` computes, followed through recording rules.

    ``recorded`` maps recording-rule names to their expressions. A recording rule
    that ``histogram_quantile()`` reads counts as the histograms its own
    expression selects; one that computes a quantile counts as those it quantiles.
    """
    import promql_parser as pp

    return _quantiled(pp.parse(expr), dict(recorded or {}), 0)


def _selected_histograms(node: Any, recorded: Mapping[str, str], depth: int) -> set[MetricSpec]:
    import promql_parser as pp

    specs: set[MetricSpec] = set()
    for child, _ in _walk(node):
        if isinstance(child, pp.VectorSelector) and child.name:
            if child.name in recorded and depth < 10:
                specs |= _selected_histograms(pp.parse(recorded[child.name]), recorded, depth + 1)
            else:
                found = lookup(child.name)
                if found is not None and found[0].kind == "histogram":
                    specs.add(found[0])
    return specs


def _quantiled(node: Any, recorded: Mapping[str, str], depth: int) -> set[MetricSpec]:
    import promql_parser as pp

    found: set[MetricSpec] = set()
    for child, _ in _walk(node):
        if isinstance(child, pp.Call) and child.func.name == "histogram_quantile":
            found |= _selected_histograms(child.args[1], recorded, depth)
        elif isinstance(child, pp.VectorSelector) and depth < 10:
            rule = recorded.get(child.name or "")
            if rule is not None:
                found |= _quantiled(pp.parse(rule), recorded, depth + 1)
    return found


def quantile_comparisons(
    expr: str, recorded: Mapping[str, str] | None = None
) -> list[tuple[MetricSpec, float]]:
    """``(histogram, threshold)`` for every comparison of a quantile with a number in ``expr``."""
    import promql_parser as pp

    comparisons = {">", "<", ">=", "<=", "==", "!="}
    rules = dict(recorded or {})
    found: list[tuple[MetricSpec, float]] = []
    for node, _ in _walk(pp.parse(expr)):
        if not (isinstance(node, pp.BinaryExpr) and str(node.op).strip() in comparisons):
            continue
        for number, other in ((node.rhs, node.lhs), (node.lhs, node.rhs)):
            if isinstance(number, pp.NumberLiteral):
                specs = _quantiled(other, rules, 0)
                found.extend((spec, float(number.val)) for spec in sorted(specs, key=_by_name))
    return found


def _by_name(spec: MetricSpec) -> str:
    return spec.name


def threshold_problem(spec: MetricSpec, threshold: float) -> str | None:
    """Why comparing a quantile of ``spec`` with ``threshold`` misleads, or None when it is sound.

    histogram_quantile() only knows how many observations fall below each
    boundary; between two it interpolates. A threshold that is a boundary is
    crossed exactly when the real quantile crosses it.
    """
    buckets = spec.buckets or ()
    if any(abs(edge - threshold) <= 1e-12 * max(1.0, threshold) for edge in buckets):
        return None
    return (
        f"threshold {threshold:g} is compared with a quantile of {spec.name}, but it is not "
        f"one of that histogram's bucket boundaries ({', '.join(f'{b:g}' for b in buckets)}); "
        f"add {threshold:g} to its buckets in exporters/catalogue.py or change the threshold "
        "in config.Thresholds"
    )


def bucket_problems(specs: tuple[MetricSpec, ...] = CATALOGUE) -> list[str]:
    """Duration histograms whose boundaries are too far apart between FINE_FROM and FINE_TO."""
    problems = []
    for spec in specs:
        if spec.kind != "histogram" or not spec.name.endswith("_seconds"):
            continue
        edges = [e for e in spec.buckets or () if FINE_FROM <= e <= FINE_TO]
        if not edges or edges[0] != FINE_FROM or edges[-1] != FINE_TO:
            problems.append(
                f"{spec.name}: buckets must include {FINE_FROM:g} and {FINE_TO:g} "
                "(exporters/catalogue.py)"
            )
        for low, high in pairwise(edges):
            if high / low > MAX_BUCKET_RATIO + 1e-9:
                problems.append(
                    f"{spec.name}: buckets {low:g} and {high:g} are {high / low:.2f}x apart; "
                    f"between {FINE_FROM:g}s and {FINE_TO:g}s no two adjacent boundaries may be "
                    f"more than {MAX_BUCKET_RATIO:g}x apart (exporters/catalogue.py)"
                )
    return problems
