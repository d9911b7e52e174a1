"""An adopter's TOML config: every key overridable, every mistake named before anything is built."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

import build
from genonaut_monitoring import builder, config, settings
from genonaut_monitoring.config import Config, Service

EXAMPLE = """\
[[services]]
name = "genonaut-api"          # the Prometheus job
targets = ["localhost:8001"]
[[services]]
name = "genonaut-worker"
targets = ["localhost:8002"]
[thresholds]
error_ratio = 0.02
"""


def load_text(tmp_path: Path, text: str, profile: str = "default") -> Config:
    path = tmp_path / "monitoring.toml"
    path.write_text(text)
    return settings.load(path, profile)


def problems_of(tmp_path: Path, text: str, profile: str = "default") -> list[str]:
    with pytest.raises(settings.SettingsError) as caught:
        load_text(tmp_path, text, profile)
    prefix = f"{tmp_path / 'monitoring.toml'}: "
    assert all(p.startswith(prefix) for p in caught.value.problems), caught.value.problems
    return [p.removeprefix(prefix) for p in caught.value.problems]


def test_the_readme_example_overrides_services_and_one_threshold(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, EXAMPLE)
    assert cfg.services == (
        Service("genonaut-api", ("localhost:8001",)),
        Service("genonaut-worker", ("localhost:8002",)),
    )
    assert cfg.jobs == ("genonaut-api", "genonaut-worker")
    assert cfg.thresholds.error_ratio == 0.02
    # Everything else is the shipped default.
    expected = dataclasses.replace(
        config.CONFIG,
        services=cfg.services,
        thresholds=dataclasses.replace(config.CONFIG.thresholds, error_ratio=0.02),
    )
    assert cfg == expected


def test_an_empty_file_is_the_profile_unchanged(tmp_path: Path) -> None:
    for name, profile in config.PROFILES.items():
        assert load_text(tmp_path, "", name) == profile


# --- every key: derived from the dataclasses, so a new setting is covered without edits ---


def _toml_value(value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        inner = ", ".join(f"{k} = {_toml_value(v)}" for k, v in fields.items() if v is not None)
        return "{ " + inner + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise TypeError(f"no TOML form for {value!r}")


def _leaves(cfg: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every (dotted key, value) of the config tree, sections flattened."""
    found = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if f.name == "profile":
            continue
        if dataclasses.is_dataclass(value):
            found += _leaves(value, f"{prefix}{f.name}.")
        else:
            found.append((f"{prefix}{f.name}", value))
    return found


# Settings that are None by default ("use another setting"), and a value for each.
_UNSET = {
    "postgres.scrape_interval": "7s",
    "postgres.scrape_timeout": "7s",
    "postgres.selector": {"app": "pg-exporter"},
    "postgres.namespace": "databases",
}


