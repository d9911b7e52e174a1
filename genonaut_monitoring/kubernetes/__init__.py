"""The Kubernetes target: the same definitions as resources for the Prometheus Operator.

``genonaut-monitoring build --target kubernetes --out DIR`` writes, for
``kubectl apply -k DIR``:

- ``prometheus-rules/<group>.yaml``: a PrometheusRule per rule group area;
- ``service-monitors/<service>.yaml``: a ServiceMonitor per ``config.services`` entry,
  and one for postgres_exporter (``config.postgres``) unless it has no targets;
- ``alertmanager/genonaut.yaml``: an AlertmanagerConfig with alertmanager.yml's routes,
  receivers and inhibition rules, secrets referenced from Secrets;
- ``alertmanager/genonaut-alertmanager-templates.yaml``: the notification templates;
- ``grafana-dashboards/<uid>.yaml``: a ConfigMap per dashboard for Grafana's sidecar;
- ``kustomization.yaml``: all of them, with the namespace and common labels.

Every resource is made from the files target's output (:mod:`.manifests`) and
validated here: the files target's own checks, each resource against its schema
(:mod:`.schemas`: the pinned prometheus-operator CRDs, Kubernetes' ConfigMap),
sizes, ``promtool check rules`` on the rules inside every PrometheusRule, and
``amtool check-config`` on the AlertmanagerConfig merged as the operator merges it.

    >>> files = outputs(config.CONFIG)  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from genonaut_monitoring import builder, config
from genonaut_monitoring.alerts.render import dump
from genonaut_monitoring.builder import BuildError, Outputs, run_tool
from genonaut_monitoring.kubernetes import amconfig, manifests, schemas
from genonaut_monitoring.kubernetes.manifests import document

KUSTOMIZATION = "kustomization.yaml"


def outputs(cfg: config.Config) -> Outputs:
    """Every manifest and the kustomization; BuildError names what cannot be converted."""
    from genonaut_monitoring import alerts

    files = builder.render(cfg, "files")
    # By name and labels: several rules may write one name (the SLO rules, one per SLO).
    whys = {r.identity: r.why for group in alerts.groups(cfg) for r in group.records}
    made: dict[str, tuple[str, str]] = {}  # path -> (text, where its name comes from)
    problems: list[str] = []
    for path, content in files.items():
        if path.startswith(f"{alerts.RULES_DIR}/"):
            text = manifests.prometheus_rule(cfg, content.decode(), whys)
            name = schemas.load_yaml(text)["metadata"]["name"]
            made[f"{manifests.RULES_DIR}/{name}.yaml"] = (text, f"the rule group in {path}")
        elif path.startswith("grafana/dashboards/") and path.endswith(".json"):
            uid = Path(path).stem
            resource = manifests.dashboard_config_map(cfg, uid, content)
            where = f"dashboard uid {uid!r} (config.Grafana.dashboard_uids)"
            made[f"{manifests.DASHBOARDS_DIR}/{uid}.yaml"] = (document(resource), where)
    for index, service in enumerate(cfg.services):
        resource = manifests.service_monitor(cfg, service)
        where = f"service {service.name!r} (config services[{index}].name)"
        made[f"{manifests.MONITORS_DIR}/{service.name}.yaml"] = (document(resource), where)
    exporter = cfg.postgres.as_service(cfg.intervals)
    if exporter is not None:
        # The PostgreSQL alerts select the exporter's job: something must scrape it.
        path = f"{manifests.MONITORS_DIR}/{exporter.name}.yaml"
        if path in made:
            problems.append(f"config postgres.job {exporter.name!r} is also a service's name")
        resource = manifests.service_monitor(cfg, exporter)
        made[path] = (document(resource), f"postgres_exporter {exporter.name!r} (postgres.job)")
    try:
        resource = manifests.alertmanager_config(cfg, files["alertmanager/alertmanager.yml"])
        made[f"{manifests.ALERTING_DIR}/{manifests.ALERTMANAGER_CONFIG}.yaml"] = (
            document(resource),
            "kubernetes/manifests.py",
        )
    except amconfig.Unconvertible as exc:
        problems.append(f"AlertmanagerConfig: {exc}")
    templates = {
        Path(p).name: c for p, c in files.items() if p.startswith("alertmanager/templates/")
    }
    made[f"{manifests.ALERTING_DIR}/{manifests.TEMPLATES_CONFIGMAP}.yaml"] = (
        document(manifests.config_map(cfg, manifests.TEMPLATES_CONFIGMAP, templates)),
        "kubernetes/manifests.py",
    )
    for path, (text, where) in sorted(made.items()):
        name = schemas.load_yaml(text)["metadata"]["name"]
        if not config.DNS_SUBDOMAIN.fullmatch(name):
            problems.append(
                f"{path}: {name!r}, from {where}, is not a Kubernetes name (DNS-1123 "
                "subdomain: at most 253 lower-case letters, digits, '-' and '.'); rename it"
            )
    if problems:
        raise BuildError(problems)
    rendered = {path: text.encode() for path, (text, _) in made.items()}
    rendered[KUSTOMIZATION] = document(manifests.kustomization(cfg, list(made))).encode()
    return dict(sorted(rendered.items()))


def validate(folder: Path, cfg: config.Config) -> list[str]:
    """Problems in the staged manifests, each naming the file, the resource and the field."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="genonaut-k8s-") as scratch:
        work = Path(scratch)
        problems += _files_target_problems(cfg, work / "files")
        resources, valid = _load(folder, problems)
        problems += _kustomization_problems(resources, valid, cfg)
        # The tools read what the schemas let through; the rest is reported above.
        problems += _rules_problems(valid, work / "rules")
        problems += _alertmanager_problems(valid, work / "alertmanager")
    return problems


