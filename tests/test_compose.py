"""docker-compose.yml, without a Docker engine: valid, pinned, loopback-only, and in
agreement with the configs that ``build.py --profile compose`` generates."""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from genonaut_monitoring import builder as build
from genonaut_monitoring import config, pgexporter
from genonaut_monitoring.exporters import external
from tests.conftest import ROOT, require_tool

COMPOSE_FILE = ROOT / "docker-compose.yml"
# Stand-ins for the values a developer puts in .env; never real secrets.
ENV = {
    "GRAFANA_ADMIN_PASSWORD": "grafana-test-password",
    "POSTGRES_PASSWORD": "postgrestestpassword",
    "POSTGRES_MONITOR_PASSWORD": "monitortestpassword",
    "SLACK_WEBHOOK_URL": "http://slack.invalid/services/T0/B0/test",
}
REFUSING_SLACK_URL = "http://127.0.0.1:9/slack-webhook-not-configured"
# Host port (config.Ports) -> container port, per published service.
PUBLISHED = {
    "api": (config.CONFIG.ports.api, 8000),
    "prometheus": (config.CONFIG.ports.prometheus, 9090),
    "alertmanager": (config.CONFIG.ports.alertmanager, 9093),
    "grafana": (config.CONFIG.ports.grafana, 3000),
    "mailpit": (config.CONFIG.ports.mail_web, 8025),
}


@pytest.fixture(scope="module")
def compose_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real build of the compose profile, as `make build` writes to out-compose/."""
    out = tmp_path_factory.mktemp("compose") / "out-compose"
    build.build(config.COMPOSE_CONFIG, out)
    return out


def run_compose(
    tmp: Path, out: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """docker-compose on the repository's file, with only the given variables set."""
    tool = require_tool("docker-compose")
    # An empty env file, so a developer's own .env cannot change the outcome.
    env_file = tmp / "empty.env"
    env_file.write_text("")
    variables = {"PATH": os.environ["PATH"], "HOME": str(tmp), "GENONAUT_OUT": str(out)}
    variables.update(ENV if env is None else env)
    return subprocess.run(
        [tool, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        env=variables,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved(compose_out: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The compose file as docker-compose resolves it (variables filled in, paths absolute)."""
    result = run_compose(tmp_path_factory.mktemp("resolve"), compose_out, "config")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = yaml.safe_load(result.stdout)
    return data


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The compose file as written (variables not filled in)."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a resolved service's bind mounts."""
    return {
        volume["target"]: Path(volume["source"])
        for volume in service.get("volumes", [])
        if isinstance(volume, dict) and volume.get("type") == "bind"
    }


def host_path(service: dict[str, Any], container_path: str) -> Path | None:
    """Where a path inside the container lives on the host, through the service's binds."""
    path = PurePosixPath(container_path)
    for target, source in sorted(binds(service).items(), key=lambda kv: -len(kv[0])):
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source / path.relative_to(target)
    return None


def glob_in_container(service: dict[str, Any], pattern: str) -> list[Path]:
    """Host files that a glob inside the container matches, through the binds."""
    folder = host_path(service, str(PurePosixPath(pattern).parent))
    if folder is None or not folder.is_dir():
        return []
    name = PurePosixPath(pattern).name
    return sorted(p for p in folder.iterdir() if fnmatch.fnmatch(p.name, name))


def named_volumes(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> volume name of a resolved service's named volumes."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict) and volume.get("type") == "volume":
            found[volume["target"]] = volume["source"]
        elif isinstance(volume, str) and not volume.startswith(("/", ".")):
            name, target = volume.split(":")[:2]
            found[target] = name
    return found


def generated_yaml(out: Path, relative: str) -> Any:
    return yaml.safe_load((out / relative).read_text())


# --- the file is valid, and refuses to start without its secrets ---------------------------


def test_compose_file_is_valid_with_the_env_example_variables_set(
    compose_out: Path, tmp_path: Path
) -> None:
    result = run_compose(tmp_path, compose_out, "config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    "variable", ["GRAFANA_ADMIN_PASSWORD", "POSTGRES_PASSWORD", "POSTGRES_MONITOR_PASSWORD"]
)
def test_compose_refuses_to_start_without_a_required_password(
    variable: str, compose_out: Path, tmp_path: Path
) -> None:
    env = {name: value for name, value in ENV.items() if name != variable}
    result = run_compose(tmp_path, compose_out, "config", "-q", env=env)
    assert result.returncode != 0
    assert f"set {variable} in .env (see .env.example)" in result.stderr


def test_slack_webhook_url_is_optional(compose_out: Path, tmp_path: Path) -> None:
    env = {name: value for name, value in ENV.items() if name != "SLACK_WEBHOOK_URL"}
    result = run_compose(tmp_path, compose_out, "config", env=env)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["alertmanager"]["environment"]["SLACK_WEBHOOK_URL"] == ""
    assert services["grafana"]["environment"]["SLACK_WEBHOOK_URL"] == REFUSING_SLACK_URL


def test_env_example_names_every_variable_the_compose_file_reads(raw: dict[str, Any]) -> None:
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE_FILE.read_text()))
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z_][A-Z0-9_]*)=", example, flags=re.MULTILINE))
    assert (
        used
        == listed
        == {
            "GRAFANA_ADMIN_PASSWORD",
            "POSTGRES_PASSWORD",
            "POSTGRES_MONITOR_PASSWORD",
            "SLACK_WEBHOOK_URL",
            "DEMO_SEED_ROWS",
            "DEMO_FAULTS",
            "GENONAUT_OUT",
        }
    )
    # The example must not carry a password either: the stack refuses empty ones.
    for line in example.splitlines():
        if line.startswith(("GRAFANA_ADMIN_PASSWORD=", "POSTGRES_", "SLACK_WEBHOOK")):
            assert line.endswith("="), line


