"""Prometheus' template functions and Go's float printing, as far as the rules use them.

The expected descriptions in the promtool tests are rendered here, so the
tests can state exactly what a person reads in a notification.
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


def render(template: str, labels: Mapping[str, str], value: float) -> str:
    """Render an annotation template; only the forms the rules use are understood."""

    def action(match: re.Match[str]) -> str:
        text = match.group(1)
        if text.startswith("$labels."):
            return labels[text.removeprefix("$labels.")]
        if text == "$value":
            return go_value(value)
        head, _, func = (part.strip() for part in text.partition("|"))
        if head == "$value" and func in FUNCTIONS:
            return FUNCTIONS[func](value)
        raise ValueError(f"template action {{{{ {text} }}}} is not understood by this renderer")

    return _ACTION.sub(action, template)
