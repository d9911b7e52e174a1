"""What instrument() and configure_logging() change in a host app, and nothing more."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from genonaut_monitoring.exporters import catalogue, configure_logging, instrument
from tests.apps.driver import get, request
from tests.conftest import ROOT, require_tool


def query_count(registry: CollectorRegistry) -> float:
    total = 0.0
    for metric in registry.collect():
        if metric.name == catalogue.DB_QUERY_DURATION.name:
            total += sum(s.value for s in metric.samples if s.name.endswith("_count"))
    return total


class EngineManager:
    """Like Genonaut's database manager: the engine exists only once something asks for it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: sa.Engine | None = None
        self.ready = False

    @property
    def engine(self) -> sa.Engine | None:
        if not self.ready:
            return None
        if self._engine is None:
            self._engine = sa.create_engine(self.url)
        return self._engine


def manager_app(manager: EngineManager, registry: CollectorRegistry) -> FastAPI:
    app = FastAPI()

    @app.get("/count")
    def count() -> dict[str, int]:
        engine = manager.engine
        assert engine is not None
        with engine.connect() as conn:
            return {"n": conn.execute(sa.text("SELECT 1")).scalar_one()}

    instrument(app, registry=registry, engine=lambda: manager.engine)
    return app


def test_an_engine_factory_is_called_at_first_use_and_attached_once(
    tmp_path: Path, registry: CollectorRegistry
) -> None:
    manager = EngineManager(f"sqlite:///{tmp_path / 'late.db'}")
    app = manager_app(manager, registry)
    # Not ready: the factory returns None, requests still work, nothing is attached.
    assert request(app, "GET", "/metrics").status_code == 200
    assert manager._engine is None
    manager.ready = True
    for _ in range(3):
        assert request(app, "GET", "/count").json() == {"n": 1}
    # Attached before the first query ran, exactly once: three queries, three counts.
    assert query_count(registry) == 3.0
    assert registry.get_sample_value(catalogue.DB_POOL_SIZE.name, {"pool": "sqlite:late.db"}) == 5.0


def test_an_engine_factory_that_fails_is_reported_and_retried(
    tmp_path: Path, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'retry.db'}")

    def factory() -> sa.Engine:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("settings not loaded yet")
        return engine

    app = FastAPI()

    @app.get("/one")
    def one() -> dict[str, int]:
        with engine.connect() as conn:
            return {"n": conn.execute(sa.text("SELECT 1")).scalar_one()}

    instrument(app, registry=registry, engine=factory)
    with caplog.at_level(logging.ERROR, logger="genonaut_monitoring.exporters"):
        assert (
            request(app, "GET", "/one").status_code == 200
        )  # the factory failed: the request did not
    assert "the engine factory" in caplog.text
    assert query_count(registry) == 0.0
    assert request(app, "GET", "/one").status_code == 200
    assert request(app, "GET", "/one").status_code == 200
    assert len(calls) == 2  # resolved at the second request, never called again
    assert query_count(registry) == 2.0


# --- configure_logging ------------------------------------------------------------------


@pytest.fixture
def isolated_logging() -> Iterator[None]:
    names = ("", "genonaut", "genonaut.performance", "genonaut_monitoring", "uvicorn")
    saved = {n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers)) for n in names}
    propagate = {n: logging.getLogger(n).propagate for n in ("uvicorn", "uvicorn.error")}
    access = logging.getLogger("uvicorn.access").disabled
    logging.getLogger().setLevel(logging.WARNING)
    yield
    for name, (level, handlers) in saved.items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).handlers[:] = handlers
    for name, value in propagate.items():
        logging.getLogger(name).propagate = value
    logging.getLogger("uvicorn.access").disabled = access


def test_other_libraries_info_lines_stay_off(
    isolated_logging: None, registry: CollectorRegistry
) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    logging.getLogger("genonaut.performance").info("the host app's quiet line")
    logging.getLogger("sqlalchemy.engine").info("a library's INFO line")
    logging.getLogger("genonaut.performance").warning("a warning still shows")
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    instrument(app, registry=registry)
    get(app, "/ping")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("genonaut.performance", "a warning still shows"),
        ("genonaut_monitoring.access", "GET /ping 200 " + lines[1]["message"].split()[-1]),
    ]
    assert logging.getLogger().level == logging.WARNING
    assert logging.getLogger("genonaut").level == logging.NOTSET


def test_root_level_is_changed_only_when_asked(isolated_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream, root_level="INFO")
    logging.getLogger("genonaut.performance").info("now shown")
    assert "genonaut.performance now shown" in stream.getvalue()
    assert logging.getLogger().level == logging.INFO


# --- the runtime imports nothing the build needs ------------------------------------------

