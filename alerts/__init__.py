"""Prometheus alert and recording rules, and Alertmanager routing (placeholder: no rules yet)."""

from __future__ import annotations

from pathlib import Path

import config


def outputs(cfg: config.Config) -> dict[str, bytes]:
    """Files this part writes under out/; none yet."""
    return {}


def validate(folder: Path, cfg: config.Config) -> list[str]:
    """Problems in the staged rule files; none yet."""
    return []


def recorded_series(cfg: config.Config) -> dict[str, frozenset[str]]:
    """Recording rule name -> the labels its series keep; none yet."""
    return {}
