"""Every notification, previewed: each alert, to each receiver, through the real templates.

    python -m genonaut_monitoring.alerts.previews --out tests/golden/notifications  # make goldens

    >>> found = render(config.CONFIG)                # {(alert, receiver): Preview}; needs amtool
    >>> print(found["ApiHighErrorRate", "slack"].text())

For each alert, the notifications its promtool case causes (the alerts the
case expects, with their labels and rendered annotations, grouped as
Alertmanager groups them) are rendered firing and then resolved, for every
receiver (:mod:`~genonaut_monitoring.alerts.messages`), from the built
alertmanager.yml, Grafana contact points and templates. The build renders
them all and fails, naming the alert and the receiver, on a template error,
``<no value>`` or an empty field; tests/golden/notifications/ keeps them for
review, and the end-to-end test checks that Alertmanager delivers exactly this.

Grafana adds fields to each alert that Alertmanager's data type lacks
(SilenceURL, PanelURL, DashboardURL, ValueString); Grafana's templates read
them in three small templates only (provisioning/grafana/notifications.tmpl),
which the preview replaces by ones reading the values Grafana computes, in
Grafana's format, from hidden annotations. Everything else is rendered as in
Grafana: the same Go template engine and Alertmanager's functions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.parse
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from genonaut_monitoring import config
from genonaut_monitoring.alerts import links, messages, routing, unittests
from genonaut_monitoring.alerts.cases import Expect
from genonaut_monitoring.alerts.messages import RECEIVERS, Amtool, Message, RenderError
from genonaut_monitoring.alerts.model import Alert

STATUSES = ("firing", "resolved")
# Fixed times, so previews are deterministic; no template prints them.
STARTS_AT, ENDS_AT, NEVER = "2024-01-15T09:30:00Z", "2024-01-15T09:45:00Z", "0001-01-01T00:00:00Z"
_HIDDEN = "__grafana_{}__"
# Grafana's own fields, read from hidden annotations in the preview.
GRAFANA_STAND_INS = """\
{{ define "genonaut.grafana.silence_url" }}{{ .Annotations.__grafana_silence_url__ }}{{ end }}
{{ define "genonaut.grafana.panel_url" }}{{ with .Annotations.dashboard_url }}{{ . }}\
{{ else }}{{ .Annotations.__grafana_panel_url__ }}{{ end }}{{ end }}
{{ define "genonaut.grafana.value" }}{{ with .Annotations.value }}{{ . }}\
{{ else }}{{ .Annotations.__grafana_value_string__ }}{{ end }}{{ end }}
"""


@dataclass(frozen=True)
class Fired:
    """One alert as Prometheus sends it to Alertmanager."""

    labels: Mapping[str, str]  # alertname included
    annotations: Mapping[str, str]


@dataclass
class Preview:
    """The notifications one alert causes at one receiver, by heading ("firing", ...)."""

    alert: str
    receiver: str
    notifications: dict[str, Message] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return f"{self.alert}.{self.receiver}.txt"

    def text(self) -> str:
        """The golden file: every notification, fields as the receiver gets them."""
        lines = [
            f"# {self.alert} to {self.receiver}: rendered by amtool from the built configuration.",
            "# Regenerate with `make goldens`; review the difference like code.",
        ]
        for heading, message in self.notifications.items():
            lines += ["", f"===== {heading} ====="]
            if "attachments" in message:
                lines.append(json.dumps(message, indent=2, ensure_ascii=False))
                attachment = message["attachments"][0]
                lines += ["----- as Slack shows it -----", attachment.get("title", "")]
                lines.append(attachment["text"].rstrip("\n"))
            else:
                headers = [(k, v) for k, v in message.items() if not _is_body(k, v)]
                lines += [f"{name}: {value}" for name, value in headers]
                for name, value in message.items():
                    if _is_body(name, value):
                        lines += [f"----- {name} -----", value.rstrip("\n")]
        return "\n".join(lines) + "\n"


def _is_body(name: str, value: str) -> bool:
    """A message part shown as a block (a body), not as a header line."""
    return "\n" in value or name.startswith("text/") or name in ("message", "text")


def fired(
    cfg: config.Config, alert: Alert, ids: links.PanelIds, value: float | None = None
) -> list[Fired]:
    """The alerts the alert's firing case expects; ``value`` replaces their ``$value``."""
    found = []
    for expect in unittests.cases_of(alert).fires.alerts:
        shown = expect if value is None else Expect(expect.labels, value)
        labels = {"alertname": alert.name, **unittests.firing_labels(alert, shown)}
        found.append(Fired(labels, unittests.firing_annotations(cfg, alert, ids, shown)))
    return found