_RUNTIME_SCRIPT = """
import sys
from fastapi import FastAPI
from genonaut_monitoring.exporters import configure_logging, instrument
import sqlalchemy as sa

configure_logging()
app = FastAPI()
instrument(app, engine=sa.create_engine("sqlite://"))
build_only = ("grafanalib", "jinja2", "promql_parser", "matplotlib", "requests", "yaml", "attr")
print(sorted(name for name in sys.modules if name.split(".")[0] in build_only))
print(sorted(name for name in sys.modules if name.split(".")[0] in ("exporters", "config")))
"""


def test_instrumenting_an_app_imports_no_build_dependency() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _RUNTIME_SCRIPT],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT / "tests",  # not the repository root: nothing there can be picked up
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[]"]


# --- the local stack pointed at an app of one's own ---------------------------------------

_APP = textwrap.dedent(
    """
    from fastapi import FastAPI
    from genonaut_monitoring.exporters import instrument

    app = FastAPI()

    @app.get("/hello")
    def hello() -> dict:
        return {"hello": "world"}

    instrument(app)
    """
)


@pytest.mark.e2e
def test_the_stack_scrapes_the_services_own_targets(tmp_path: Path) -> None:
    from genonaut_monitoring import settings
    from genonaut_monitoring.processes import Process, free_port
    from genonaut_monitoring.stack import Stack

    require_tool("prometheus")
    (tmp_path / "myapp.py").write_text(_APP)
    port = free_port()
    toml = tmp_path / "monitoring.toml"
    toml.write_text(f'[[services]]\nname = "my-app"\ntargets = ["127.0.0.1:{port}"]\n')
    cfg = settings.load(toml, "test")
    app = Process(
        "app",
        [sys.executable, "-m", "uvicorn", "myapp:app", "--port", str(port)],
        tmp_path / "app.log",
        {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
        tmp_path,
    )
    app.start()
    try:
        with Stack(tmp_path / "run", cfg=cfg, components={"prometheus"}, own_targets=True) as stack:
            assert stack.cfg.services == cfg.services  # its own targets, not rewritten
            up = stack.wait_for(lambda: stack.query('up{job="my-app"} == 1'), 30, "a scrape")
            assert up[0]["metric"]["instance"] == f"127.0.0.1:{port}"
            assert "Scraping my-app" in stack.urls()
    finally:
        app.stop()


# --- several services: rules select each and carry its job ---------------------------------


def test_alerts_fire_per_service_with_its_job_and_ignore_other_jobs(tmp_path: Path) -> None:
    """promtool over the rules built from the README's two-service example."""
    import yaml

    from genonaut_monitoring import builder, settings
    from tests.test_settings import EXAMPLE

    promtool = require_tool("promtool")
    (tmp_path / "monitoring.toml").write_text(EXAMPLE)
    cfg = settings.load(tmp_path / "monitoring.toml", "test")
    out = tmp_path / "out"
    builder.build(cfg, out)
    step = cfg.intervals.evaluation_interval
    requests = catalogue.HTTP_REQUESTS.name
    # 3% of the worker's requests fail: above its 2% threshold; the API and a job the
    # config does not know fail as often and more, and must not alert.
    series = []
    for job, instance in (("genonaut-worker", "w:8002"), ("genonaut-api", "a:8001")):
        good, bad = (97, 3) if job == "genonaut-worker" else (100, 0)
        for status, per_step in (("200", good), ("500", bad)):
            labels = f'job="{job}", instance="{instance}", method="GET", route="/x"'
            name = f'{requests}{{{labels}, status="{status}"}}'
            series.append({"series": name, "values": f"0+{per_step}x120"})
    other = 'job="other", instance="o:1", method="GET", route="/x", status="500"'
    series.append({"series": f"{requests}{{{other}}}", "values": "0+100x120"})
    series.append({"series": 'up{job="genonaut-worker", instance="w:8002"}', "values": "0x120"})
    series.append({"series": 'up{job="genonaut-api", instance="a:8001"}', "values": "1x120"})
    series.append({"series": 'up{job="other", instance="o:1"}', "values": "0x120"})
    test = {
        "rule_files": sorted(str(p) for p in (out / "prometheus/rules").glob("*.yml")),
        "evaluation_interval": step,
        "tests": [
            {
                "interval": step,
                "input_series": series,
                # Every firing alert of the two: exactly the worker's, labelled with its job.
                "promql_expr_test": [
                    {
                        "expr": 'ALERTS{alertname=~"ApiHighErrorRate|ApiTargetDown", '
                        'alertstate="firing"}',
                        "eval_time": "60s",
                        "exp_samples": [
                            {"labels": f"ALERTS{{{labels}}}", "value": 1}
                            for labels in (
                                'alertname="ApiHighErrorRate", alertstate="firing", '
                                'job="genonaut-worker", severity="critical"',
                                'alertname="ApiTargetDown", alertstate="firing", '
                                'instance="w:8002", job="genonaut-worker", severity="critical"',
                            )
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(test))
    result = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
