"""Shared fixtures: system tools, free ports (from the stack), a fresh registry per test."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from genonaut_monitoring import builder  # noqa: E402
from genonaut_monitoring.pgserver import find_bin  # noqa: E402
from genonaut_monitoring.processes import free_port as free_port  # noqa: E402  (re-exported)

# Debian package that provides each system tool the tests use.
TOOL_PACKAGES = {
    **builder.TOOL_PACKAGES,
    "docker-compose": "docker-compose",
    "initdb": "postgresql",
    "pg_ctl": "postgresql",
    "postgres": "postgresql",
}

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_tool(name: str) -> str:
    """Path of a system tool; skip the test without it, or fail under CI=true."""
    path = find_bin(name) if name in ("initdb", "pg_ctl", "postgres") else shutil.which(name)
    if path is None:
        package = TOOL_PACKAGES.get(name, name)
        reason = f"{name} is not installed: apt-get install --no-install-recommends {package}"
        if IN_CI:
            pytest.fail(f"CI must have {name}: {reason}")
        pytest.skip(reason)
    return path


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry, so every test starts from zero."""
    return CollectorRegistry()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging() changes process-wide logging; put it back after each test."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    levels = {name: logging.getLogger(name).level for name in ("genonaut_monitoring", "uvicorn")}
    uvicorn = {
        name: (logging.getLogger(name).propagate, list(logging.getLogger(name).handlers))
        for name in ("uvicorn", "uvicorn.error")
    }
    access_disabled = logging.getLogger("uvicorn.access").disabled
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    for name, (propagate, handlers) in uvicorn.items():
        logging.getLogger(name).propagate = propagate
        logging.getLogger(name).handlers[:] = handlers
    logging.getLogger("uvicorn.access").disabled = access_disabled
