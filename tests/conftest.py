"""Shared fixtures: system tools, free ports (from the stack), a fresh registry per test."""

from __future__ import annotations

import os
import shutil
import sys
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
