"""A build that fails, or is killed, leaves out/ whole: one clean message, no litter."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from genonaut_monitoring import builder, config
from tests.conftest import ROOT

CFG = config.CONFIG
WATCHED = "prometheus/prometheus.yml"


def project_copy(tmp_path: Path) -> Path:
    """build.py and the package, links resolved, so a test may break any definition."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(ROOT / "build.py", copy)
    shutil.copytree(
        ROOT / "genonaut_monitoring",
        copy / "genonaut_monitoring",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return copy


def run_build(project: Path, out: Path) -> subprocess.CompletedProcess[str]:
    # build.py's folder comes first on sys.path, so the copy is what gets imported.
    return subprocess.run(
        [sys.executable, "build.py", "--out", str(out)],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )


def insert_after(marker: str, line: str) -> Callable[[str], tuple[str, int]]:
    """An edit adding ``line`` after the first line starting with ``marker``; and its number."""

    def edit(text: str) -> tuple[str, int]:
        lines = text.splitlines(keepends=True)
        at = next(i for i, each in enumerate(lines) if each.startswith(marker)) + 1
        lines.insert(at, f"{line}\n")
        return "".join(lines), at + 1

    return edit


BROKEN = {
    "a SyntaxError in a dashboard": (
        "dashboards/main.py",
        insert_after("def request_rate", "    return ("),
        "SyntaxError: '(' was never closed",
    ),
    "an ImportError in the alerts": (
        "alerts/__init__.py",
        insert_after("from genonaut_monitoring.alerts.model", "from os import nothing_here"),
        "ImportError: cannot import name 'nothing_here' from 'os'",
    ),
    "an exception raised by a panel": (
        "dashboards/main.py",
        insert_after("def request_rate", "    {}['missing']"),
        "KeyError: 'missing'",
    ),
    "a SyntaxError in config.py": (
        "config.py",
        insert_after("class Thresholds", "    error_ratio: Ratio = (0.05"),
        "SyntaxError: '(' was never closed",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_python_error_in_a_definition_is_one_message_naming_file_and_line(
    tmp_path: Path, case: str
) -> None:
    relative, edit, error = BROKEN[case]
    project = project_copy(tmp_path)
    out = tmp_path / "out"
    assert run_build(project, out).returncode == 0
    before = builder.read_tree(out)
    source = project / "genonaut_monitoring" / relative
    text, line = edit(source.read_text())
    source.write_text(text)

    result = run_build(project, out)

    assert result.returncode == 1
    header, problem = result.stderr.splitlines()
    assert header.endswith("was left as it was:")
    assert problem.startswith(f"  genonaut_monitoring/{relative}:{line}: {error}"), problem
    assert problem.endswith("(a Python error in a definition; fix it and build again)")
    assert result.stdout == ""
    assert builder.read_tree(out) == before


def test_each_problem_is_reported_once(tmp_path: Path) -> None:
    # The alerts render the dashboards too (to link panels): the same problem, found twice.
    uids = {**CFG.grafana.dashboard_uids, "database": CFG.grafana.dashboard_uids["main"]}
    cfg = replace(CFG, grafana=replace(CFG.grafana, dashboard_uids=uids))
    with pytest.raises(builder.BuildError) as refused:
        builder.build(cfg, tmp_path / "out")
    assert refused.value.problems == [
        "dashboard 'database': uid 'genonaut-main' is also the uid of 'main'; uids must be "
        "unique (config.Grafana.dashboard_uids)"
    ]


# A process that swaps trees into OUT as fast as it can, each a whole, valid build.
_SWAPPER = """
import os
import sys
from pathlib import Path
from genonaut_monitoring import builder

out, tree = Path(sys.argv[1]), builder.read_tree(Path(sys.argv[2]))
while True:
    with builder.exclusive(out):
        builder.remove_leftovers(out)
        staging = out.parent / f".{out.name}.staging-{os.getpid()}"
        builder.write_tree(staging, tree)
        builder.swap_into_place(staging, out, keep_previous=True)
"""


class Poller(threading.Thread):
    """Reads ``out/WATCHED`` in a loop; counts reads, and those that missed or differed."""

    def __init__(self, out: Path, expected: bytes) -> None:
        super().__init__()
        self.path, self.expected = out / WATCHED, expected
        self.reads = 0
        self.misses: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                content = self.path.read_bytes()
            except OSError as error:
                self.misses.append(repr(error))
            else:
                if content != self.expected:
                    self.misses.append(f"{len(content)} bytes, not the {len(self.expected)}")
            self.reads += 1


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.mark.slow
def test_swaps_killed_at_random_never_leave_out_missing_or_partial(tmp_path: Path) -> None:
    out = tmp_path / "out"
    builder.build(CFG, out)
    source = tmp_path / "source"
    shutil.copytree(out, source)
    poller = Poller(out, (out / WATCHED).read_bytes())
    poller.start()
    rng = random.Random(10)
    try:
        for _ in range(25):
            swapper = subprocess.Popen(
                [sys.executable, "-c", _SWAPPER, str(out), str(source)], cwd=ROOT
            )
            time.sleep(rng.uniform(0.3, 0.8))
            swapper.send_signal(signal.SIGKILL)
            swapper.wait()
    finally:
        poller.done.set()
        poller.join()
    assert poller.misses == [], poller.misses[:5]
    assert poller.reads > 10_000
    builder.build(CFG, out)  # removes what the killed swappers left
    assert leftovers(out) == [f".{out.name}.previous"]
    assert builder.read_tree(out) == builder.read_tree(source)


@pytest.mark.slow
def test_builds_killed_at_random_leave_out_whole_and_the_next_build_cleans_up(
    tmp_path: Path,
) -> None:
    out = tmp_path / "out"
    started = time.monotonic()
    builder.build(CFG, out)
    took = time.monotonic() - started
    poller = Poller(out, (out / WATCHED).read_bytes())
    poller.start()
    rng = random.Random(10)
    outcomes = {"killed": 0, "finished": 0}
    try:
        for _ in range(20):
            build = subprocess.Popen(
                [sys.executable, "build.py", "--out", str(out)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            # From the start to a bit past a whole build (imports included).
            time.sleep(rng.uniform(0, 1.5 * took + 1.0))
            build.send_signal(signal.SIGKILL)
            outcomes["finished" if build.wait() == 0 else "killed"] += 1
    finally:
        poller.done.set()
        poller.join()
    assert poller.misses == [], poller.misses[:5]
    assert outcomes["killed"] > 0, outcomes
    builder.build(CFG, out)
    assert leftovers(out) == [f".{out.name}.previous"]
    assert os.access(out / WATCHED, os.R_OK)
