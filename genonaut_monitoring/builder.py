"""The build pipeline: render every part in memory, validate it staged, swap it into place.

Each part of the project contributes files as ``{relative path: bytes}``:
``dashboards.outputs``, the ``provision`` templates, ``pgexporter.outputs`` (the
postgres_exporter queries and compose's role script) and ``alerts.outputs``.
Everything is rendered in memory, written to a staging folder beside the
output folder, validated there (PromQL contract, promtool, amtool), and only
then swapped into place. A failed build leaves the previous output untouched.

    >>> from genonaut_monitoring import builder, config
    >>> builder.build(config.CONFIG, Path("out"))  # doctest: +SKIP

The command (``genonaut-monitoring build``, or ``python build.py`` in this
repository) lives in :mod:`genonaut_monitoring.cli`; the parts import only this
module, so the dependencies point one way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from genonaut_monitoring import config

Outputs = dict[str, bytes]


class BuildError(Exception):
    """A definition or a generated file is wrong; the message says where and what to do."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Part:
    """One contributor to the build: what it renders and how its output is checked."""

    name: str
    render: Callable[[config.Config], Outputs]
    # Checks run on the staged folder; each returns problems as sentences.
    validate: Callable[[Path, config.Config], list[str]]


# What the build can produce: files for one host (compose or the local stack), or the
# same definitions as Kubernetes resources for the Prometheus Operator.
TARGETS = ("files", "kubernetes")


def parts(target: str = "files") -> list[Part]:
    """The parts of ``target``'s build, in the order they render and validate."""
    if target == "kubernetes":
        from genonaut_monitoring import kubernetes

        return [Part("kubernetes", kubernetes.outputs, kubernetes.validate)]
    if target != "files":
        raise ValueError(f"unknown build target {target!r}: choose one of {', '.join(TARGETS)}")
    from genonaut_monitoring import alerts, dashboards, pgexporter, provision

    return [
        Part("dashboards", dashboards.outputs, dashboards.validate),
        Part("provisioning", provision.outputs, provision.validate),
        Part("postgres-exporter", pgexporter.outputs, pgexporter.validate),
        Part("alerts", alerts.outputs, alerts.validate),
    ]


# --- external validators ---------------------------------------------------------

# Debian package that provides each validator and each program the stack runs.
TOOL_PACKAGES = {
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
}


def run_tool(args: list[str], what: str, cwd: Path | None = None) -> list[str]:
    """Run a validator such as promtool; return its complaint as problems, or none.

    A missing tool is a problem under CI (``CI=true``) and a warning otherwise,
    so a developer without Prometheus installed can still build.
    """
    tool = shutil.which(args[0])
    if tool is None:
        hint = TOOL_PACKAGES.get(args[0], args[0])
        message = f"{what}: {args[0]} not found; install it (Debian: apt-get install {hint})"
        if os.environ.get("CI", "").lower() == "true":
            return [message]
        print(f"warning: {message}; skipped", file=sys.stderr)
        return []
    result = subprocess.run(
        [tool, *args[1:]], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode == 0:
        return []
    output = (result.stdout + result.stderr).strip()
    return [f"{what}: {' '.join(args)} failed:\n{output}"]


# --- render, stage, swap ------------------------------------------------------------


def render(cfg: config.Config, target: str = "files") -> Outputs:
    """Render every part in memory; raise BuildError if two parts claim one path."""
    outputs: Outputs = {}
    problems: list[str] = []
    for part in parts(target):
        try:
            produced = part.render(cfg)
        except BuildError as exc:
            problems.extend(exc.problems)
            continue
        for path, content in produced.items():
            if path in outputs:
                problems.append(f"{part.name}: {path} is also written by another part")
            outputs[path] = content
    if problems:
        raise BuildError(problems)
    return dict(sorted(outputs.items()))


def write_tree(folder: Path, outputs: Mapping[str, bytes]) -> None:
    """Write ``outputs`` under ``folder``."""
    for relative, content in outputs.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def validate(folder: Path, cfg: config.Config, target: str = "files") -> None:
    """Run every part's checks on a written tree; raise BuildError with all problems."""
    problems: list[str] = []
    for part in parts(target):
        problems.extend(part.validate(folder, cfg))
    if problems:
        raise BuildError(problems)


def stage(cfg: config.Config, out: Path, target: str = "files") -> tuple[Path, Outputs]:
    """Render and validate into a fresh folder beside ``out``; return it and the outputs."""
    outputs = render(cfg, target)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    # mkdtemp makes a private folder; the output is read by other users too (Grafana's
    # and Prometheus' containers mount it), so give it the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    try:
        write_tree(staging, outputs)
        validate(staging, cfg, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging, outputs


def swap_into_place(staging: Path, out: Path) -> None:
    """Replace ``out`` with ``staging`` by renames, so readers never see a half tree."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rmdir(old)
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_tree(folder: Path) -> Outputs:
    """Every file under ``folder`` as ``{relative path: bytes}``."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def drift(expected: Mapping[str, bytes], actual: Mapping[str, bytes]) -> list[str]:
    """Describe how the files on disk differ from a fresh build."""
    lines = []
    for path in sorted(set(expected) | set(actual)):
        if path not in actual:
            lines.append(f"missing: {path}")
        elif path not in expected:
            lines.append(f"not generated by this build: {path}")
        elif expected[path] != actual[path]:
            lines.append(f"differs: {path}")
    return lines


def build(cfg: config.Config, out: Path, target: str = "files") -> Outputs:
    """Render, validate and atomically write ``out``; return what was written."""
    staging, outputs = stage(cfg, out, target)
    swap_into_place(staging, out)
    return outputs


def check(cfg: config.Config, out: Path, target: str = "files") -> list[str]:
    """Validate a fresh build and compare it with ``out``; return the drift found."""
    staging, outputs = stage(cfg, out, target)
    shutil.rmtree(staging, ignore_errors=True)
    return drift(outputs, read_tree(out))


def summary(outputs: Mapping[str, bytes], out: Path) -> str:
    """One line saying what was written where."""
    counts: dict[str, int] = {}
    for path in outputs:
        top = path.split("/", 1)[0]
        counts[top] = counts.get(top, 0) + 1
    parts_text = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    return f"wrote {len(outputs)} files to {out} ({parts_text})"
