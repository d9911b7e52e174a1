"""Past one Prometheus: remote_write to a store, and the rule files in that store's ruler.

Prometheus' own remote-write receiver (``--web.enable-remote-write-receiver``) speaks
the protocol Mimir, Cortex and Thanos Receive take; here it is the store, and its rule
evaluation stands in for their rulers, loading the project's rule files unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from genonaut_monitoring import alerts, builder, config
from genonaut_monitoring.processes import Process, find_binary, free_port
from tests.conftest import require_tool

CFG = config.CONFIG


def with_remote_write(*stores: config.RemoteWrite, cfg: config.Config = CFG) -> config.Config:
    return replace(cfg, remote_write=stores)


def prometheus_yml(cfg: config.Config) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(builder.render(cfg)["prometheus/prometheus.yml"])
    return data


def test_no_remote_write_unless_configured() -> None:
    assert "remote_write" not in prometheus_yml(CFG)


def test_remote_write_settings_reach_prometheus_yml_and_pass_promtool(tmp_path: Path) -> None:
    cfg = with_remote_write(
        config.RemoteWrite(
            url="https://mimir.example.com/api/v1/push",
            username="genonaut",
            password_file="/run/secrets/mimir_password",
            headers={"X-Scope-OrgID": "genonaut"},
        ),
        config.RemoteWrite(
            url="https://thanos-receive.example.com/api/v1/receive",
            bearer_token_file="/run/secrets/thanos_token",
        ),
    )
    assert prometheus_yml(cfg)["remote_write"] == [
        {
            "url": "https://mimir.example.com/api/v1/push",
            "headers": {"X-Scope-OrgID": "genonaut"},
            "basic_auth": {"username": "genonaut", "password_file": "/run/secrets/mimir_password"},
        },
        {
            "url": "https://thanos-receive.example.com/api/v1/receive",
            "authorization": {"type": "Bearer", "credentials_file": "/run/secrets/thanos_token"},
        },
    ]
    require_tool("promtool")
    builder.build(cfg, tmp_path / "out")  # promtool check config passes


@pytest.mark.parametrize(
    ("store", "problem"),
    [
        (
            config.RemoteWrite(url="https://m.example/push", username="u"),
            "config.remote_write[0] (https://m.example/push): basic auth needs both username "
            "and password_file",
        ),
        (
            config.RemoteWrite(
                url="https://m.example/push",
                username="u",
                password_file="/p",
                bearer_token_file="/t",
            ),
            "set password_file (basic auth) or bearer_token_file, not both",
        ),
        # promtool's own check: credentials belong in files, never in a header.
        (
            config.RemoteWrite(url="https://m.example/push", headers={"Authorization": "x"}),
            "authorization header must be changed via the basic_auth",
        ),
    ],
    ids=["username-alone", "two-credentials", "authorization-header"],
)
def test_remote_write_that_cannot_work_fails_the_build(
    store: config.RemoteWrite, problem: str, tmp_path: Path
) -> None:
    require_tool("promtool")
    with pytest.raises(builder.BuildError) as caught:
        builder.build(with_remote_write(store), tmp_path / "out")
    assert [p for p in caught.value.problems if problem in p], caught.value.problems


def test_remote_write_from_a_config_file(tmp_path: Path) -> None:
    from genonaut_monitoring import settings

    path = tmp_path / "monitoring.toml"
    path.write_text(
        "[[remote_write]]\n"
        'url = "https://mimir.example.com/api/v1/push"\n'
        'bearer_token_file = "/run/secrets/token"\n'
        'headers = { "X-Scope-OrgID" = "team-a" }\n'
        "[[remote_write]]\n"
        'url = "mimir:9009"\n'
        'password_file = "secrets/pw"\n'
    )
    with pytest.raises(settings.SettingsError) as caught:
        settings.load(path)
    assert caught.value.problems == [
        f"{path}: remote_write[1].url: 'mimir:9009' is not an http:// or https:// URL",
        f"{path}: remote_write[1].password_file: 'secrets/pw' is not an absolute path such "
        "as /run/secrets/token",
    ]
    path.write_text(path.read_text().split('[[remote_write]]\nurl = "mimir')[0])
    (store,) = settings.load(path).remote_write
    assert store == config.RemoteWrite(
        url="https://mimir.example.com/api/v1/push",
        bearer_token_file="/run/secrets/token",
        headers={"X-Scope-OrgID": "team-a"},
    )


# Keys of Prometheus' rule file format (prometheus/model/rulefmt) that these files use,
# all of which Mimir's mimirtool (pkg/mimirtool/rules: the Prometheus format plus an
# optional `namespace`, parsed with unknown keys refused) and Thanos Ruler (the Prometheus
# format plus partial_response_strategy) read as Prometheus does.
RULE_FILE_KEYS = {"groups"}
GROUP_KEYS = {"name", "interval", "rules"}
RULE_KEYS = {"record", "alert", "expr", "for", "labels", "annotations"}


def test_rule_files_are_plain_prometheus_rule_files_a_ruler_loads() -> None:
    for path, content in alerts.rule_outputs(CFG, alerts.dashboard_panel_ids(CFG)).items():
        data = yaml.safe_load(content)
        assert set(data) <= RULE_FILE_KEYS, path
        for group in data["groups"]:
            assert set(group) <= GROUP_KEYS, path
            for rule in group["rules"]:
                assert set(rule) <= RULE_KEYS, (path, rule)
    # One group name per file, unique across files: a ruler namespace per file never clashes.
    names = [g.name for g in alerts.groups(CFG)]
    assert len(names) == len(set(names))


def _query(url: str, expr: str) -> list[dict[str, Any]]:
    import requests

    response = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5)
    response.raise_for_status()
    return list(response.json()["data"]["result"])


def _wait(what: str, check: Any, timeout: float = 90) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f}s for {what}")
        time.sleep(0.5)


def _start_prometheus(
    name: str, workdir: Path, config_file: Path, *extra: str
) -> tuple[Process, str]:
    port = free_port()
    process = Process(
        name,
        [
            find_binary("prometheus"),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / f'{name}-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
            *extra,
        ],
        workdir / "logs" / f"{name}.log",
        {},
        workdir,
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    import requests

    def ready() -> bool:
        assert process.alive(), f"{name} exited: {process.tail()}"
        try:
            return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    _wait(f"{name} to start", ready, 30)
    return process, url


@pytest.mark.e2e
@pytest.mark.slow
def test_a_remote_write_store_gets_the_series_and_its_ruler_fires_the_alerts(
    tmp_path: Path,
) -> None:
    """prometheus.yml as built, sending to a store that evaluates the rule files as built.

    The sending Prometheus runs the generated prometheus.yml with no rule files beside it
    (the rules live in the store's ruler, so each is evaluated once); the store loads the
    generated rule files byte for byte and fires ApiHighErrorRate from remote-written data.
    """
    require_tool("prometheus")
    from genonaut_monitoring.alerts import recording
    from tests.live_prometheus import LiveTarget

    store_dir, sender_dir = tmp_path / "store", tmp_path / "sender"
    (store_dir / "rules").mkdir(parents=True)
    sender_dir.mkdir()
    test_cfg = config.TEST_CONFIG
    processes: list[Process] = []
    with LiveTarget() as target:
        try:
            rules = alerts.rule_outputs(test_cfg, alerts.dashboard_panel_ids(test_cfg))
            for relative, content in rules.items():
                (store_dir / "rules" / Path(relative).name).write_bytes(content)
            (store_dir / "prometheus.yml").write_text(
                yaml.safe_dump(
                    {
                        "global": {"evaluation_interval": test_cfg.intervals.evaluation_interval},
                        "rule_files": ["rules/*.yml"],
                    }
                )
            )
            store, store_url = _start_prometheus(
                "store", store_dir, store_dir / "prometheus.yml",
                "--web.enable-remote-write-receiver",
            )  # fmt: skip
            processes.append(store)
            cfg = replace(
                test_cfg,
                services=(replace(test_cfg.services[0], targets=(target.address,)),),
                remote_write=(
                    config.RemoteWrite(
                        url=f"{store_url}/api/v1/write", headers={"X-Scope-OrgID": "genonaut"}
                    ),
                ),
            )
            built = builder.render(cfg)["prometheus/prometheus.yml"]
            (sender_dir / "prometheus.yml").write_bytes(built)
            sender, _ = _start_prometheus("sender", sender_dir, sender_dir / "prometheus.yml")
            processes.append(sender)
            job = cfg.jobs[0]
            raw = _wait(
                "remote-written series in the store",
                lambda: _query(store_url, f'http_requests_total{{job="{job}"}}'),
            )
            assert raw[0]["metric"]["instance"] == target.address
            error_ratio = f'{recording.http_error_ratio(cfg)}{{job="{job}"}}'
            ratio = _wait(
                "the store's ruler to record the error ratio",
                lambda: _query(store_url, error_ratio),
            )
            # LiveTarget answers one request in five with a 500.
            assert float(ratio[0]["value"][1]) == pytest.approx(0.2, abs=0.05)
            firing = _wait(
                "ApiHighErrorRate to fire in the store's ruler",
                lambda: _query(
                    store_url, 'ALERTS{alertname="ApiHighErrorRate", alertstate="firing"}'
                ),
            )
            assert firing[0]["metric"]["job"] == job
        finally:
            for process in reversed(processes):
                process.stop()
