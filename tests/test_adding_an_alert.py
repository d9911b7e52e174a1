"""Adding an alert is one definition plus its runbook section: README's example, applied.

The example in README.md ("Adding an alert") is copied into a copy of this
repository, in alerts/http.py and RUNBOOK.md only; there the build and the
alert tests must pass with no other edit, and must cover the new alert.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genonaut_monitoring.alerts.messages import RECEIVERS
from tests.conftest import ROOT, require_tool
from tests.promtool import PROFILES, SOURCES

ALERT = "ApiRouteErrors"
# The suites that read the alert definitions, run in the copy.
SUITES = [
    "tests/test_alert_rules.py",
    "tests/test_alert_definitions.py",
    "tests/test_alertmanager_routing.py",
    "tests/test_dashboards.py",
    "tests/test_notification_previews.py",
]


def readme_example(target: str) -> str:
    """The fenced block that README.md marks as the example alert's code for ``target``."""
    text = (ROOT / "README.md").read_text()
    marker = f"<!-- example alert: {target} -->\n"
    assert marker in text, f"README.md has no example marked {marker.strip()}"
    block = text.split(marker, 1)[1]
    match = re.match(r"```\w*\n(.*?)\n```\n", block, re.S)
    assert match, f"README.md: no fenced block after {marker.strip()}"
    return match.group(1) + "\n"


def add_example(module: str, example: str) -> str:
    """``module`` with the example's import, definition and ``alerts()`` applied."""
    imports, rest = example.split("\n\n\n", 1)
    definition, registry = rest.split("\n\n\ndef alerts(", 1)
    lines = module.splitlines(keepends=True)
    new = imports.split("  #")[0].rstrip() + "\n"
    # Among the package's imports, in the order ruff's isort keeps them (by module).
    ours = [i for i, line in enumerate(lines) if line.startswith("from genonaut_monitoring")]
    after = [i for i in ours if lines[i].split()[1] > new.split()[1]]
    lines.insert(after[0] if after else ours[-1] + 1, new)
    patched = "".join(lines)
    old_registry = re.search(r"\ndef alerts\(.*?\n\n\n", patched, re.S)
    assert old_registry, "alerts/http.py has no alerts() function"
    return (
        patched[: old_registry.start()]
        + "\n"
        + definition.rstrip()
        + "\n\n\ndef alerts("
        + registry.rstrip()
        + "\n\n\n"
        + patched[old_registry.end() :]
    )


def copy_repository(target: Path) -> None:
    """The files git knows of (committed or not, never ignored ones), links kept as links."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for relative in filter(None, listed):
        source = ROOT / relative
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not yet in the index
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), destination)
        else:
            shutil.copy2(source, destination)


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, f"{' '.join(args)} in the copy:\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_the_readme_example_alert_needs_only_its_definition_and_runbook_section(
    tmp_path: Path,
) -> None:
    require_tool("promtool")
    require_tool("amtool")
    repo = tmp_path / "repo"
    copy_repository(repo)
    http = repo / "alerts" / "http.py"
    http.write_text(add_example(http.read_text(), readme_example("alerts/http.py")))
    runbook = repo / "RUNBOOK.md"
    runbook.write_text(runbook.read_text().rstrip("\n") + "\n\n" + readme_example("RUNBOOK.md"))

    python = sys.executable
    # The copy's package, not this checkout's, is the one imported there.
    where = run([python, "-c", "import genonaut_monitoring as g; print(g.__file__)"], repo)
    assert Path(where.strip()).resolve().is_relative_to(repo.resolve()), where
    names = run(
        [python, "-c", "from genonaut_monitoring import alerts, config; "
         "print(*alerts.by_name(config.CONFIG))"],
        repo,
    )  # fmt: skip
    assert ALERT in names.split()

    built = run([python, "build.py", "--out", str(tmp_path / "out")], repo)
    assert "wrote" in built
    rules = (tmp_path / "out" / "prometheus" / "rules" / "http.yml").read_text()
    assert f"- alert: {ALERT}\n" in rules
    run([python, "-m", "ruff", "check", "alerts/http.py"], repo)

    # Every test of these suites, but the promtool tests of the other alerts (run here).
    # As on the adopter's machine, not in CI: the first run writes the new alert's previews
    # (CI=true would fail on them, as they are not committed yet); the tools it needs were
    # required above.
    local = {k: v for k, v in os.environ.items() if k != "CI"}
    tested = run(
        [python, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-m", "not e2e",
         "-k", f"{ALERT} or not test_alert_fires", *SUITES],
        repo,
        local,
    )  # fmt: skip
    assert re.search(r"=+ \d+ passed", tested) and " failed" not in tested, tested
    # The new alert's own promtool cases ran, in every profile and from every rule source.
    for profile in PROFILES:
        for source in SOURCES:
            case = rf"test_alert_fires\S*\[{ALERT}-{profile}-{source}\] PASSED"
            assert re.search(case, tested), (case, tested)
    # Its notifications were previewed, to every receiver, for review and commit.
    previews = sorted(p.name for p in (repo / "tests/golden/notifications").glob(f"{ALERT}.*"))
    assert previews == [f"{ALERT}.{r}.txt" for r in sorted(RECEIVERS)], previews
    slack = (repo / "tests/golden/notifications" / f"{ALERT}.slack.txt").read_text()
    assert f"[FIRING:1] {ALERT} (warning) on /api/v1/content/{{item_id}}" in slack