def _changed(value: Any) -> Any:
    """A different value of the same type and within the same rules."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, float):
        return value / 2 if value else 0.5
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        if value and value[-1] in "smhdw" and value[:-1].isdigit():
            return f"{int(value[:-1]) + 1}{value[-1]}"
        return value + "x" if "/" not in value[:1] else value + "/x"
    if isinstance(value, tuple) and value and isinstance(value[0], Service):
        return (dataclasses.replace(value[0], name=value[0].name + "-x"), *value[1:])
    if value == ():  # the one list empty by default: remote-write stores
        return (config.RemoteWrite(url="https://store.example/api/v1/push"),)
    if isinstance(value, tuple) and len(value) > 1 and dataclasses.is_dataclass(value[0]):
        return value[:-1]  # a list of tables (SLOs, burn rates): one fewer
    if isinstance(value, tuple) and value and ":" in str(value[0]):
        return (f"{value[0].split(':')[0]}:1234", *value[1:])
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        return (*value, _changed(value[0]))  # an item the field's rule accepts
    if isinstance(value, tuple):
        return (*value, "x")
    if isinstance(value, dict):
        return {k: v + "x" for k, v in value.items()}
    raise TypeError(f"no change for {value!r}")


def test_every_setting_can_be_overridden_from_the_file(tmp_path: Path) -> None:
    leaves = _leaves(config.CONFIG)
    assert len(leaves) > 60  # the whole tree, not a handful of sections
    for key, value in leaves:
        section, _, name = key.rpartition(".")
        new = _UNSET[key] if value is None else _changed(value)
        text = (
            f"[{section}]\n{name} = {_toml_value(new)}\n"
            if section
            else f"{name} = {_toml_value(new)}\n"
        )
        cfg = load_text(tmp_path, text)
        got: Any = cfg
        for part in key.split("."):
            got = getattr(got, part)
        assert got == new, key


# --- mistakes: named with the file, the key and what is allowed ---------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[thresholds]\neror_ratio = 0.1\n",
            "thresholds.eror_ratio: unknown key (did you mean 'error_ratio'?); thresholds takes "
            "error_ratio, latency_p95_seconds,",
        ),
        (
            "[thresholdz]\nerror_ratio = 0.1\n",
            "thresholdz: unknown key (did you mean 'thresholds'?)",
        ),
        (
            "[thresholds]\nerror_ratio = '5%'\n",
            "thresholds.error_ratio: must be a number, not '5%'",
        ),
        (
            "[thresholds]\nerror_ratio = true\n",
            "thresholds.error_ratio: must be a number, not true",
        ),
        (
            "[thresholds]\nerror_ratio = 1.5\n",
            "thresholds.error_ratio: 1.5 is not a ratio from 0 to 1 (0.05 is 5%)",
        ),
        (
            "[thresholds]\nlatency_p95_seconds = 0\n",
            "thresholds.latency_p95_seconds: 0 is not seconds, more than 0 (0.25 is 250ms)",
        ),
        (
            "[durations]\napi_high_error_rate = '2 minutes'\n",
            "durations.api_high_error_rate: '2 minutes' is not a Prometheus duration such as "
            "30s, 5m or 1h30m",
        ),
        (
            "[intervals]\nrate_window = ''\n",
            "intervals.rate_window: '' is not a Prometheus duration",
        ),
        ("[ports]\napi = 70000\n", "ports.api: 70000 is not a port from 1 to 65535"),
        ("[grafana]\ntags = 'genonaut'\n", "grafana.tags: must be a list, not 'genonaut'"),
        (
            "[grafana.dashboard_uids]\nmian = 'x'\n",
            "grafana.dashboard_uids.mian: unknown key (did you mean 'main'?)",
        ),
        (
            "[grafana.dashboard_uids]\nmain = '" + "x" * 41 + "'\n",
            "grafana.dashboard_uids.main: '" + "x" * 41 + "' must be 1 to 40 characters long",
        ),
        (
            "[[services]]\nname = 'api'\ntargets = ['localhost']\n",
            "services[0].targets[0]: 'localhost' is not host:port, such as localhost:8000",
        ),
        (
            "[[services]]\nname = 'api'\ntarget = ['localhost:8000']\n",
            "services[0].target: unknown key (did you mean 'targets'?)",
        ),
        ("[[services]]\nname = 'api'\n", "services[0].targets: required"),
        (
            "[[services]]\nname = 'api'\ntargets = ['a:1']\n[[services]]\nname = 'api'\n"
            "targets = ['b:2']\n",
            "services[1].name: 'api' is also services[0].name; each service is its own "
            "Prometheus job and needs its own name",
        ),
        ("services = []\n", "services: needs at least one [[services]] entry (name, targets)"),
        ("[profiles.prod]\n", "profiles.prod: unknown profile; profiles: compose, default, test"),
        ("[profiles.compse]\n", "profiles.compse: unknown profile (did you mean 'compose'?)"),
        ("thresholds = 3\n", "thresholds: must be a table, not 3"),
        ("[thresholds\n", "is not valid TOML: "),
    ],
)
def test_a_wrong_file_names_the_key_and_what_is_allowed(
    tmp_path: Path, text: str, expected: str
) -> None:
    problems = problems_of(tmp_path, text)
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path, "[thresholds]\nerror_ratio = 2\nlatency = 1\n[ports]\napi = 0\n"
    )
    assert [p.split(":")[0] for p in problems] == [
        "thresholds.error_ratio",
        "thresholds.latency",
        "ports.api",
    ]


def test_profile_tables_apply_to_their_profile_only(tmp_path: Path) -> None:
    text = EXAMPLE + (
        "[profiles.compose]\n"
        "services = [{ name = 'genonaut-api', targets = ['host.docker.internal:8001'] }]\n"
        "[profiles.compose.thresholds]\nerror_ratio = 0.03\n"
    )
    default = load_text(tmp_path, text, "default")
    compose = load_text(tmp_path, text, "compose")
    assert default.jobs == ("genonaut-api", "genonaut-worker")
    assert compose.services == (Service("genonaut-api", ("host.docker.internal:8001",)),)
    assert (default.thresholds.error_ratio, compose.thresholds.error_ratio) == (0.02, 0.03)
    # The compose profile's own settings stay under the file's.
    assert compose.targets == config.COMPOSE_CONFIG.targets


def test_rule_types_are_declared_for_every_number_and_duration() -> None:
    """Numbers and durations carry a rule, so a file can never set a nonsensical value."""
    unruled = []
    for section in (config.Thresholds, config.AlertDurations, config.Intervals, config.Ports):
        for name, hint in typing.get_type_hints(section, include_extras=True).items():
            if typing.get_origin(hint) is not typing.Annotated:
                unruled.append(f"{section.__name__}.{name}")
    assert unruled == []


# --- the command ------------------------------------------------------------------------


def test_build_with_the_example_writes_both_jobs_and_the_threshold(tmp_path: Path) -> None:
    (tmp_path / "monitoring.toml").write_text(EXAMPLE)
    out = tmp_path / "out"
    assert build.main(["--config", str(tmp_path / "monitoring.toml"), "--out", str(out)]) == 0
    prometheus = yaml.safe_load((out / "prometheus/prometheus.yml").read_text())
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]
    }
    assert jobs["genonaut-api"] == ["localhost:8001"]
    assert jobs["genonaut-worker"] == ["localhost:8002"]
    # Every dashboard of the services; the PostgreSQL one selects the exporter's job.
    uids = config.CONFIG.grafana.dashboard_uids
    services = sorted(f"{uid}.json" for name, uid in uids.items() if name != "postgres")
    written = sorted((out / "grafana/dashboards").glob("*.json"))
    assert sorted(p.name for p in written) == sorted([*services, f"{uids['postgres']}.json"])
    for path in written:
        if path.name not in services:
            continue
        variables = {v["name"]: v for v in json.loads(path.read_text())["templating"]["list"]}
        assert 'job=~"genonaut-api|genonaut-worker"' in variables["job"]["query"], path.name
        assert variables["job"]["current"]["value"] == "genonaut-api"
    rules = yaml.safe_load((out / "prometheus/rules/http.yml").read_text())
    error_rate = next(
        r for r in rules["groups"][0]["rules"] if r.get("alert") == "ApiHighErrorRate"
    )
    assert error_rate["expr"].endswith("> 0.02")
    recording = (out / "prometheus/rules/recording.yml").read_text()
    assert 'job=~"genonaut-api|genonaut-worker"' in recording
    assert "genonaut-api" not in recording.replace('job=~"genonaut-api|genonaut-worker"', "")


def test_a_wrong_file_fails_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    builder.build(config.CONFIG, out)
    before = builder.read_tree(out)
    bad = tmp_path / "monitoring.toml"
    bad.write_text("[thresholds]\nerror_ration = 0.02\n")
    assert build.main(["--config", str(bad), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"build failed; {out} was left as it was:\n"
        f"  {bad}: thresholds.error_ration: unknown key (did you mean 'error_ratio'?); "
        f"thresholds takes {', '.join(f.name for f in dataclasses.fields(config.Thresholds))}\n"
    )
    assert builder.read_tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["monitoring.toml", "out"]


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.toml"
    assert build.main(["--config", str(missing), "--out", str(tmp_path / "out")]) == 2
    assert f"{missing}: cannot be read: No such file or directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_readme_config_example_works_as_written(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Monitoring your own app") :]
    block = section[section.index("```toml\n") + len("```toml\n") :]
    text = "\n".join(line.removeprefix("   ") for line in block[: block.index("```")].splitlines())
    default = load_text(tmp_path, text, "default")
    compose = load_text(tmp_path, text, "compose")
    assert default.thresholds.error_ratio == compose.thresholds.error_ratio == 0.02
    assert [s.targets for s in default.services] == [("localhost:8001",), ("localhost:8002",)]
    assert [s.targets for s in compose.services] == [
        ("host.docker.internal:8001",),
        ("host.docker.internal:8002",),
    ]
    assert text.startswith(EXAMPLE.split("#")[0])  # the example, verbatim first
