"""Values as Grafana writes them (units, colours) and axis ticks at values a reader expects.

>>> format_unit(0.25, "s"), format_unit(2048, "bytes"), format_unit(0, "ns")
('250 ms', '2 KiB', '0')
>>> [label for _, label in ticks(0, 100 * 2**20, "bytes")]
['0', '32 MiB', '64 MiB', '96 MiB']
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

from matplotlib import colors as mcolors

from scripts._grafana_json import Panel, Step

# Grafana's classic palette, in its order.
PALETTE = (
    "#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
    "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477",
)  # fmt: skip
# Grafana's named colours (the ones threshold steps use).
NAMED_COLOURS = {
    "green": "#73BF69", "dark-green": "#37872D", "semi-dark-green": "#56A64B",
    "light-green": "#96D98D", "super-light-green": "#C8F2C2",
    "red": "#F2495C", "dark-red": "#C4162A", "semi-dark-red": "#E02F44",
    "light-red": "#FF7383", "super-light-red": "#FFA6B0",
    "orange": "#FF9830", "dark-orange": "#FA6400", "semi-dark-orange": "#FF780A",
    "light-orange": "#FFB357", "super-light-orange": "#FFCB7D",
    "yellow": "#FADE2A", "dark-yellow": "#E0B400", "semi-dark-yellow": "#F2CC0C",
    "light-yellow": "#FFEE52", "super-light-yellow": "#FFF899",
    "blue": "#5794F2", "dark-blue": "#1F60C4", "semi-dark-blue": "#3274D9",
    "light-blue": "#8AB8FF", "super-light-blue": "#C0D8FF",
    "purple": "#B877D9", "dark-purple": "#8F3BB8", "semi-dark-purple": "#A352CC",
    "light-purple": "#CA95E5", "super-light-purple": "#DEB6F2",
    "text": "#464C54", "transparent": "#FFFFFF",
}  # fmt: skip
NO_DATA_GREY = "#8E8E8E"
# Human names for the units shown in the preview's page.
UNIT_NAMES = {
    "s": "seconds", "ms": "milliseconds", "µs": "microseconds", "us": "microseconds",
    "ns": "nanoseconds", "percentunit": "percent (0.0-1.0)", "percent": "percent (0-100)",
    "reqps": "requests/sec", "rps": "requests/sec", "ops": "ops/sec", "opm": "ops/min",
    "iops": "I/O ops/sec", "bytes": "bytes (IEC)", "decbytes": "bytes (SI)", "short": "short",
}  # fmt: skip

Scale = tuple[float, str]  # (factor, suffix)
_TIME: tuple[Scale, ...] = (
    (1e-9, " ns"), (1e-6, " µs"), (1e-3, " ms"), (1.0, " s"),
    (60.0, " min"), (3600.0, " hour"), (86400.0, " day"),
)  # fmt: skip
_UNIT_SECONDS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_IEC: tuple[Scale, ...] = tuple(
    (1024.0**i, n) for i, n in enumerate((" B", " KiB", " MiB", " GiB", " TiB"))
)
_SI_BYTES: tuple[Scale, ...] = tuple(
    (1000.0**i, n) for i, n in enumerate((" B", " kB", " MB", " GB", " TB"))
)
_SHORT: tuple[Scale, ...] = ((1.0, ""), (1e3, " K"), (1e6, " Mil"), (1e9, " Bil"))
_RATES = {
    "reqps": " req/s", "rps": " req/s", "ops": " ops/s", "opm": " ops/min",
    "iops": " io/s", "cps": " c/s", "wps": " wr/s",
}  # fmt: skip


def _number(value: float, decimals: int | None = None) -> str:
    if decimals is not None:
        return f"{value:.{decimals}f}"
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return text if "e" not in text else f"{value:.2e}"


def _scales(unit: str) -> tuple[float, tuple[Scale, ...]] | None:
    """(value -> base factor, the base's scales) for units shown in the largest fitting scale."""
    if unit in _UNIT_SECONDS:
        return _UNIT_SECONDS[unit], _TIME
    if unit == "bytes":
        return 1.0, _IEC
    if unit == "decbytes":
        return 1.0, _SI_BYTES
    if unit == "short":
        return 1.0, _SHORT
    return None


def _pick(value: float, scales: Sequence[Scale]) -> Scale:
    """The largest scale ``value`` reaches (the smallest for values below all of them)."""
    chosen = scales[0]
    for scale in scales:
        if abs(value) >= scale[0]:
            chosen = scale
    return chosen


def _plain(value: float, unit: str, decimals: int | None) -> str:
    """``value`` (in display units already) with the unit's decoration."""
    if unit == "percentunit":
        return f"{_number(value * 100, decimals)}%"
    if unit == "percent":
        return f"{_number(value, decimals)}%"
    if unit in _RATES:
        return f"{_number(value, decimals)}{_RATES[unit]}"
    if unit.startswith("suffix:"):
        return f"{_number(value, decimals)}{unit[7:]}"
    if unit.startswith("prefix:"):
        return f"{unit[7:]}{_number(value, decimals)}"
    if unit in ("", "none"):
        return _number(value, decimals)
    return f"{_number(value, decimals)} {unit}"


def format_unit(value: float, unit: str, decimals: int | None = None) -> str:
    """``value`` as Grafana writes it for ``unit`` (its unit ids: s, percentunit, reqps...).

    Zero is "0" in every unit: no scale says anything about nothing (never "0 ns").
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    scaled = _scales(unit)
    if scaled is not None:
        base, scales = scaled
        factor, suffix = _pick(value * base, scales)
        return f"{_number(value * base / factor, decimals)}{suffix}"
    return _plain(value, unit, decimals)


def _nice_step(raw: float, binary: bool) -> float:
    """A round tick step near ``raw`` (display units): 1, 2, 5 x 10^n, or for binary units
    a power of two (16 MiB, 32 MiB) down to one unit and 1-2-5 tenths below it."""
    if raw <= 0:
        return 1.0
    if binary and raw >= 0.75:
        return float(2 ** round(math.log2(raw)))
    exponent = math.floor(math.log10(raw))
    candidates = [m * 10.0**exponent for m in (1, 2, 5, 10)]
    return min(candidates, key=lambda c: abs(math.log(c / raw)))


def _step_decimals(step: float) -> int:
    """Decimals that tell ticks ``step`` apart: 0 for 2, 1 for 0.5, 2 for 0.25."""
    for decimals in range(10):
        if abs(round(step, decimals) - step) <= abs(step) * 1e-9:
            return decimals
    return 10


def ticks(low: float, high: float, unit: str, most: int = 5) -> list[tuple[float, str]]:
    """Axis ticks between ``low`` and ``high``, each with its full label.

    Steps are round in the unit a reader sees: powers of two of KiB/MiB/GiB for
    bytes (32 MiB, 64 MiB), 1-2-5 steps of ms/s or K/Mil otherwise. Every label
    carries the digits that set it apart from its neighbours.
    """
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [(low, format_unit(low, unit))]
    scaled = _scales(unit)
    percent = 100.0 if unit == "percentunit" else 1.0
    base, scales = scaled if scaled else (1.0, ((1.0, ""),))
    factor, suffix = _pick(max(abs(low), abs(high)) * base, scales)
    size = factor / base / percent  # one display unit in data units
    step = _nice_step((high - low) / size / most, binary=unit == "bytes") * size
    decimals = _step_decimals(step / size)
    first = math.ceil(low / step - 1e-9)
    found = []
    for index in range(first, first + most * 3):
        value = index * step
        if value > high + step * 1e-9:
            break
        if abs(value) < step * 1e-9:
            found.append((0.0, "0"))
        elif scaled is not None:
            found.append((value, f"{value / size:.{decimals}f}{suffix}"))
        else:
            found.append((value, _plain(value, unit, decimals)))
    return found


def unit_label(unit: str) -> str:
    """The unit as the page shows it: ``seconds (s)``; empty for none."""
    if unit in ("", "none"):
        return ""
    name = UNIT_NAMES.get(unit)
    return f"{name} ({unit})" if name and name != unit else unit


def colour(name: str) -> str:
    """A Grafana colour name (``green``, ``dark-red``, ``#hex``, ``rgba(...)``) as hex."""
    text = name.strip()
    if text in NAMED_COLOURS:
        return NAMED_COLOURS[text]
    if text.startswith("rgb"):
        parts = [p.strip() for p in text[text.find("(") + 1 : text.rfind(")")].split(",")]
        try:
            red, green, blue = (int(float(p)) for p in parts[:3])
        except ValueError:
            return NO_DATA_GREY
        return f"#{red:02X}{green:02X}{blue:02X}"
    try:
        return str(mcolors.to_hex(text))
    except ValueError:
        return NO_DATA_GREY


def absolute_steps(panel: Panel, data_max: float | None) -> list[Step]:
    """The panel's threshold steps in the data's own scale (percentage mode converted)."""
    if panel.threshold_mode != "percentage":
        return list(panel.steps)
    low = panel.minimum if panel.minimum is not None else 0.0
    high = panel.maximum if panel.maximum is not None else data_max
    if high is None or high == low:
        return []
    return [
        Step(None if s.value is None else low + (high - low) * s.value / 100, s.color)
        for s in panel.steps
    ]


def step_colour(value: float | None, steps: Sequence[Step]) -> str:
    """The colour of the highest step at or below ``value`` (the base step below all)."""
    if value is None or math.isnan(value) or not steps:
        return NO_DATA_GREY if value is None or not steps else colour(steps[0].color)
    chosen = steps[0].color
    for step in steps:
        if step.value is None or value >= step.value:
            chosen = step.color
    return colour(chosen)


if __name__ == "__main__":
    sys.exit(
        f"{__file__}: not a command, a helper of scripts.preview; "
        "run that one (python -m scripts.preview --help)"
    )
