"""Provisioning: Grafana datasources and dashboard providers, and prometheus.yml.

The jinja2 templates ship with the package (``genonaut_monitoring/provisioning``,
the repository's ``provisioning/`` folder) and are rendered with the config's
sections by name, so a template reads ``grafana.folder`` or ``intervals.*``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from genonaut_monitoring import PACKAGE_DIR, config
from genonaut_monitoring.builder import BuildError, Outputs, run_tool

TEMPLATES = PACKAGE_DIR / "provisioning"

# Template under provisioning/ -> the file it renders to under out/.
PROVISIONING_TEMPLATES = {
    "grafana/datasources.yaml.j2": "grafana/provisioning/datasources/datasources.yaml",
    "grafana/dashboards.yaml.j2": "grafana/provisioning/dashboards/dashboards.yaml",
    "prometheus/prometheus.yml.j2": "prometheus/prometheus.yml",
}


def _template_values(cfg: config.Config) -> dict[str, object]:
    """Config sections by name, so templates read ``grafana.folder``, ``intervals.*``..."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}


def outputs(cfg: config.Config) -> Outputs:
    """Render the templates in provisioning/ with values from ``cfg``."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # A JSON string is a valid double-quoted YAML scalar: values never need hand quoting.
    env.filters["q"] = json.dumps
    values = _template_values(cfg)
    rendered: Outputs = {}
    problems = []
    for template, target in PROVISIONING_TEMPLATES.items():
        try:
            rendered[target] = env.get_template(template).render(values).encode()
        except jinja2.TemplateError as exc:
            problems.append(f"provisioning/{template}: {type(exc).__name__}: {exc}")
    if problems:
        raise BuildError(problems)
    return rendered


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


def validate(folder: Path, cfg: config.Config) -> list[str]:
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
    problems += remote_write_problems(cfg)
    prometheus_file = PROVISIONING_TEMPLATES["prometheus/prometheus.yml.j2"]
    problems += run_tool(
        ["promtool", "check", "config", str(folder / prometheus_file)], prometheus_file
    )
    return problems


def remote_write_problems(cfg: config.Config) -> list[str]:
    """Remote-write settings promtool accepts but that cannot work; each names the key."""
    problems = []
    for index, store in enumerate(cfg.remote_write):
        where = f"config.remote_write[{index}] ({store.url})"
        if bool(store.username) != bool(store.password_file):
            problems.append(
                f"{where}: basic auth needs both username and password_file "
                "(the file Prometheus reads the password from)"
            )
        if store.password_file and store.bearer_token_file:
            problems.append(
                f"{where}: set password_file (basic auth) or bearer_token_file, not both"
            )
    return problems
