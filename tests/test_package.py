"""The distribution as an adopter gets it: a wheel (and an editable install) in a fresh venv.

Each check runs outside the repository, from a folder full of names that clash
with generic module names (``config.py``, ``alerts.py``, a ``dashboards``
package), as an application's own repository would be.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_settings import EXAMPLE

pytestmark = pytest.mark.slow

# Modules only the build, the stack or the tests need: never pulled by the runtime install.
BUILD_ONLY = ("grafanalib", "jinja2", "promql_parser", "matplotlib", "requests", "yaml")
GENERIC = ("config", "alerts", "dashboards", "exporters", "scripts", "benchmarks", "tests", "build")

# Runs in the adopter's folder: instrument an app, serve one request, report what got imported.
APP_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from fastapi import FastAPI
    from genonaut_monitoring.exporters import configure_logging, instrument

    configure_logging(stream=open("/dev/null", "w"))
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict:
        return {"id": item_id}

    instrument(app)

    async def call(path):
        sent = []
        scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "headers": [], "root_path": "", "scheme": "http",
                 "server": ("test", 80), "client": ("test", 1), "http_version": "1.1",
                 "asgi": {"version": "3.0"}}
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}
        async def send(message):
            sent.append(message)
        await app(scope, receive, send)
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return sent[0]["status"], body.decode()

    status, _ = asyncio.run(call("/items/7"))
    _, metrics = asyncio.run(call("/metrics"))
    import config, alerts, dashboards  # the app's own modules, not ours
    print(json.dumps({
        "status": status,
        "counted": 'http_requests_total{method="GET",route="/items/{item_id}",status="200"} 1.0'
        in metrics,
        "own": [config.OWNER, alerts.OWNER, dashboards.OWNER],
        "build_only": sorted(n for n in sys.modules if n.split(".")[0] in BUILD_ONLY),
    }))
    """
).replace("BUILD_ONLY", repr(BUILD_ONLY))


def adopter_folder(path: Path) -> Path:
    """An app's repository: its own config, alerts and dashboards, and our example config."""
    path.mkdir(parents=True)
    (path / "config.py").write_text('OWNER = "app"\nCONFIG = None\n')
    (path / "alerts.py").write_text('OWNER = "app"\n')
    (path / "dashboards").mkdir()
    (path / "dashboards" / "__init__.py").write_text('OWNER = "app"\n')
    (path / "exporters.py").write_text('OWNER = "app"\n')
    (path / "app_check.py").write_text(APP_SCRIPT)
    (path / "monitoring.toml").write_text(EXAMPLE)
    return path


def fresh_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin"


def pip(bin_dir: Path, *args: str) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def run(bin_dir: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        list(args), cwd=folder, capture_output=True, text=True, check=False, env=env, timeout=300
    )


def check_app(bin_dir: Path, folder: Path) -> None:
    result = run(bin_dir, folder, str(bin_dir / "python"), "app_check.py")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report == {"status": 200, "counted": True, "own": ["app"] * 3, "build_only": []}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources, so the checkout gains no build/ folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, files):
        relative = name.decode()
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        original = ROOT / relative
        if original.is_symlink():
            target.symlink_to(os.readlink(original))
        elif original.exists():  # a file deleted but not yet committed is skipped
            shutil.copy2(original, target)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (built,) = tmp.glob("genonaut_monitoring-*.whl")
    return built


def test_the_wheel_holds_one_package_with_its_templates(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"genonaut_monitoring"}
    for needed in (
        "genonaut_monitoring/exporters/instrument.py",
        "genonaut_monitoring/dashboards/main.py",
        "genonaut_monitoring/alerts/http.py",
        "genonaut_monitoring/provisioning/prometheus/prometheus.yml.j2",
        "genonaut_monitoring/provisioning/alertmanager/genonaut.tmpl",
        "genonaut_monitoring/kubernetes/crds.json",
        "genonaut_monitoring/RUNBOOK.md",
        "genonaut_monitoring/py.typed",
    ):
        assert needed in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "genonaut-monitoring = genonaut_monitoring.cli:main" in text