def _files_target_problems(cfg: config.Config, where: Path) -> list[str]:
    """The definitions pass every check of the files target (PromQL contract, promtool...)."""
    builder.write_tree(where, builder.render(cfg, "files"))
    try:
        builder.validate(where, cfg, "files")
    except BuildError as exc:
        return [f"(as files) {problem}" for problem in exc.problems]
    return []


def _load(folder: Path, problems: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every manifest by path, and those that pass their schema and Kubernetes' limits."""
    resources, valid = {}, {}
    for path in sorted(folder.rglob("*.yaml")):
        relative = path.relative_to(folder).as_posix()
        try:
            resource = schemas.load_yaml(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            problems.append(f"{relative}: is not YAML: {exc}")
            continue
        resources[relative] = resource
        meta = resource.get("metadata") if isinstance(resource, dict) else None
        label = f"{resource.get('kind')} {meta.get('name')}: " if isinstance(meta, dict) else ""
        found = schemas.validate_resource(resource)
        found += schemas.size_problems(resource) if not found else []
        problems.extend(f"{relative}: {label}{problem}" for problem in found)
        if not found:
            valid[relative] = resource
    return resources, valid


def _kustomization_problems(
    resources: Mapping[str, Any], valid: Mapping[str, Any], cfg: config.Config
) -> list[str]:
    listed = list((valid.get(KUSTOMIZATION) or {}).get("resources") or [])
    present = sorted(set(resources) - {KUSTOMIZATION})
    problems = []
    if sorted(listed) != present:
        problems.append(
            f"{KUSTOMIZATION}: resources {listed} must list every manifest once: {present}"
        )
    for path, resource in valid.items():
        namespace = resource["metadata"]["namespace"] if path != KUSTOMIZATION else None
        if path != KUSTOMIZATION and namespace != cfg.kubernetes.namespace:
            problems.append(
                f"{path}: namespace {namespace!r} is not config.Kubernetes.namespace "
                f"{cfg.kubernetes.namespace!r}"
            )
    return problems


def rule_file(resource: Mapping[str, Any]) -> str:
    """A PrometheusRule's ``spec.groups`` as the Prometheus rule file the operator makes of it."""
    return dump({"groups": resource["spec"]["groups"]})


def rule_files(outputs: Mapping[str, bytes]) -> dict[str, bytes]:
    """Every PrometheusRule of a build's outputs as a rule file, by ``<resource name>.yml``."""
    found = {}
    for path, content in sorted(outputs.items()):
        resource = schemas.load_yaml(content)
        if path.endswith(".yaml") and resource.get("kind") == "PrometheusRule":
            found[f"{resource['metadata']['name']}.yml"] = rule_file(resource).encode()
    return found


def _rules_problems(resources: Mapping[str, Any], where: Path) -> list[str]:
    """``promtool check rules`` on the groups of every PrometheusRule, as a rule file each."""
    problems = []
    where.mkdir(parents=True)
    for path, resource in sorted(resources.items()):
        if resource.get("kind") != "PrometheusRule":
            continue
        target = where / f"{resource['metadata']['name']}.yml"
        target.write_text(rule_file(resource))
        problems += run_tool(
            ["promtool", "check", "rules", "--lint=all", "--lint-fatal", str(target)],
            f"{path} (its spec.groups as a rule file)",
        )
    return problems


def _alertmanager_problems(resources: Mapping[str, Any], where: Path) -> list[str]:
    """``amtool check-config`` on every AlertmanagerConfig as the operator merges it."""
    templates: dict[str, str] = {}
    for resource in resources.values():
        if resource.get("kind") == "ConfigMap" and resource["metadata"]["name"] == (
            manifests.TEMPLATES_CONFIGMAP
        ):
            templates = resource.get("data") or {}
    problems = []
    for path, resource in sorted(resources.items()):
        if resource.get("kind") != "AlertmanagerConfig":
            continue
        meta = resource["metadata"]
        merged = amconfig.to_alertmanager(
            resource["spec"], meta["namespace"], meta["name"], ["templates/*.tmpl"]
        )
        (where / "templates").mkdir(parents=True, exist_ok=True)
        for name, text in templates.items():
            (where / "templates" / name).write_text(text)
        target = where / f"{meta['name']}.yml"
        target.write_text(dump(merged))
        problems += run_tool(
            ["amtool", "check-config", str(target)],
            f"{path} (merged into an Alertmanager config as the operator does)",
        )
    return problems
