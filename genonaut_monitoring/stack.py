"""The monitoring stack on this machine, without Docker (``genonaut-monitoring up``).

Starts Prometheus and Alertmanager (Debian packages) with configs built for
the ports chosen here, a real SMTP server that keeps every email it receives,
a stand-in for Slack's incoming webhook, and (unless ``--no-demo``) the demo
API, on a throwaway PostgreSQL watched by postgres_exporter when both are
installed (:mod:`~genonaut_monitoring.pgstack`). Grafana is the one part that
needs Docker: ``docker compose up`` runs the whole stack with it.

The command is :mod:`genonaut_monitoring.up`; the end-to-end tests drive the same
:class:`Stack`::

    with Stack(tmp_path, components={"api", "prometheus"}) as stack:
        stack.wait_for(lambda: stack.query("up") != [], 30, "first scrape")
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import requests

from genonaut_monitoring import builder, config, pgstack
from genonaut_monitoring.processes import Process, StackError, find_binary, free_port
from genonaut_monitoring.standins import SlackStandIn, SmtpCatcher

# "api" is the demo API; without it the stack scrapes the services' own targets.
COMPONENTS = frozenset({"api", "prometheus", "alertmanager", "smtp", "slack"})
# Started when asked for (pgstack): a throwaway PostgreSQL and postgres_exporter.
KNOWN_COMPONENTS = COMPONENTS | pgstack.COMPONENTS
DEMO_APP = "genonaut_monitoring.exporters.demo:app"
T = TypeVar("T")

__all__ = ["COMPONENTS", "SlackStandIn", "SmtpCatcher", "Stack", "StackError", "free_port"]


class Stack:
    """Prometheus, Alertmanager, an SMTP catcher, a Slack stand-in and the demo API.

    ``cfg`` is pointed at this stack's ports. The first service scrapes the API
    port (the demo's, with the ``api`` component) unless ``own_targets``: then every
    service keeps the targets its config gives (an app running on its own).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        cfg: config.Config = config.TEST_CONFIG,
        components: Iterable[str] = COMPONENTS,
        api_env: Mapping[str, str] | None = None,
        api_workers: int = 1,
        preferred_ports: bool = False,
        slack_webhook_url: str | None = None,
        own_targets: bool = False,
        postgres_settings: Mapping[str, str] | None = None,
    ) -> None:
        unknown = set(components) - KNOWN_COMPONENTS
        if unknown:
            raise ValueError(
                f"unknown components {sorted(unknown)}: choose from {sorted(KNOWN_COMPONENTS)}"
            )
        self.workdir = Path(workdir).resolve()
        self.out = self.workdir / "out"
        self.components = frozenset(components)
        self.api_env = dict(api_env or {})
        self.api_workers = api_workers
        self.slack_webhook_url = slack_webhook_url
        self.own_targets = own_targets
        ports = cfg.ports
        pick = (lambda p: free_port(p)) if preferred_ports else (lambda p: free_port())
        self.ports = replace(
            ports,
            api=pick(ports.api),
            prometheus=pick(ports.prometheus),
            alertmanager=pick(ports.alertmanager),
            mail_smtp=pick(ports.mail_smtp),
            postgres_exporter=pick(ports.postgres_exporter),
        )
        self.slack_port = free_port()
        self.cfg = self._config(cfg)
        self.processes: dict[str, Process] = {}
        self.smtp: SmtpCatcher | None = None
        self.slack: SlackStandIn | None = None
        # The throwaway PostgreSQL and postgres_exporter, when asked for.
        self.pg = pgstack.PostgresParts(self, postgres_settings)
        self._stopped = False

    # -- configuration --

    @property
    def secrets_dir(self) -> Path:
        return self.workdir / "secrets"

    def _config(self, cfg: config.Config) -> config.Config:
        """``cfg``, pointed at the ports and files of this stack."""
        services = cfg.services
        if not self.own_targets:
            api = (f"127.0.0.1:{self.ports.api}",)
            services = (replace(services[0], targets=api), *services[1:])
        postgres = cfg.postgres
        if pgstack.EXPORTER in self.components:
            exporter = (f"127.0.0.1:{self.ports.postgres_exporter}",)
            postgres = replace(postgres, targets=exporter)
        elif not self.own_targets:
            # No exporter here: no scrape job, and no alert about a missing one.
            postgres = replace(postgres, targets=())
        return replace(
            cfg,
            ports=self.ports,
            services=services,
            postgres=postgres,
            targets=replace(cfg.targets, alertmanager=(f"127.0.0.1:{self.ports.alertmanager}",)),
            notifications=replace(
                cfg.notifications,
                smarthost=f"127.0.0.1:{self.ports.mail_smtp}",
                smtp_require_tls=False,
                slack_api_url_file=str(self.secrets_dir / "slack_webhook_url"),
                alertmanager_external_url=f"http://127.0.0.1:{self.ports.alertmanager}",
            ),
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.alertmanager}"

    # -- lifecycle --

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Build the configs, then start each component and wait until it answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_secrets()
        builder.build(self.cfg, self.out)
        if "smtp" in self.components:
            self.smtp = SmtpCatcher(self.ports.mail_smtp)
            self.smtp.start()
        if "slack" in self.components and self.slack_webhook_url is None:
            self.slack = SlackStandIn(self.slack_port, self.workdir / "slack")
            self.slack.start()
        if pgstack.SERVER in self.components:
            self.pg.start_server()
        if pgstack.EXPORTER in self.components:
            self.pg.start_exporter()
        if "api" in self.components:
            self._start("api", self._api_args(), self._api_env())
            self._wait_http("api", f"{self.api_url}/health", timeout=120)
        if "alertmanager" in self.components:
            self._start("alertmanager", self._alertmanager_args(), os.environ)
            self._wait_http("alertmanager", f"{self.alertmanager_url}/-/ready", timeout=30)
        if "prometheus" in self.components:
            self._start("prometheus", self._prometheus_args(), os.environ)
            self._wait_http("prometheus", f"{self.prometheus_url}/-/ready", timeout=30)

    def stop(self) -> None:
        """Stop everything that was started, newest first; safe to call twice.

        Each part is stopped even when stopping another one failed; the first failure
        is raised afterwards.
        """
        if self._stopped:
            return
        self._stopped = True
        stops: list[Callable[[], None]] = [
            self.processes[name].stop for name in reversed(list(self.processes))
        ]
        stops.append(self.pg.stop)
        stops += [service.stop for service in (self.slack, self.smtp) if service is not None]
        failure: BaseException | None = None
        for stop in stops:
            try:
                stop()
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    def _write_secrets(self) -> None:
        self.secrets_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.secrets_dir, 0o700)
        url = self.slack_webhook_url or SlackStandIn.url_for(self.slack_port)
        target = self.secrets_dir / "slack_webhook_url"
        target.write_text(url + "\n")
        os.chmod(target, 0o600)

    def _start(self, name: str, args: list[str], env: Mapping[str, str]) -> None:
        process = Process(name, args, self.workdir / "logs" / f"{name}.log", env, self.workdir)
        self.processes[name] = process
        process.start()

    def _api_args(self) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", DEMO_APP,
            "--host", "127.0.0.1", "--port", str(self.ports.api),
            "--workers", str(self.api_workers), "--no-access-log",
        ]  # fmt: skip

    def _api_env(self) -> dict[str, str]:
        env = dict(os.environ)
        own_database = self.pg.database_url()
        if own_database is not None:
            env["DATABASE_URL"] = own_database
        env.setdefault("DATABASE_URL", f"sqlite:///{self.workdir / 'demo.db'}")
        env.setdefault("DEMO_SEED_ROWS", "20000")
        if self.api_workers > 1:
            multiproc = self.workdir / "multiproc"
            shutil.rmtree(multiproc, ignore_errors=True)
            multiproc.mkdir(parents=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
        env.update(self.api_env)
        return env

    def _prometheus_args(self) -> list[str]:
        return [
            find_binary("prometheus"),
            f"--config.file={self.out / 'prometheus' / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{self.ports.prometheus}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]

    def _alertmanager_args(self) -> list[str]:
        return [
            find_binary("prometheus-alertmanager"),
            f"--config.file={self.out / 'alertmanager' / 'alertmanager.yml'}",
            f"--storage.path={self.workdir / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{self.ports.alertmanager}",
            # Silence links in notifications start here (else http://<hostname>:9093).
            f"--web.external-url={self.cfg.notifications.alertmanager_external_url}",
            # A single instance: no gossip port to collide with other stacks.
            "--cluster.listen-address=",
            "--log.level=debug",
        ]

    def _wait_http(self, name: str, url: str, timeout: float) -> None:
        process = self.processes[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.alive():
                raise StackError(
                    f"{name} exited at start; its log ({process.log}):\n{process.tail()}"
                )
            try:
                if requests.get(url, timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise StackError(
            f"{name} did not answer {url} within {timeout:.0f}s; log:\n{process.tail()}"
        )

    # -- helpers for tests and scripts --

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query against this stack's Prometheus; the result vector."""
        response = requests.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": expr}, timeout=10
        )
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def wait_for(self, predicate: Callable[[], T], timeout: float, what: str) -> T:
        """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f}s for {what}")
            time.sleep(0.2)

    def urls(self) -> dict[str, str]:
        """What is running where."""
        urls = {}
        if "api" in self.components:
            urls["Demo API"] = f"{self.api_url}/api/v1/content  (metrics: {self.api_url}/metrics)"
        if self.own_targets:
            for service in self.cfg.services:
                urls[f"Scraping {service.name}"] = ", ".join(
                    f"http://{target}{service.metrics_path}" for target in service.targets
                )
        if "prometheus" in self.components:
            urls["Prometheus"] = self.prometheus_url
        if "alertmanager" in self.components:
            urls["Alertmanager"] = self.alertmanager_url
        if self.smtp is not None:
            urls["SMTP catcher"] = (
                f"smtp://127.0.0.1:{self.ports.mail_smtp} (messages in {self.workdir / 'mail'})"
            )
        if self.slack is not None:
            urls["Slack stand-in"] = f"{self.slack.url} (payloads in {self.workdir / 'slack'})"
        urls.update(self.pg.urls())
        return urls