def test_the_wheel_instruments_an_app_and_builds_from_any_folder(
    wheel: Path, tmp_path: Path
) -> None:
    folder = adopter_folder(tmp_path / "my-app")
    bin_dir = fresh_venv(tmp_path / "venv")
    # The runtime install: what the app needs, and nothing the build needs.
    pip(bin_dir, str(wheel))
    installed = run(bin_dir, folder, str(bin_dir / "python"), "-m", "pip", "list", "--format=json")
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert names.isdisjoint({"grafanalib", "jinja2", "promql-parser", "pyyaml", "matplotlib"})
    assert "requests" not in names and "uvicorn" not in names
    site = next((tmp_path / "venv" / "lib").glob("python*/site-packages"))
    assert not [g for g in GENERIC if (site / g).exists() or (site / f"{g}.py").exists()]
    check_app(bin_dir, folder)

    # The command is there, and says which extra the build needs.
    missing = run(bin_dir, folder, "genonaut-monitoring", "build", "--config", "monitoring.toml")
    assert missing.returncode == 2
    assert "install the extra: pip install 'genonaut-monitoring[build]'" in missing.stderr
    assert not (folder / "out").exists()

    # With the build extra it works from the app's folder with the app's config.
    pip(bin_dir, f"{wheel}[build]")
    result = run(bin_dir, folder, "genonaut-monitoring", "build", "--config", "monitoring.toml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {sum(1 for _ in (folder / 'out').rglob('*.*'))} files")
    prometheus = yaml.safe_load((folder / "out/prometheus/prometheus.yml").read_text())
    assert [j["job_name"] for j in prometheus["scrape_configs"]][:2] == [
        "genonaut-api",
        "genonaut-worker",
    ]
    main = json.loads((folder / "out/grafana/dashboards/genonaut-main.json").read_text())
    (job,) = [v for v in main["templating"]["list"] if v["name"] == "job"]
    assert 'job=~"genonaut-api|genonaut-worker"' in job["query"]
    rules = (folder / "out/prometheus/rules/http.yml").read_text()
    assert "> 0.02" in rules
    assert (
        'job=~"genonaut-api|genonaut-worker"'
        in (folder / "out/prometheus/rules/recording.yml").read_text()
    )

    # The Kubernetes target too, validated against the CRD schemas shipped in the wheel.
    k8s = run(bin_dir, folder, "genonaut-monitoring", "build", "--target", "kubernetes",
              "--config", "monitoring.toml")  # fmt: skip
    assert k8s.returncode == 0, k8s.stderr
    assert "kind: Kustomization" in (folder / "out-kubernetes/kustomization.yaml").read_text()
    assert (folder / "out-kubernetes/service-monitors/genonaut-worker.yaml").is_file()

    # A wrong key: non-zero, naming it; the output of the good build is left as it was.
    before = (folder / "out/prometheus/rules/http.yml").read_bytes()
    (folder / "bad.toml").write_text(EXAMPLE + "[intervals]\nscrape_intervl = '5s'\n")
    bad = run(bin_dir, folder, "genonaut-monitoring", "build", "--config", "bad.toml")
    assert bad.returncode == 2
    assert "intervals.scrape_intervl: unknown key (did you mean 'scrape_interval'?)" in bad.stderr
    assert (folder / "out/prometheus/rules/http.yml").read_bytes() == before


def test_an_editable_install_imports_the_same_way(tmp_path: Path) -> None:
    folder = adopter_folder(tmp_path / "my-app")
    bin_dir = fresh_venv(tmp_path / "venv")
    pip(bin_dir, "-e", str(ROOT))
    check_app(bin_dir, folder)
    shown = run(bin_dir, folder, str(bin_dir / "python"), "-c", "import exporters")
    assert "OWNER" not in shown.stderr and shown.returncode == 0  # the app's exporters.py
    hidden = run(bin_dir, tmp_path, str(bin_dir / "python"), "-c", "import exporters")
    assert "No module named 'exporters'" in hidden.stderr
