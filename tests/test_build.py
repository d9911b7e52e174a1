"""build.py: provisioning files, determinism, --check, promtool, the command line."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

import build
from genonaut_monitoring import builder, config, provision
from tests.conftest import require_tool

CFG = config.CONFIG


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A fresh build of the default profile."""
    target = tmp_path / "out"
    builder.build(CFG, target)
    return target


def load(out: Path, relative: str) -> dict:
    return yaml.safe_load((out / relative).read_text())


def test_datasources_have_the_fixed_uids(out: Path) -> None:
    data = load(out, "grafana/provisioning/datasources/datasources.yaml")
    assert data["apiVersion"] == 1
    prometheus, alertmanager = data["datasources"]
    assert prometheus == {
        "name": "Prometheus",
        "uid": "prometheus",
        "type": "prometheus",
        "access": "proxy",
        "url": "http://prometheus:9090",
        "isDefault": True,
        "editable": False,
        "jsonData": {
            "timeInterval": CFG.intervals.api_scrape_interval,
            "httpMethod": "POST",
            "prometheusType": "Prometheus",
            "manageAlerts": True,
        },
    }
    assert (alertmanager["uid"], alertmanager["type"], alertmanager["url"]) == (
        CFG.grafana.alertmanager_uid,
        "alertmanager",
        CFG.grafana.alertmanager_url,
    )
    assert alertmanager["jsonData"]["implementation"] == "prometheus"


def test_dashboard_provider_reads_the_mounted_folder(out: Path) -> None:
    (provider,) = load(out, "grafana/provisioning/dashboards/dashboards.yaml")["providers"]
    assert provider["type"] == "file"
    assert provider["folder"] == CFG.grafana.folder
    assert provider["options"] == {
        "path": "/var/lib/grafana/dashboards/genonaut",
        "foldersFromFilesStructure": False,
    }
    assert (provider["allowUiUpdates"], provider["disableDeletion"]) == (False, False)


def test_prometheus_yml(out: Path) -> None:
    data = load(out, "prometheus/prometheus.yml")
    assert data["global"] == {
        "scrape_interval": "15s",
        "scrape_timeout": "5s",
        "evaluation_interval": "15s",
    }
    assert data["rule_files"] == ["rules/*.yml"]
    assert data["alerting"] == {
        "alertmanagers": [{"static_configs": [{"targets": ["localhost:9093"]}]}]
    }
    api, postgres, own = data["scrape_configs"]
    assert api == {
        "job_name": "genonaut-api",
        "scrape_interval": "5s",
        "metrics_path": "/metrics",
        "static_configs": [{"targets": ["localhost:8000"]}],
    }
    # The exporter's address only: its connection string stays in its environment.
    assert postgres == {
        "job_name": CFG.postgres.job,
        "static_configs": [{"targets": list(CFG.postgres.targets)}],
    }
    assert own["job_name"] == "prometheus"


def test_without_postgres_targets_there_is_no_postgres_job_nor_alert(tmp_path: Path) -> None:
    from genonaut_monitoring import alerts

    cfg = replace(CFG, postgres=replace(CFG.postgres, targets=()))
    builder.build(cfg, tmp_path / "out")
    jobs = [
        job["job_name"]
        for job in load(tmp_path / "out", "prometheus/prometheus.yml")["scrape_configs"]
    ]
    assert CFG.postgres.job not in jobs
    assert not any(a.name.startswith("Postgres") for a in alerts.all_alerts(cfg))
    assert any(a.name.startswith("Postgres") for a in alerts.all_alerts(CFG))


def test_test_profile_uses_its_short_intervals(tmp_path: Path) -> None:
    assert build.main(["--out", str(tmp_path / "t"), "--profile", "test"]) == 0
    data = load(tmp_path / "t", "prometheus/prometheus.yml")
    assert data["global"]["evaluation_interval"] == "1s"
    assert data["scrape_configs"][0]["scrape_interval"] == "1s"
    datasources = load(tmp_path / "t", "grafana/provisioning/datasources/datasources.yaml")
    assert datasources["datasources"][0]["jsonData"]["timeInterval"] == "1s"


