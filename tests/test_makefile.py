"""`make help` documents every target a user can run."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT


def test_make_help_lists_every_phony_target_with_its_description() -> None:
    if shutil.which("make") is None:
        pytest.fail("make is required to run this project (apt-get install make)")
    makefile = (ROOT / "Makefile").read_text()
    phony = set(re.findall(r"^\.PHONY: *([\w-]+)", makefile, flags=re.M))
    documented = dict(re.findall(r"^([\w-]+):[^\n#]*## (.+)$", makefile, flags=re.M))
    assert phony == set(documented), f"undocumented targets: {sorted(phony - set(documented))}"
    shown = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    for target, description in documented.items():
        assert re.search(rf"make {re.escape(target)} +{re.escape(description)}", shown), target
    for command in ("build", "test"):
        assert f"make {command}" in shown