def _fingerprint(labels: Mapping[str, str]) -> str:
    """Prometheus' label-set fingerprint (FNV-1a 64 over sorted names and values)."""
    digest = 0xCBF29CE484222325
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode() + b"\xff":
                digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{digest:016x}"


def _common(maps: list[Mapping[str, str]]) -> dict[str, str]:
    first = maps[0]
    return {k: v for k, v in sorted(first.items()) if all(m.get(k) == v for m in maps[1:])}


def template_data(
    cfg: config.Config, group: list[Fired], receiver: str, status: str, external_url: str
) -> dict[str, Any]:
    """Alertmanager's template.Data for one notification of ``group``."""
    labels = [f.labels for f in group]
    common = _common(labels)
    prometheus = f"http://localhost:{cfg.ports.prometheus}"
    return {
        "receiver": receiver,
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": dict(sorted(f.labels.items())),
                "annotations": dict(sorted(f.annotations.items())),
                "startsAt": STARTS_AT,
                "endsAt": ENDS_AT if status == "resolved" else NEVER,
                "generatorURL": f"{prometheus}/graph?g0.tab=1",
                "fingerprint": _fingerprint(f.labels),
            }
            for f in group
        ],
        "groupLabels": {k: common[k] for k in routing.GROUP_BY if k in common},
        "commonLabels": common,
        "commonAnnotations": _common([f.annotations for f in group]),
        "externalURL": external_url,
    }


def grafana_fired(cfg: config.Config, alert: Fired) -> Fired:
    """``alert`` with what Grafana computes for it, as hidden annotations (see the module)."""
    matchers = [("alertmanager", "grafana")] + [
        ("matcher", f"{k}={v}") for k, v in sorted(alert.labels.items())
    ]
    silence = f"{cfg.grafana.url}/alerting/silence/new?{urllib.parse.urlencode(matchers)}"
    values = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname")
    hidden = {
        "silence_url": silence,
        "panel_url": alert.annotations.get("dashboard_url", f"{cfg.grafana.url}/"),
        "value_string": f"[ var='A' labels={{{values}}} value={alert.annotations.get('value')} ]",
    }
    return Fired(
        alert.labels, {**alert.annotations, **{_HIDDEN.format(k): v for k, v in hidden.items()}}
    )


def groups(alerts: Iterable[Fired]) -> list[list[Fired]]:
    """Alerts grouped by Alertmanager's group_by labels, in order of first appearance."""
    found: dict[tuple[str, ...], list[Fired]] = {}
    for alert in alerts:
        key = tuple(alert.labels.get(k, "") for k in routing.GROUP_BY)
        found.setdefault(key, []).append(alert)
    return list(found.values())


@dataclass(frozen=True)
class Built:
    """What the previews read from a built output folder."""

    alertmanager: dict[str, Any]
    contact_points: dict[str, Any]
    amtool: Amtool
    grafana: Amtool
    ids: dict[tuple[str, str], int]

    @classmethod
    def read(cls, folder: Path, scratch: Path) -> Built:
        alerting = folder / "grafana" / "provisioning" / "alerting"
        grafana_templates = yaml.safe_load((alerting / "templates.yaml").read_text())["templates"]
        grafana_files = []
        for index, template in enumerate([*grafana_templates, {"template": GRAFANA_STAND_INS}]):
            path = scratch / f"{index:02d}.tmpl"  # parsed in this order: the stand-ins last
            path.write_text(template["template"])
            grafana_files.append(path)
        dashboards = {
            p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.json")
        }
        return cls(
            alertmanager=yaml.safe_load((folder / "alertmanager" / "alertmanager.yml").read_text()),
            contact_points=yaml.safe_load((alerting / "contact-points.yaml").read_text()),
            amtool=Amtool(sorted((folder / "alertmanager" / "templates").glob("*.tmpl"))),
            grafana=Amtool(grafana_files),
            ids=links.panel_ids(dashboards),
        )

    def message(self, receiver: str, data: dict[str, Any]) -> Message:
        if receiver == "email":
            return messages.email(self.amtool, self.alertmanager, data)
        if receiver == "slack":
            return messages.slack(self.amtool, self.alertmanager, data)
        return messages.grafana(self.grafana, self.contact_points, receiver, data)