def test_promtool_accepts_prometheus_yml(out: Path) -> None:
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "config", str(out / "prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_build_refuses_a_config_promtool_rejects(tmp_path: Path) -> None:
    require_tool("promtool")
    out = tmp_path / "out"
    builder.build(CFG, out)
    before = builder.read_tree(out)
    # A scrape timeout longer than the API's scrape interval is invalid in Prometheus.
    cfg = replace(CFG, intervals=replace(CFG.intervals, scrape_timeout="30s"))
    with pytest.raises(builder.BuildError) as caught:
        builder.build(cfg, out)
    message = str(caught.value)
    assert "prometheus/prometheus.yml: promtool check config" in message
    assert "scrape timeout greater than scrape interval" in message
    assert builder.read_tree(out) == before


def test_a_template_with_an_undefined_value_fails_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "provisioning"
    for relative in provision.PROVISIONING_TEMPLATES:
        (templates / relative).parent.mkdir(parents=True, exist_ok=True)
        (templates / relative).write_text((provision.TEMPLATES / relative).read_text())
    (templates / "grafana/dashboards.yaml.j2").write_text("folder: {{ grafana.no_such_key }}\n")
    monkeypatch.setattr(provision, "TEMPLATES", templates)
    with pytest.raises(builder.BuildError) as caught:
        provision.outputs(CFG)
    assert caught.value.problems == [
        "provisioning/grafana/dashboards.yaml.j2: UndefinedError: "
        "'genonaut_monitoring.config.Grafana object' has no attribute 'no_such_key'"
    ]


def test_rebuilding_is_byte_identical(tmp_path: Path) -> None:
    first = builder.build(CFG, tmp_path / "a")
    second = builder.build(CFG, tmp_path / "b")
    assert first == second
    assert builder.read_tree(tmp_path / "a") == builder.read_tree(tmp_path / "b") == first


def test_output_is_readable_by_other_users_like_grafanas_container(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        builder.build(config.CONFIG, tmp_path / "out")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
    dashboard = next((tmp_path / "out" / "grafana" / "dashboards").glob("*.json"))
    assert stat.S_IMODE(dashboard.stat().st_mode) == 0o644


def test_json_is_sorted_indented_and_ends_with_a_newline(out: Path) -> None:
    files = sorted((out / "grafana/dashboards").glob("*.json"))
    uids = config.CONFIG.grafana.dashboard_uids.values()
    assert [f.name for f in files] == sorted(f"{uid}.json" for uid in uids)
    for path in files:
        text = path.read_text()
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_check_passes_when_up_to_date_and_names_drift(
    out: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert build.main(["--out", str(out), "--check"]) == 0
    assert capsys.readouterr().out == f"{out} is up to date\n"

    main_json = out / "grafana/dashboards/genonaut-main.json"
    main_json.write_text(main_json.read_text().replace('"10s"', '"1m"'))
    (out / "prometheus/prometheus.yml").unlink()
    (out / "stray.txt").write_text("left over\n")
    assert build.main(["--out", str(out), "--check"]) == 1
    assert capsys.readouterr().err == (
        f"{out} is out of date; run `python build.py`:\n"
        "  differs: grafana/dashboards/genonaut-main.json\n"
        "  missing: prometheus/prometheus.yml\n"
        "  not generated by this build: stray.txt\n"
    )


def test_summary_line_counts_what_was_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert build.main(["--out", str(out)]) == 0
    line = capsys.readouterr().out
    match = re.fullmatch(r"wrote (\d+) files to (.+) \((.+)\)\n", line)
    assert match, line
    files = builder.read_tree(out)
    assert int(match[1]) == len(files)
    assert match[2] == str(out)
    counts = {name: int(n) for n, name in (part.split(" ", 1) for part in match[3].split(", "))}
    tops = {name: sum(1 for p in files if p.split("/")[0] == name) for name in counts}
    assert counts == tops
    assert set(counts) == {path.split("/")[0] for path in files}
    assert tops["grafana"] >= 5 and tops["prometheus"] >= 1


def test_failed_build_prints_the_problems_and_keeps_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from genonaut_monitoring.dashboards import main

    out = tmp_path / "out"
    builder.build(CFG, out)
    before = builder.read_tree(out)

    original = main.request_rate

    def broken(cfg: config.Config) -> object:
        panel = original(cfg)
        panel.targets[0].expr = panel.targets[0].expr.replace("http_requests_total", "nope")
        return panel

    monkeypatch.setattr(main, "request_rate", broken)
    assert build.main(["--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"build failed; {out} was left as it was:\n")
    assert (
        "  dashboard 'genonaut-main' (genonaut-main.json), panel 'Request rate by route': "
        "expression 'sum by (route) (rate(nope{" in err
    )
    assert "metric 'nope' is not in the catalogue" in err
    assert builder.read_tree(out) == before


def test_help_lists_the_options() -> None:
    result = subprocess.run(
        [sys.executable, build.__file__, "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: build.py [-h] [--out OUT] [--config FILE]")
    for option in ("--out", "--config", "--profile", "--check", "--target"):
        assert option in result.stdout


# Runs build.py as __main__ (as `python build.py` does) with a broken panel: the
# BuildError raised inside the dashboards part must reach main()'s handler.
_SCRIPT = """
import runpy, sys
sys.path.insert(0, {root!r})
from genonaut_monitoring.dashboards import main

original = main.memory

def broken(cfg):
    panel = original(cfg)
    panel.targets[0].expr = "rate(nope_total[$__rate_interval])"
    return panel

main.memory = broken
sys.argv = ["build.py", "--out", {out!r}]
runpy.run_path({script!r}, run_name="__main__")
"""


def test_running_as_a_script_reports_problems_without_a_traceback(tmp_path: Path) -> None:
    script = _SCRIPT.format(
        root=str(Path(build.__file__).parent), out=str(tmp_path / "o"), script=build.__file__
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "panel 'Process memory (RSS)': expression 'rate(nope_total[$__rate_interval])': "
        "metric 'nope_total' is not in the catalogue"
    ) in result.stderr
    assert not (tmp_path / "o").exists()
