#!/usr/bin/env python3
"""Build every generated file: dashboards, provisioning, rules and configs.

    python build.py                  # write out/ (profile "default")
    python build.py --check          # validate and compare with out/; exit 1 on drift
    python build.py --out DIR --profile test

Each part of the project contributes files as ``{relative path: bytes}``:
``dashboards.outputs``, ``provisioning`` templates and ``alerts.outputs``.
Everything is rendered in memory, written to a staging folder beside the
output folder, validated there (PromQL contract, promtool, amtool), and only
then swapped into place. A failed build leaves the previous output untouched.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import config

# Run as a script, this module is __main__; parts import it as `build`. Register
# it under that name too, so both see one BuildError class.
if __name__ == "__main__":
    sys.modules.setdefault("build", sys.modules[__name__])

ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "out"

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


def parts() -> list[Part]:
    """The build's parts, in the order they render and validate."""
    import alerts
    import dashboards

    return [
        Part("dashboards", dashboards.outputs, dashboards.validate),
        Part("provisioning", provisioning_outputs, provisioning_validate),
        Part("alerts", alerts.outputs, alerts.validate),
    ]


# --- provisioning: Grafana datasources and dashboard providers, prometheus.yml ---


PROVISIONING = ROOT / "provisioning"

# Template under provisioning/ -> the file it renders to under out/.
PROVISIONING_TEMPLATES = {
    "grafana/datasources.yaml.j2": "grafana/provisioning/datasources/datasources.yaml",
    "grafana/dashboards.yaml.j2": "grafana/provisioning/dashboards/dashboards.yaml",
    "prometheus/prometheus.yml.j2": "prometheus/prometheus.yml",
}


def _template_values(cfg: config.Config) -> dict[str, object]:
    """Config sections by name, so templates read ``grafana.folder``, ``intervals.*``..."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def provisioning_outputs(cfg: config.Config) -> Outputs:
    """Render the templates in provisioning/ with values from ``cfg``."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROVISIONING),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # A JSON string is a valid double-quoted YAML scalar: values never need hand quoting.
    env.filters["q"] = json.dumps
    values = _template_values(cfg)
    outputs: Outputs = {}
    problems = []
    for template, target in PROVISIONING_TEMPLATES.items():
        try:
            outputs[target] = env.get_template(template).render(values).encode()
        except jinja2.TemplateError as exc:
            problems.append(f"provisioning/{template}: {type(exc).__name__}: {exc}")
    if problems:
        raise BuildError(problems)
    return outputs


def _load_yaml(folder: Path, relative: str, problems: list[str]) -> dict[str, Any]:
    try:
        data = yaml.safe_load((folder / relative).read_text())
    except (OSError, yaml.YAMLError) as exc:
        problems.append(f"{relative}: cannot be read as YAML: {exc}")
        return {}
    if not isinstance(data, dict):
        problems.append(f"{relative}: must be a YAML mapping")
        return {}
    return data


def provisioning_validate(folder: Path, cfg: config.Config) -> list[str]:
    """Check the rendered provisioning: datasource uids, provider path, promtool check config."""
    problems: list[str] = []
    datasources_file = PROVISIONING_TEMPLATES["grafana/datasources.yaml.j2"]
    datasources = _load_yaml(folder, datasources_file, problems).get("datasources") or []
    found = {ds.get("uid"): ds.get("type") for ds in datasources if isinstance(ds, dict)}
    expected = {
        cfg.grafana.prometheus_uid: "prometheus",
        cfg.grafana.alertmanager_uid: "alertmanager",
    }
    for uid, kind in expected.items():
        if found.get(uid) != kind:
            problems.append(
                f"{datasources_file}: needs a {kind} datasource with uid {uid!r} "
                f"(config.Grafana); found {found}"
            )
    providers_file = PROVISIONING_TEMPLATES["grafana/dashboards.yaml.j2"]
    providers = _load_yaml(folder, providers_file, problems).get("providers") or []
    paths = [p.get("options", {}).get("path") for p in providers if isinstance(p, dict)]
    if paths != [cfg.grafana.dashboards_path]:
        problems.append(
            f"{providers_file}: expected one file provider reading "
            f"{cfg.grafana.dashboards_path!r} (config.Grafana.dashboards_path); found {paths}"
        )
    prometheus_file = PROVISIONING_TEMPLATES["prometheus/prometheus.yml.j2"]
    problems += run_tool(
        ["promtool", "check", "config", str(folder / prometheus_file)],
        f"{prometheus_file}",
    )
    return problems


# --- external validators ---------------------------------------------------------


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


# Debian package that provides each validator.
TOOL_PACKAGES = {
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
}


def render(cfg: config.Config) -> Outputs:
    """Render every part in memory; raise BuildError if two parts claim one path."""
    outputs: Outputs = {}
    problems: list[str] = []
    for part in parts():
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


def validate(folder: Path, cfg: config.Config) -> None:
    """Run every part's checks on a written tree; raise BuildError with all problems."""
    problems: list[str] = []
    for part in parts():
        problems.extend(part.validate(folder, cfg))
    if problems:
        raise BuildError(problems)


def stage(cfg: config.Config, out: Path) -> tuple[Path, Outputs]:
    """Render and validate into a fresh folder beside ``out``; return it and the outputs."""
    outputs = render(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    # mkdtemp makes a private folder; the output is read by other users too (Grafana's
    # and Prometheus' containers mount it), so give it the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)
    try:
        write_tree(staging, outputs)
        validate(staging, cfg)
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


def build(cfg: config.Config, out: Path) -> Outputs:
    """Render, validate and atomically write ``out``; return what was written."""
    staging, outputs = stage(cfg, out)
    swap_into_place(staging, out)
    return outputs


def check(cfg: config.Config, out: Path) -> list[str]:
    """Validate a fresh build and compare it with ``out``; return the drift found."""
    staging, outputs = stage(cfg, out)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Generate Grafana dashboards and provisioning, Prometheus rules and "
        "configs, and the Alertmanager config, then validate them.",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output folder (default: out/)"
    )
    parser.add_argument(
        "--profile",
        default="default",
        choices=sorted(config.PROFILES),
        help="configuration profile from config.py (default: default)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate a fresh build and compare it with --out; exit 1 if they differ",
    )
    args = parser.parse_args(argv)
    cfg = config.profile(args.profile)
    out = args.out.resolve()
    try:
        if args.check:
            differences = check(cfg, out)
            if differences:
                print(f"{out} is out of date; run `python build.py`:", file=sys.stderr)
                for line in differences:
                    print(f"  {line}", file=sys.stderr)
                return 1
            print(f"{out} is up to date")
            return 0
        outputs = build(cfg, out)
    except BuildError as exc:
        print(f"build failed; {out} was left as it was:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(summary(outputs, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
