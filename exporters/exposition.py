"""Prometheus text format 0.0.4 for ``/metrics``: ``generate_latest``'s output, minus ``_created``.

Two differences from ``prometheus_client.generate_latest``, and why:

- No ``*_created`` samples. prometheus_client adds one next to every counter
  and histogram child: it doubles the counter series and nothing here reads it
  (Prometheus detects counter resets without it). Its only switch,
  ``disable_created_metrics()``, is process-global and would change every
  other exposition in the process; leaving them out here does not.
- Each series' ``name{labels}`` prefix is escaped once and cached across
  scrapes (label sets are stable), so a scrape formats only the values. That
  makes a scrape of a registry with many series markedly cheaper.

    >>> from prometheus_client import CollectorRegistry
    >>> TextExposition().render(CollectorRegistry())
    b''
"""

from __future__ import annotations

from typing import Any

from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# OpenMetrics types written as their nearest text-format type, as generate_latest does.
_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
# OpenMetrics-only samples that generate_latest moves into a gauge family of their own.
_SEPARATE = ("_gsum", "_gcount")


def _escape_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _prefix(name: str, labels: dict[str, str]) -> str:
    exposed = escape_metric_name(name)
    if not labels:
        return exposed
    pairs = ",".join(
        f'{escape_label_name(key)}="{_escape_value(value)}"'
        for key, value in sorted(labels.items())
    )
    return f"{exposed}{{{pairs}}}"


class TextExposition:
    """Renders a registry (or any object with ``collect()``) in the text format."""

    # Forget the cache past this many series (labels of series that no longer exist).
    MAX_CACHED = 100_000

    def __init__(self) -> None:
        self._prefixes: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def _line(self, sample: Sample) -> str:
        key = (sample.name, tuple(sample.labels.items()))
        prefix = self._prefixes.get(key)
        if prefix is None:
            prefix = self._prefixes[key] = _prefix(sample.name, sample.labels)
        if sample.timestamp is None:
            return f"{prefix} {floatToGoString(sample.value)}\n"
        milliseconds = int(float(sample.timestamp) * 1000)
        return f"{prefix} {floatToGoString(sample.value)} {milliseconds:d}\n"

    def render(self, source: Any) -> bytes:
        """The exposition of everything ``source.collect()`` yields."""
        if len(self._prefixes) > self.MAX_CACHED:
            self._prefixes.clear()
        output: list[str] = []
        for metric in source.collect():
            name, kind = metric.name, metric.type
            if kind == "counter":
                name += "_total"
            elif kind == "info":
                name += "_info"
            doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
            exposed = escape_metric_name(name)
            output.append(f"# HELP {exposed} {doc}\n# TYPE {exposed} {_TYPES.get(kind, kind)}\n")
            created = metric.name + "_created"
            separate: dict[str, list[str]] = {}
            for sample in metric.samples:
                if sample.name == created:
                    continue
                suffix = sample.name[len(metric.name) :]
                if suffix in _SEPARATE and sample.name.startswith(metric.name):
                    separate.setdefault(suffix, []).append(self._line(sample))
                else:
                    output.append(self._line(sample))
            for suffix, lines in sorted(separate.items()):
                exposed = escape_metric_name(metric.name + suffix)
                output.append(f"# HELP {exposed} {doc}\n# TYPE {exposed} gauge\n")
                output.extend(lines)
        return "".join(output).encode("utf-8")