# --- the generated configs and the compose file agree ---------------------------------------


def test_every_bind_mounted_host_path_exists_after_a_build(
    resolved: dict[str, Any], compose_out: Path
) -> None:
    mounted = {
        (name, target): source
        for name, service in resolved["services"].items()
        for target, source in binds(service).items()
    }
    assert mounted == {
        ("postgres", "/docker-entrypoint-initdb.d"): compose_out / "postgres/initdb",
        ("postgres-exporter", "/etc/postgres-exporter"): compose_out / "postgres-exporter",
        ("prometheus", "/etc/prometheus"): compose_out / "prometheus",
        ("alertmanager", "/etc/alertmanager/alertmanager.yml"): compose_out
        / "alertmanager/alertmanager.yml",
        ("alertmanager", "/etc/alertmanager/templates"): compose_out / "alertmanager/templates",
        ("grafana", "/etc/grafana/provisioning/datasources"): compose_out
        / "grafana/provisioning/datasources",
        ("grafana", "/etc/grafana/provisioning/dashboards"): compose_out
        / "grafana/provisioning/dashboards",
        ("grafana", "/etc/grafana/provisioning/alerting"): compose_out
        / "grafana/provisioning/alerting",
        ("grafana", config.COMPOSE_CONFIG.grafana.dashboards_path): compose_out
        / "grafana/dashboards",
    }
    for (name, target), source in mounted.items():
        assert source.exists(), f"{name}: {source} (mounted at {target}) was not built"
        # A file is mounted over a file, a folder over a folder.
        assert source.is_file() == target.endswith((".yml", ".yaml")), (name, target)
    for name, service in resolved["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict) and volume.get("type") == "bind":
                assert volume.get("read_only") is True, f"{name}: {volume['target']} is writable"


def test_prometheus_rule_files_and_targets_resolve_inside_the_stack(
    resolved: dict[str, Any], compose_out: Path
) -> None:
    services = resolved["services"]
    prometheus = services["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config_path = host_path(prometheus, "/etc/prometheus/prometheus.yml")
    assert config_path == compose_out / "prometheus/prometheus.yml"
    generated = yaml.safe_load(config_path.read_text())
    assert generated["rule_files"], "prometheus.yml lists no rule files"
    for pattern in generated["rule_files"]:
        # Relative rule_files are resolved against the config file's folder.
        in_container = str(PurePosixPath("/etc/prometheus") / pattern)
        matched = glob_in_container(prometheus, in_container)
        assert matched, f"rule_files entry {pattern!r} matches nothing inside the container"
    built_rules = sorted((compose_out / "prometheus").rglob("*.yml"))
    assert all(
        any(r in glob_in_container(prometheus, str(PurePosixPath("/etc/prometheus") / p))
            for p in generated["rule_files"])
        for r in built_rules if r.name != "prometheus.yml"
    ), "a generated rule file is not loaded by prometheus.yml"  # fmt: skip

    alertmanagers = [
        target
        for am in generated["alerting"]["alertmanagers"]
        for static in am["static_configs"]
        for target in static["targets"]
    ]
    assert alertmanagers == ["alertmanager:9093"]
    api_targets = [
        target
        for job in generated["scrape_configs"]
        if job["job_name"] == config.CONFIG.jobs[0]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert api_targets == ["api:8000"]
    postgres_targets = [
        target
        for job in generated["scrape_configs"]
        if job["job_name"] == config.COMPOSE_CONFIG.postgres.job
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert postgres_targets == ["postgres-exporter:9187"]
    for target in [*alertmanagers, *api_targets, *postgres_targets]:
        host, port = target.split(":")
        assert host in services, f"{target}: no compose service {host!r}"
        assert f"http://127.0.0.1:{port}/" in " ".join(services[host]["healthcheck"]["test"])


def test_alertmanager_templates_and_secret_files_exist_inside_the_container(
    resolved: dict[str, Any], compose_out: Path
) -> None:
    alertmanager = resolved["services"]["alertmanager"]
    script = alertmanager["command"][0]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in script
    generated = generated_yaml(compose_out, "alertmanager/alertmanager.yml")
    assert generated["templates"]
    for pattern in generated["templates"]:
        in_container = str(PurePosixPath("/etc/alertmanager") / pattern)
        assert glob_in_container(alertmanager, in_container), f"templates {pattern!r}: no match"

    files = [
        value
        for receiver in generated["receivers"]
        for kind, configs in receiver.items()
        if kind.endswith("_configs")
        for cfg in configs
        for key, value in cfg.items()
        if key.endswith("_file")
    ]
    assert files == [config.COMPOSE_CONFIG.notifications.slack_api_url_file]
    for path in files:
        # Written at start by the entrypoint, on a tmpfs the service declares.
        assert str(PurePosixPath(path).parent) in alertmanager["tmpfs"]
        assert f"> {path}" in script

    assert generated["global"]["smtp_smarthost"] == "mailpit:1025"
    assert "mailpit" in resolved["services"]


def test_alertmanager_entrypoint_writes_the_webhook_url_to_the_secret_file(
    resolved: dict[str, Any], tmp_path: Path
) -> None:
    """The real entrypoint script, run by sh with its paths moved into tmp_path."""
    script = resolved["services"]["alertmanager"]["command"][0].replace("$$", "$")
    secrets = PurePosixPath(config.COMPOSE_CONFIG.notifications.slack_api_url_file).parent
    script = script.replace(str(secrets), str(tmp_path)).replace("/bin/alertmanager", "echo")
    secret = tmp_path / "slack_webhook_url"

    def run(url: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"], "SLACK_WEBHOOK_URL": url}
        return subprocess.run(
            ["/bin/sh", "-c", script], capture_output=True, text=True, env=env, check=True
        )

    result = run(ENV["SLACK_WEBHOOK_URL"])
    assert secret.read_text() == ENV["SLACK_WEBHOOK_URL"] + "\n"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert result.stdout.split() == [
        "--config.file=/etc/alertmanager/alertmanager.yml",
        "--storage.path=/alertmanager",
        f"--web.external-url={config.COMPOSE_CONFIG.notifications.alertmanager_external_url}",
        "--cluster.listen-address=",
    ]
    result = run("")
    assert secret.read_text() == REFUSING_SLACK_URL + "\n"
    assert "SLACK_WEBHOOK_URL is not set" in result.stdout


def test_grafana_mounts_match_the_generated_provisioning(
    resolved: dict[str, Any], compose_out: Path
) -> None:
    services = resolved["services"]
    grafana = services["grafana"]
    provider = generated_yaml(compose_out, "grafana/provisioning/dashboards/dashboards.yaml")
    paths = [p["options"]["path"] for p in provider["providers"]]
    assert paths == [config.COMPOSE_CONFIG.grafana.dashboards_path]
    dashboards = host_path(grafana, paths[0])
    assert dashboards == compose_out / "grafana/dashboards"
    uids = sorted(config.COMPOSE_CONFIG.grafana.dashboard_uids.values())
    assert sorted(p.stem for p in dashboards.glob("*.json")) == uids

    sources = generated_yaml(compose_out, "grafana/provisioning/datasources/datasources.yaml")
    for source in sources["datasources"]:
        match = re.fullmatch(r"http://([a-z-]+):(\d+)", source["url"])
        assert match, source["url"]
        host, port = match.groups()
        assert host in services, f"datasource {source['name']}: no service {host!r}"
        assert f"http://127.0.0.1:{port}/" in " ".join(services[host]["healthcheck"]["test"])

    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == ENV["GRAFANA_ADMIN_PASSWORD"]
    assert env["GF_SERVER_ROOT_URL"] == config.COMPOSE_CONFIG.grafana.url
    assert env["GF_SMTP_ENABLED"] == "true"
    assert env["GF_SMTP_HOST"] == "mailpit:1025"
    assert env["SLACK_WEBHOOK_URL"] == ENV["SLACK_WEBHOOK_URL"]
    # Every $__env{...} the alerting provisioning reads is set on the container.
    alerting = "".join(
        p.read_text() for p in sorted((compose_out / "grafana/provisioning/alerting").iterdir())
    )
    assert set(re.findall(r"\$__env\{(\w+)\}", alerting)) <= set(env)


def test_compose_profile_differs_from_the_default_only_in_addresses() -> None:
    compose = config.profile("compose")
    assert compose is config.COMPOSE_CONFIG
    expected = replace(
        config.CONFIG,
        profile="compose",
        services=(replace(config.CONFIG.services[0], targets=("api:8000",)),),
        targets=replace(config.CONFIG.targets, alertmanager=("alertmanager:9093",)),
        postgres=replace(config.CONFIG.postgres, targets=("postgres-exporter:9187",)),
        notifications=replace(config.CONFIG.notifications, smarthost="mailpit:1025"),
    )
    assert compose == expected


# --- house rules: pinned, loopback, healthy, no secrets -------------------------------------


def test_every_image_is_pinned_to_a_version(raw: dict[str, Any]) -> None:
    images = {name: service.get("image", "") for name, service in raw["services"].items()}
    assert images == {
        "api": "genonaut-monitoring-demo:0.1.0",
        "postgres": "postgres:15.13",
        # The release the metric fixture was recorded from (exporters/postgres_exporter.json).
        "postgres-exporter": (
            f"quay.io/prometheuscommunity/postgres-exporter:v{external.load('postgres_exporter')['version']}"
        ),
        "prometheus": "prom/prometheus:v2.53.4",
        "alertmanager": "prom/alertmanager:v0.25.0",
        "grafana": "grafana/grafana:11.6.0",
        "mailpit": "axllent/mailpit:v1.21.8",
    }
    assert raw["services"]["api"]["build"] == "."
    base = re.search(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11\.\d+-slim", base.group(1))


def test_ports_are_published_on_loopback_at_the_configured_host_ports(
    raw: dict[str, Any],
) -> None:
    published = {
        name: service["ports"] for name, service in raw["services"].items() if "ports" in service
    }
    assert published == {
        name: [f"127.0.0.1:{host}:{container}"] for name, (host, container) in PUBLISHED.items()
    }


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(
    raw: dict[str, Any],
) -> None:
    services = raw["services"]
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
    depends = {
        name: {dep: spec["condition"] for dep, spec in service.get("depends_on", {}).items()}
        for name, service in services.items()
    }
    assert depends == {
        "api": {"postgres": "service_healthy"},
        "postgres": {},
        "postgres-exporter": {"postgres": "service_healthy"},
        "prometheus": {"alertmanager": "service_healthy"},
        "alertmanager": {"mailpit": "service_healthy"},
        "grafana": {
            "prometheus": "service_healthy",
            "alertmanager": "service_healthy",
            "mailpit": "service_healthy",
        },
        "mailpit": {},
    }
    api_check = " ".join(services["api"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/health" in api_check


def test_state_lives_in_named_volumes(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    state = {name: named_volumes(service) for name, service in services.items()}
    assert {name: v for name, v in state.items() if v} == {
        "postgres": {"/var/lib/postgresql/data": "postgres-data"},
        "prometheus": {"/prometheus": "prometheus-data"},
        "alertmanager": {"/alertmanager": "alertmanager-data"},
        "grafana": {"/var/lib/grafana": "grafana-data"},
    }
    assert sorted(resolved["volumes"]) == sorted(
        name for volumes in state.values() for name in volumes.values()
    )
    assert "--storage.tsdb.path=/prometheus" in services["prometheus"]["command"]
    assert "--storage.path=/alertmanager" in services["alertmanager"]["command"][0]


def test_the_api_reaches_postgres_with_the_password_from_env(resolved: dict[str, Any]) -> None:
    api = resolved["services"]["api"]["environment"]
    postgres = resolved["services"]["postgres"]["environment"]
    password = ENV["POSTGRES_PASSWORD"]
    assert postgres["POSTGRES_PASSWORD"] == password
    assert api["DATABASE_URL"] == (
        f"postgresql+psycopg2://{postgres['POSTGRES_USER']}:{password}"
        f"@postgres:5432/{postgres['POSTGRES_DB']}"
    )
    assert api["LOG_FORMAT"] == "json"


def test_the_exporter_logs_in_as_the_monitoring_role_from_env(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    exporter = services["postgres-exporter"]["environment"]
    postgres = services["postgres"]["environment"]
    assert exporter == {
        "DATA_SOURCE_URI": f"postgres:5432/{postgres['POSTGRES_DB']}?sslmode=disable",
        "DATA_SOURCE_USER": config.COMPOSE_CONFIG.postgres.monitor_role,
        "DATA_SOURCE_PASS": ENV["POSTGRES_MONITOR_PASSWORD"],
    }
    # The init script that creates the role reads the same password.
    assert postgres["POSTGRES_MONITOR_PASSWORD"] == ENV["POSTGRES_MONITOR_PASSWORD"]


def test_postgres_loads_what_the_exporter_queries_and_runs_the_role_script(
    resolved: dict[str, Any], compose_out: Path
) -> None:
    services = resolved["services"]
    command = services["postgres"]["command"]
    assert command[0] == "postgres"
    settings = dict(arg.split("=", 1) for arg in command[2::2])
    assert command[1::2] == ["-c"] * len(settings)
    assert settings == pgexporter.SERVER_SETTINGS
    (script,) = glob_in_container(services["postgres"], "/docker-entrypoint-initdb.d/*.sh")
    assert script.read_text() == pgexporter.init_script(config.COMPOSE_CONFIG)
    # The exporter reads the query file that includes pg_stat_statements.
    exporter = services["postgres-exporter"]
    (flag,) = [arg for arg in exporter["command"] if arg.startswith("--extend.query-path=")]
    queries = host_path(exporter, flag.split("=", 1)[1])
    assert queries == compose_out / pgexporter.QUERIES_WITH_STATEMENTS
    assert "pg_stat_statements" in yaml.safe_load(queries.read_text())


def _secret_like(environment: dict[str, str]) -> Iterator[tuple[str, str]]:
    for name, value in environment.items():
        if re.search(r"PASSWORD|SECRET|TOKEN|WEBHOOK|DATABASE_URL|DATA_SOURCE_PASS", name):
            yield name, str(value)


def test_no_secret_value_is_written_in_the_compose_file(raw: dict[str, Any]) -> None:
    for name, service in raw["services"].items():
        for variable, value in _secret_like(service.get("environment", {})):
            references = re.findall(r"\$\{([A-Z_]+)(:[?-][^}]*)?\}", value)
            assert references, f"{name}: {variable} is written in the file: {value!r}"
            for reference, default in references:
                # Required secrets carry no default; the Slack URL defaults to nothing
                # or to the address that refuses, never to a real hook.
                assert default.startswith(":?") or default in (":-", f":-{REFUSING_SLACK_URL}"), (
                    f"{name}: {variable} defaults {reference} to {default!r}"
                )
    text = COMPOSE_FILE.read_text()
    assert "hooks.slack.com" not in text
    for value in ENV.values():
        assert value not in text


def test_generated_configs_hold_no_secret(compose_out: Path, tmp_path: Path) -> None:
    for path in sorted(p for p in compose_out.rglob("*") if p.is_file()):
        text = path.read_text()
        assert "hooks.slack.com" not in text, path
        for value in ENV.values():
            assert value not in text, path


# --- the API image --------------------------------------------------------------------------


def test_dockerfile_runs_the_demo_api_as_a_non_root_user_with_the_postgres_extra() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = [
        line.split(None, 1)
        for line in re.sub(r"\\\n\s*", " ", text).splitlines()
        if line and not line.startswith((" ", "#"))
    ]
    by_name: dict[str, list[str]] = {}
    for name, rest in instructions:
        by_name.setdefault(name, []).append(rest)
    assert by_name["USER"] == ["genonaut"]
    assert any('pip install ".[demo,postgres]"' in run for run in by_name["RUN"])
    assert any("useradd" in run and "--uid 10001" in run for run in by_name["RUN"])
    cmd = yaml.safe_load(by_name["CMD"][-1])
    app = "genonaut_monitoring.exporters.demo:app"
    assert cmd[:6] == ["uvicorn", app, "--host", "0.0.0.0", "--port", "8000"]
    assert "/health" in by_name["HEALTHCHECK"][0]
    # Everything COPY needs exists and is not excluded by .dockerignore.
    ignore = (ROOT / ".dockerignore").read_text().split()
    for copy in by_name["COPY"]:
        for source in shlex.split(copy)[:-1]:
            assert (ROOT / source).exists(), source
            assert f"!{source.rstrip('/')}" in ignore, f".dockerignore excludes {source}"
