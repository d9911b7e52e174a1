"""Metrics other programs export, as recorded from a real run of each one.

The PromQL contract (:func:`catalogue.check_expression`) knows this project's
own metrics from the catalogue. A dashboard or alert on another exporter's
metrics is checked against what that exporter really exposes: a fixture file
beside this module, recorded from a real run and committed. Nothing here is
typed by hand, so a renamed metric or label in a new exporter release shows up
as a build error, not as an empty panel.

``postgres_exporter.json`` is postgres_exporter 0.11.1 (the version the stack
runs) with this project's custom queries, against PostgreSQL with
pg_stat_statements loaded. Refresh it after changing the custom queries or the
exporter version with ``make postgres-metrics`` (``python -m scripts.postgres_metrics``);
a test fails while it is stale.

Only the build reads these files; an application importing the exporters never does.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genonaut_monitoring.exporters.catalogue import Kind, MetricSpec

FOLDER = Path(__file__).parent
POSTGRES_EXPORTER = "postgres_exporter"
REFRESH_COMMAND = "make postgres-metrics"
# Families kept when recording: the exporter's own Go runtime and process metrics are
# not about the database.
RECORDED_PREFIXES = ("pg_", "postgres_exporter_")
_KINDS: dict[str, Kind] = {"counter": "counter", "gauge": "gauge", "untyped": "gauge"}


def fixture_path(exporter: str) -> Path:
    return FOLDER / f"{exporter}.json"


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')


def record(exposition: str, exporter: str, version: str, recorded_with: str) -> dict[str, Any]:
    """A fixture from one scrape's text: every series name with its type, help and labels.

    Read line by line, not with prometheus_client's parser: that one renames counters
    to end in ``_total``, and the point here is the names as the exporter writes them.
    """
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    metrics: dict[str, dict[str, Any]] = {}
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line.startswith("# HELP "):
            _, _, name, *text = line.split(" ", 3)
            helps[name] = text[0] if text else ""
        elif line and not line.startswith("#"):
            found = _SAMPLE.match(line)
            if found is None or not found.group(1).startswith(RECORDED_PREFIXES):
                continue
            name = found.group(1)
            entry = metrics.setdefault(
                name,
                {"type": types.get(name, "untyped"), "help": helps.get(name, ""), "labels": []},
            )
            labels = set(_LABEL.findall(found.group(2) or ""))
            entry["labels"] = sorted(set(entry["labels"]) | labels)
    return {
        "exporter": exporter,
        "version": version,
        "recorded_with": recorded_with,
        "refresh": REFRESH_COMMAND,
        "metrics": dict(sorted(metrics.items())),
    }


def dump(fixture: Mapping[str, Any]) -> str:
    """Deterministic JSON text for a fixture."""
    return json.dumps(fixture, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@functools.cache
def load(exporter: str) -> dict[str, Any]:
    path = fixture_path(exporter)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read ({exc}); record it: {REFRESH_COMMAND}") from exc
    return data


@functools.cache
def catalogue(exporter: str) -> dict[str, MetricSpec]:
    """Series name -> spec, for every series the exporter was seen to expose."""
    specs = {}
    for name, entry in load(exporter)["metrics"].items():
        kind = _KINDS.get(entry["type"])
        if kind is None:
            raise ValueError(
                f"{fixture_path(exporter).name}: {name} is a {entry['type']}, which the "
                "contract check does not model; leave it out of RECORDED_PREFIXES"
            )
        specs[name] = MetricSpec(name, kind, entry["help"], tuple(entry["labels"]), external=True)
    return specs


def spec(exporter: str, name: str) -> MetricSpec:
    """The recorded spec of one series; ValueError names the fixture when it is not there."""
    found = catalogue(exporter).get(name)
    if found is None:
        raise ValueError(
            f"{name} is not among the metrics {exporter} {load(exporter)['version']} was "
            f"recorded exposing ({fixture_path(exporter).name}); check the name, or "
            f"refresh the fixture: {REFRESH_COMMAND}"
        )
    return found


@functools.cache
def series() -> dict[str, tuple[MetricSpec, frozenset[str]]]:
    """Every recorded series of every fixture, as :data:`catalogue.SERIES` indexes its own."""
    found: dict[str, tuple[MetricSpec, frozenset[str]]] = {}
    for path in sorted(FOLDER.glob("*.json")):
        for name, each in catalogue(path.stem).items():
            found[name] = (each, frozenset(each.labels))
    return found
