"""The AlertmanagerConfig routes like alertmanager.yml, through the operator's merge, via amtool.

The operator (default matcher strategy OnNamespace) renames each receiver
``<namespace>/<name>/<receiver>``, hangs the top route under the Alertmanager's root
with a ``namespace="<namespace>"`` matcher and ``continue: true``, and adds the
namespace matcher to both sides of every inhibition rule. amconfig.to_alertmanager
does the same; amtool then routes every alert through the result.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from genonaut_monitoring import alerts, builder, config
from genonaut_monitoring.kubernetes import amconfig, core, schemas
from tests.conftest import require_tool
from tests.test_kubernetes import kubectl

CFG = config.CONFIG
NAMESPACE = CFG.kubernetes.namespace
ALERTS = {a.name: a.severity for a in alerts.all_alerts(CFG)}


@functools.cache
def outputs() -> tuple[dict[str, Any], dict[str, Any]]:
    """alertmanager.yml of the files target and the Kubernetes target's AlertmanagerConfig."""
    files = builder.render(CFG, "files")
    k8s = builder.render(CFG, "kubernetes")
    return (
        schemas.load_yaml(files["alertmanager/alertmanager.yml"]),
        schemas.load_yaml(k8s["alertmanager/genonaut.yaml"]),
    )


def amtool_receivers(config_file: Path, labels: dict[str, str], verify: str) -> str:
    """The receivers amtool routes ``labels`` to, verified against ``verify``."""
    result = subprocess.run(
        [
            require_tool("amtool"), "config", "routes", "test", f"--config.file={config_file}",
            f"--verify.receivers={verify}", *(f"{k}={v}" for k, v in sorted(labels.items())),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{labels} -> {verify}:\n{result.stdout}{result.stderr}"
    return result.stdout.strip()


def write_yaml(path: Path, data: Any) -> Path:
    from genonaut_monitoring.alerts.render import dump

    path.write_text(dump(data, sort_keys=False))
    return path


def merged(tmp_path: Path) -> Path:
    resource = outputs()[1]
    meta = resource["metadata"]
    data = amconfig.to_alertmanager(resource["spec"], meta["namespace"], meta["name"])
    return write_yaml(tmp_path / "merged.yml", data)


def file_receivers(tmp_path: Path, labels: dict[str, str]) -> list[str]:
    path = write_yaml(tmp_path / "alertmanager.yml", {**outputs()[0], "templates": []})
    result = subprocess.run(
        [require_tool("amtool"), "config", "routes", "test", f"--config.file={path}",
         *(f"{k}={v}" for k, v in sorted(labels.items()))],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip().split(",")


@pytest.mark.parametrize("name", [*sorted(ALERTS), "SomethingNew"])
def test_every_alert_reaches_the_same_receivers_through_the_operator(
    name: str, tmp_path: Path
) -> None:
    labels = {
        "alertname": name,
        "severity": ALERTS.get(name, "page-me"),
        "job": CFG.jobs[0],
        "instance": "10.0.0.1:8000",
    }
    expected = file_receivers(tmp_path, labels)
    namespaced = ",".join(f"{NAMESPACE}/genonaut/{r}" for r in expected)
    routed = amtool_receivers(merged(tmp_path), {**labels, "namespace": NAMESPACE}, namespaced)
    assert routed == namespaced


def test_an_alert_without_the_namespace_label_stays_at_the_alertmanagers_root(
    tmp_path: Path,
) -> None:
    """Why every PrometheusRule alert carries namespace=<Kubernetes.namespace>."""
    labels = {"alertname": "ApiHighErrorRate", "severity": "critical", "job": CFG.jobs[0]}
    assert amtool_receivers(merged(tmp_path), labels, amconfig.ROOT_RECEIVER) == "null"
    other = {**labels, "namespace": "somewhere-else"}
    assert amtool_receivers(merged(tmp_path), other, amconfig.ROOT_RECEIVER) == "null"


def test_routes_and_inhibitions_convert_back_to_alertmanager_yml_unchanged() -> None:
    file, resource = outputs()
    back = amconfig.to_alertmanager(
        resource["spec"], NAMESPACE, "genonaut", file["templates"], operator=False
    )
    assert back["route"] == file["route"]
    assert back["inhibit_rules"] == file["inhibit_rules"]
    assert back["templates"] == file["templates"]


def test_receivers_match_alertmanager_yml_with_secrets_from_kubernetes_secrets() -> None:
    file, resource = outputs()
    back = amconfig.to_alertmanager(resource["spec"], NAMESPACE, "genonaut", operator=False)
    k8s = CFG.kubernetes
    smtp = {
        key.removeprefix("smtp_"): value
        for key, value in file["global"].items()
        if key.startswith("smtp_")
    }
    expected = []
    for receiver in file["receivers"]:
        receiver = dict(receiver)
        if "slack_configs" in receiver:
            (slack,) = receiver["slack_configs"]
            secret = {"name": k8s.slack_webhook.name, "key": k8s.slack_webhook.key}
            receiver["slack_configs"] = [{**slack, "api_url_file": amconfig.secret_path(secret)}]
        if "email_configs" in receiver:
            receiver["email_configs"] = [{**smtp, **e} for e in receiver["email_configs"]]
        expected.append(receiver)
    assert back["receivers"] == expected
    (slack,) = resource["spec"]["receivers"][0]["slackConfigs"]
    assert slack["apiURL"] == {"name": k8s.slack_webhook.name, "key": k8s.slack_webhook.key}


def test_smtp_credentials_come_from_a_secret_never_inline(tmp_path: Path) -> None:
    cfg = replace(
        CFG,
        notifications=replace(
            CFG.notifications,
            smtp_auth_username="alerts",
            smtp_password_file="/run/secrets/smtp_password",
        ),
    )
    files = builder.render(cfg, "kubernetes")
    text = files["alertmanager/genonaut.yaml"].decode()
    resource = schemas.load_yaml(text)
    (email,) = resource["spec"]["receivers"][1]["emailConfigs"]
    ref = cfg.kubernetes.smtp_password
    assert email["authUsername"] == "alerts"
    assert email["authPassword"] == {"name": ref.name, "key": ref.key}
    assert "/run/secrets/smtp_password" not in text  # the host's file means nothing here
    assert amconfig.secret_refs(resource["spec"]) == {
        "genonaut-alertmanager": sorted([ref.key, cfg.kubernetes.slack_webhook.key])
    }
    out = tmp_path / "out"
    builder.build(cfg, out, "kubernetes")  # amtool accepts the merged config


def test_the_secret_kubectl_creates_has_the_keys_the_alertmanager_config_reads(
    tmp_path: Path,
) -> None:
    """The README's ``kubectl create secret`` command makes a Secret of Kubernetes' shape."""
    refs = amconfig.secret_refs(outputs()[1]["spec"])
    ((name, keys),) = refs.items()
    args = []
    for key in keys:
        value = tmp_path / key
        value.write_text("https://hooks.slack.example/services/T/B/X")
        args.append(f"--from-file={key}={value}")
    result = subprocess.run(
        [kubectl(), "create", "secret", "generic", name, "-n", NAMESPACE, *args,
         "--dry-run=client", "-o", "yaml"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    secret = schemas.load_yaml(result.stdout)
    assert schemas.validate_resource(secret) == []
    assert sorted(secret["data"]) == keys
    # The shape is strict: a misspelt field of a Secret is refused too.
    assert schemas.validate_resource({**secret, "stringdata": {}}) == [
        "(top level): Additional properties are not allowed ('stringdata' was unexpected)"
    ]
    assert core.SECRET["properties"]["metadata"] is core.OBJECT_META
