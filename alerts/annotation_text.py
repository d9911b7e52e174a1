"""Prometheus' annotation templating, as far as the alert definitions use it.

The promtool tests state the exact annotations each alert case yields, and the
notification previews show them, so both render the definitions' templates
here: ``{{ $labels.name }}``, ``{{ $value }}`` and ``{{ $value | fn }}`` for
Prometheus' ``humanize``, ``humanizeDuration`` and ``humanizePercentage``,
with Go's float printing. promtool checks every rendering against Prometheus'
own in the alert tests; any other template form is refused, never guessed.

    >>> render("{{ $labels.job }} at {{ $value | humanizePercentage }}", {"job": "api"}, 0.125)
    'api at 12.5%'
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

_SMALL = ("m", "u", "n", "p", "f", "a", "z", "y")
_LARGE = ("k", "M", "G", "T", "P", "E", "Z", "Y")


def go_g4(value: float) -> str:
    """Go's ``%.4g``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.4g}"


def go_value(value: float) -> str:
    """Go's ``%v`` for a float64, which ``{{ $value }}`` prints."""
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def humanize(value: float) -> str:
    if value == 0 or math.isnan(value) or math.isinf(value):
        return go_g4(value)
    prefix = ""
    if abs(value) >= 1:
        for p in _LARGE:
            if abs(value) < 1000:
                break
            prefix, value = p, value / 1000
        return go_g4(value) + prefix
    for p in _SMALL:
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return go_g4(value) + prefix


def humanize_duration(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return go_g4(value)
    if value == 0:
        return go_g4(value) + "s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value)
        seconds, minutes = whole % 60, (whole // 60) % 60
        hours, days = (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{go_g4(value)}s"
    prefix = ""
    for p in _SMALL:
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{go_g4(value)}{prefix}s"


def humanize_percentage(value: float) -> str:
    return go_g4(value * 100) + "%"


FUNCTIONS = {
    "humanize": humanize,
    "humanizeDuration": humanize_duration,
    "humanizePercentage": humanize_percentage,
}
_ACTION = re.compile(r"\{\{\s*(.*?)\s*\}\}")


class TemplateError(ValueError):
    """An annotation this renderer cannot render: unknown action or missing label."""


def render(template: str, labels: Mapping[str, str], value: float) -> str:
    """Render an annotation template; TemplateError names an action it cannot render.

    A label the alert does not have is an error, not Prometheus' ``<no value>``.
    """

    def action(match: re.Match[str]) -> str:
        text = match.group(1)
        if text.startswith("$labels."):
            name = text.removeprefix("$labels.")
            if name not in labels:
                raise TemplateError(
                    f"{{{{ {text} }}}}: the alert has no label {name!r} "
                    f"(it has {', '.join(sorted(labels)) or 'none'}); Prometheus would print "
                    "<no value>"
                )
            return labels[name]
        if text == "$value":
            return go_value(value)
        head, _, func = (part.strip() for part in text.partition("|"))
        if head == "$value" and func in FUNCTIONS:
            return FUNCTIONS[func](value)
        raise TemplateError(
            f"{{{{ {text} }}}} is not a template form the alerts use "
            f"($labels.<name>, $value, $value | {' / '.join(FUNCTIONS)})"
        )

    return _ACTION.sub(action, template)
