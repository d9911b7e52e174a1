"""Running ``promtool test rules`` on the generated rule files of a profile."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

from genonaut_monitoring import alerts, config
from tests.conftest import require_tool


def _two_services() -> config.Config:
    """The README's adopter example: two services, one threshold changed."""
    import tempfile

    from genonaut_monitoring import settings
    from tests.test_settings import EXAMPLE

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "monitoring.toml"
        path.write_text(EXAMPLE)
        return settings.load(path, "default")


# The shipped profiles, and an adopter's config with several jobs (job=~"a|b" selectors).
PROFILES = {
    "default": config.CONFIG,
    "test": config.TEST_CONFIG,
    "two-services": _two_services(),
}


# Where the rules under test come from: the rule files, or the groups inside the
# Kubernetes target's PrometheusRules (where every alert also carries a namespace label).
SOURCES = ("files", "kubernetes")


@functools.cache
def rule_files(profile: str, source: str = "files") -> dict[str, bytes]:
    cfg = PROFILES[profile]
    if source == "kubernetes":
        from genonaut_monitoring import builder, kubernetes

        return kubernetes.rule_files(builder.render(cfg, "kubernetes"))
    return alerts.rule_outputs(cfg, alerts.dashboard_panel_ids(cfg))


def source_labels(cfg: config.Config, source: str) -> dict[str, str]:
    """Labels the rule source adds to every alert."""
    return {"namespace": cfg.kubernetes.namespace} if source == "kubernetes" else {}


def generated_rules(profile: str, source: str = "files") -> dict[str, dict[str, Any]]:
    """Every alerting rule as written to the rule files, by alert name."""
    rules = {}
    for content in rule_files(profile, source).values():
        for group in yaml.safe_load(content)["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules[rule["alert"]] = rule
    return rules


def write_rules(folder: Path, profile: str, source: str = "files") -> list[str]:
    """Write the profile's rule files under ``folder/rules``; their paths relative to it."""
    paths = []
    for relative, content in rule_files(profile, source).items():
        target = folder / "rules" / Path(relative).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        paths.append(f"rules/{target.name}")
    return sorted(paths)


def run_promtool(folder: Path, test: dict[str, Any]) -> None:
    """Write ``test`` to folder/test.yml and assert ``promtool test rules`` passes it."""
    promtool = require_tool("promtool")
    path = folder / "test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"promtool test rules {path}:\n{result.stdout}{result.stderr}"