def preview_alert(
    cfg: config.Config, built: Built, alert: Alert, value: float | None = None
) -> tuple[dict[str, Preview], list[str]]:
    """Every receiver's preview of ``alert``, and the problems found rendering them."""
    try:
        alerts = fired(cfg, alert, built.ids, value)
    except ValueError as exc:
        return {}, [f"notifications of {alert.name} (every receiver): {exc}"]
    found: dict[str, Preview] = {}
    problems: list[str] = []
    for receiver in RECEIVERS:
        grafana = receiver.startswith("grafana-")
        url = cfg.grafana.url if grafana else cfg.notifications.alertmanager_external_url
        preview = found.setdefault(receiver, Preview(alert.name, receiver))
        notified = groups(alerts)
        for group in notified:
            if grafana:
                group = [grafana_fired(cfg, f) for f in group]
            for status in STATUSES:
                data = template_data(cfg, group, receiver.removeprefix("grafana-"), status, url)
                heading = status
                if len(notified) > 1:  # say which group, e.g. "firing, job=genonaut-worker"
                    heading += "".join(f", {k}={v}" for k, v in data["groupLabels"].items())
                where = f"notification {alert.name} to {receiver} ({heading})"
                try:
                    message = built.message(receiver, data)
                except RenderError as exc:
                    problems.append(f"{where}: amtool template render: {exc}")
                    continue
                problems.extend(f"{where}: {p}" for p in messages.problems(message))
                preview.notifications[heading] = message
    return found, problems


def render(
    cfg: config.Config,
    folder: Path | None = None,
    names: Iterable[str] | None = None,
    value: float | None = None,
) -> tuple[dict[tuple[str, str], Preview], list[str]]:
    """Previews of ``names`` (every alert) by (alert, receiver), and the problems found.

    ``folder`` is a built output folder; without one, ``cfg`` is rendered into a
    scratch folder first.
    """
    from genonaut_monitoring import alerts, builder

    definitions = alerts.by_name(cfg)
    with tempfile.TemporaryDirectory(prefix="genonaut-previews-") as scratch:
        if folder is None:
            folder = Path(scratch) / "out"
            builder.write_tree(folder, builder.render(cfg))
        built = Built.read(folder, Path(scratch))
        chosen = list(names or definitions)
        # amtool starts in milliseconds; a few at a time keep the build's cost near a second.
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = pool.map(
                lambda name: preview_alert(cfg, built, definitions[name], value), chosen
            )
            found: dict[tuple[str, str], Preview] = {}
            problems: list[str] = []
            for name, (previews, trouble) in zip(chosen, results, strict=True):
                found.update({(name, receiver): p for receiver, p in previews.items()})
                problems.extend(trouble)
    return found, problems


def validate(folder: Path, cfg: config.Config) -> list[str]:
    """The build's check: every alert's notifications render, complete, at every receiver."""
    from genonaut_monitoring.builder import run_tool

    if Amtool.found() is None:
        # Reported (a problem under CI) the way every missing validator is.
        return run_tool(["amtool"], "notification previews")
    return render(cfg, folder)[1]


def write(previews: Mapping[tuple[str, str], Preview], out: Path) -> list[Path]:
    """Write each preview to ``out``; remove previews (<Alert>.<receiver>.txt) of alerts
    that are gone. Other files are left alone."""
    out.mkdir(parents=True, exist_ok=True)
    wanted = {p.file_name: p for p in previews.values()}
    for receiver in RECEIVERS:
        for stale in sorted(out.glob(f"*.{receiver}.txt")):
            if stale.name not in wanted:
                stale.unlink()
    for name, preview in sorted(wanted.items()):
        (out / name).write_text(preview.text())
    return [out / name for name in sorted(wanted)]


def main(argv: list[str] | None = None) -> int:
    """Write every preview to ``--out`` (``make goldens``); with ``--config``, an adopter's."""
    from genonaut_monitoring import cli, settings

    parser = argparse.ArgumentParser(
        prog="python -m genonaut_monitoring.alerts.previews",
        description="Render every alert's notification to every receiver into a folder, "
        "one file per alert and receiver; files of alerts that are gone are removed.",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the previews")
    cli.add_config_options(parser)
    args = parser.parse_args(argv)
    try:
        cfg = cli.load_config(args.config, args.profile)
    except settings.SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if Amtool.found() is None:
        print(
            "error: amtool is not installed (apt-get install prometheus-alertmanager)",
            file=sys.stderr,
        )
        return 2
    previews, problems = render(cfg)
    if problems:
        print("\n".join(f"error: {p}" for p in problems), file=sys.stderr)
        return 1
    written = write(previews, args.out)
    print(f"wrote {len(written)} previews to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
