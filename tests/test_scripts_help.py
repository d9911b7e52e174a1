"""Every module in scripts/ answers --help: a command with its usage, a helper with a refusal."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

MODULES = sorted(p.stem for p in (ROOT / "scripts").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("module", MODULES)
def test_help_never_answers_with_nothing(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"scripts.{module}", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if module.startswith("_"):
        assert result.returncode == 1, result
        assert result.stdout == ""
        assert ": not a command, a helper of scripts." in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("usage: "), result.stdout
