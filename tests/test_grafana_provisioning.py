"""Grafana provisioning files, field by field, against what Grafana 11.6's readers accept.

Grafana reads these files with Go's YAML decoder into fixed structs and drops any
key it does not know without a word, so a misspelt key is a setting silently
lost. The specs below transcribe the readers (read from Grafana's source):

- datasources: pkg/services/provisioning/datasources/types.go (upsertDataSourceFromConfigV1)
  and config_reader.go (access is proxy or direct, one default per organisation);
- dashboard providers: pkg/services/provisioning/dashboards/types.go (configs) and the
  file reader's options (path, foldersFromFilesStructure);
- alerting: pkg/services/provisioning/alerting (AlertingFileV1, ContactPointV1,
  ReceiverV1, NotificiationPolicyV1 over Alertmanager's route, TemplateV1) and the
  receiver settings of github.com/grafana/alerting (slack, email, webhook).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pytest
import yaml

from genonaut_monitoring import alerts, config, provision
from genonaut_monitoring.alerts import gotemplate, grafana
from genonaut_monitoring.alerts.alertmanager import notification_templates


@dataclass(frozen=True)
class Fields:
    """A mapping with these keys (each with its spec); ``required`` ones must be set."""

    keys: dict[str, Any]
    required: tuple[str, ...] = ()


@dataclass(frozen=True)
class ListOf:
    item: Any


@dataclass(frozen=True)
class OneOf:
    """A value from a fixed set."""

    values: tuple[str | int, ...]


def audit(value: Any, spec: Any, where: str) -> list[str]:
    """Every way ``value`` departs from ``spec``, each naming its place."""
    if isinstance(spec, Fields):
        if not isinstance(value, dict):
            return [f"{where}: a mapping is expected, not {value!r}"]
        found = [
            f"{where}: unknown key {key!r} (Grafana ignores it; known: {', '.join(spec.keys)})"
            for key in value
            if key not in spec.keys
        ]
        found += [f"{where}: {key!r} is required" for key in spec.required if not value.get(key)]
        for key, item in value.items():
            if key in spec.keys:
                found += audit(item, spec.keys[key], f"{where}.{key}")
        return found
    if isinstance(spec, ListOf):
        if not isinstance(value, list):
            return [f"{where}: a list is expected, not {value!r}"]
        return [p for i, item in enumerate(value) for p in audit(item, spec.item, f"{where}[{i}]")]
    if isinstance(spec, OneOf):
        ok = value in spec.values
        return (
            [] if ok else [f"{where}: {value!r} is not one of {', '.join(map(str, spec.values))}"]
        )
    # bool is an int in Python; YAML and Go tell them apart.
    if not isinstance(value, spec) or (spec is int and isinstance(value, bool)):
        return [f"{where}: {value!r} is not a {spec.__name__}"]
    return []


# --- datasources ----------------------------------------------------------------------

PROMETHEUS_JSON = Fields(
    {
        "timeInterval": str,
        "queryTimeout": str,
        "httpMethod": OneOf(("POST", "GET")),
        "prometheusType": OneOf(("Prometheus", "Cortex", "Mimir", "Thanos")),
        "prometheusVersion": str,
        "manageAlerts": bool,
        "cacheLevel": OneOf(("Low", "Medium", "High", "None")),
        "disableRecordingRules": bool,
        "incrementalQuerying": bool,
    }
)
ALERTMANAGER_JSON = Fields(
    {
        "implementation": OneOf(("prometheus", "mimir", "cortex")),
        "handleGrafanaManagedAlerts": bool,
    },
    required=("implementation",),
)
DATASOURCE = Fields(
    {
        "orgId": int,
        "orgName": str,
        "version": int,
        "name": str,
        "type": OneOf(("prometheus", "alertmanager")),
        "access": OneOf(("proxy", "direct")),
        "url": str,
        "user": str,
        "database": str,
        "basicAuth": bool,
        "basicAuthUser": str,
        "withCredentials": bool,
        "isDefault": bool,
        "correlations": list,
        "jsonData": dict,
        "secureJsonData": dict,
        "editable": bool,
        "uid": str,
    },
    # uid: dashboards and variables refer to it; without one Grafana derives one from the name.
    required=("name", "type", "url", "uid"),
)
DATASOURCES_FILE = Fields(
    {"apiVersion": OneOf((1,)), "datasources": ListOf(DATASOURCE), "deleteDatasources": list},
    required=("apiVersion",),
)
JSON_DATA = {"prometheus": PROMETHEUS_JSON, "alertmanager": ALERTMANAGER_JSON}

# --- dashboard providers ------------------------------------------------------------

PROVIDER = Fields(
    {
        "name": str,
        "type": OneOf(("file",)),
        "orgId": int,
        "folder": str,
        "folderUid": str,
        "editable": bool,
        "options": Fields({"path": str, "foldersFromFilesStructure": bool}, required=("path",)),
        "disableDeletion": bool,
        "updateIntervalSeconds": int,
        "allowUiUpdates": bool,
    },
    required=("name", "options"),
)
PROVIDERS_FILE = Fields(
    {"apiVersion": OneOf((1,)), "providers": ListOf(PROVIDER)}, required=("apiVersion",)
)

# --- alerting -----------------------------------------------------------------------

SETTINGS = {
    "slack": Fields(
        {
            "endpointUrl": str,
            "url": str,
            "token": str,
            "recipient": str,
            "text": str,
            "title": str,
            "username": str,
            "icon_emoji": str,
            "icon_url": str,
            "mentionChannel": OneOf(("", "here", "channel")),
            "mentionUsers": str,
            "mentionGroups": str,
        }
    ),
    "email": Fields(
        {"addresses": str, "singleEmail": bool, "message": str, "subject": str},
        required=("addresses",),
    ),
    "webhook": Fields(
        {
            "url": str,
            "httpMethod": OneOf(("POST", "PUT")),
            "maxAlerts": int,
            "username": str,
            "password": str,
            "authorization_scheme": str,
            "authorization_credentials": str,
            "title": str,
            "message": str,
        },
        required=("url",),
    ),
}
RECEIVER = Fields(
    {"uid": str, "type": OneOf(tuple(SETTINGS)), "settings": dict, "disableResolveMessage": bool},
    required=("uid", "type", "settings"),
)
CONTACT_POINT = Fields(
    {"orgId": int, "name": str, "receivers": ListOf(RECEIVER)}, required=("name", "receivers")
)
MATCHER = ListOf(str)  # [label, operator, value]
ROUTE_KEYS: dict[str, Any] = {
    "receiver": str,
    "group_by": ListOf(str),
    "continue": bool,
    "object_matchers": ListOf(MATCHER),
    "mute_time_intervals": ListOf(str),
    "active_time_intervals": ListOf(str),
    "group_wait": str,
    "group_interval": str,
    "repeat_interval": str,
}
ROUTE = Fields({**ROUTE_KEYS, "routes": list}, required=("receiver",))
POLICY = Fields({"orgId": int, **ROUTE_KEYS, "routes": ListOf(ROUTE)}, required=("receiver",))
TEMPLATE = Fields({"orgId": int, "name": str, "template": str}, required=("name", "template"))
ALERTING_FILE = Fields(
    {
        "apiVersion": OneOf((1,)),
        "groups": list,
        "deleteRules": list,
        "contactPoints": ListOf(CONTACT_POINT),
        "deleteContactPoints": list,
        "policies": ListOf(POLICY),
        "resetPolicies": list,
        "muteTimes": list,
        "deleteMuteTimes": list,
        "templates": ListOf(TEMPLATE),
        "deleteTemplates": list,
    },
    required=("apiVersion",),
)
OPERATORS = ("=", "!=", "=~", "!~")

PROFILES = sorted(config.PROFILES)


def _with_watchdog(cfg: config.Config) -> config.Config:
    return replace(cfg, notifications=replace(cfg.notifications, watchdog_url="http://hb.local/x"))


def files(cfg: config.Config) -> dict[str, Any]:
    """Every Grafana provisioning file the build writes, parsed, by path."""
    written = {**provision.outputs(cfg), **alerts.outputs(cfg)}
    return {
        path: yaml.safe_load(content)
        for path, content in written.items()
        if path.startswith("grafana/provisioning/")
    }


def _datasources(cfg: config.Config) -> list[dict[str, Any]]:
    data = files(cfg)[provision.PROVISIONING_TEMPLATES["grafana/datasources.yaml.j2"]]
    return list(data["datasources"])


@pytest.mark.parametrize("profile", PROFILES)
def test_datasources_file_has_only_what_the_reader_reads(profile: str) -> None:
    cfg = config.PROFILES[profile]
    path = provision.PROVISIONING_TEMPLATES["grafana/datasources.yaml.j2"]
    data = files(cfg)[path]
    problems = audit(data, DATASOURCES_FILE, path)
    for index, source in enumerate(data["datasources"]):
        spec = JSON_DATA[source["type"]]
        problems += audit(source.get("jsonData", {}), spec, f"{path}: datasources[{index}]")
    assert problems == []
    defaults = [s["name"] for s in data["datasources"] if s.get("isDefault")]
    assert len(defaults) == 1  # the reader refuses two defaults in one organisation
    uids = {s["uid"]: s["type"] for s in data["datasources"]}
    g = cfg.grafana
    assert uids == {g.prometheus_uid: "prometheus", g.alertmanager_uid: "alertmanager"}


@pytest.mark.parametrize("profile", PROFILES)
def test_dashboard_provider_file_has_only_what_the_reader_reads(profile: str) -> None:
    cfg = config.PROFILES[profile]
    path = provision.PROVISIONING_TEMPLATES["grafana/dashboards.yaml.j2"]
    data = files(cfg)[path]
    assert audit(data, PROVIDERS_FILE, path) == []
    names = [p["name"] for p in data["providers"]]
    assert len(names) == len(set(names))  # the reader refuses a repeated name
    for provider in data["providers"]:
        if provider["options"].get("foldersFromFilesStructure"):
            assert not provider.get("folder") and not provider.get("folderUid")
    assert [p["options"]["path"] for p in data["providers"]] == [cfg.grafana.dashboards_path]


def _routes(route: dict[str, Any]) -> list[dict[str, Any]]:
    return [route, *(r for child in route.get("routes", []) for r in _routes(child))]


CONFIGS = [*(config.PROFILES[p] for p in PROFILES), _with_watchdog(config.CONFIG)]


@pytest.mark.parametrize("cfg", CONFIGS, ids=[*PROFILES, "watchdog"])
def test_alerting_files_have_only_what_the_readers_read(cfg: config.Config) -> None:
    alerting = {p: d for p, d in files(cfg).items() if p.startswith(grafana.FOLDER)}
    assert sorted(alerting) == [
        f"{grafana.FOLDER}/{n}" for n in ("contact-points.yaml", "policies.yaml", "templates.yaml")
    ]
    problems = []
    points: set[str] = set()
    for path, data in alerting.items():
        problems += audit(data, ALERTING_FILE, path)
        for i, point in enumerate(data.get("contactPoints", [])):
            points.add(point["name"])
            for j, receiver in enumerate(point["receivers"]):
                where = f"{path}: contactPoints[{i}].receivers[{j}].settings"
                problems += audit(receiver["settings"], SETTINGS[receiver["type"]], where)
    assert problems == []
    policies = alerting[f"{grafana.FOLDER}/policies.yaml"]["policies"]
    for route in (r for policy in policies for r in _routes(policy)):
        assert route["receiver"] in points, route  # every receiver is a provisioned point
        for matcher in route.get("object_matchers", []):
            assert len(matcher) == 3 and matcher[1] in OPERATORS, matcher


def test_slack_settings_keep_only_what_an_incoming_webhook_uses() -> None:
    points = files(config.CONFIG)[f"{grafana.FOLDER}/contact-points.yaml"]["contactPoints"]
    (slack,) = [r for p in points for r in p["receivers"] if r["type"] == "slack"]
    # The URL is an incoming webhook: it posts to its own channel as its own app, so
    # recipient and username would be ignored (they matter only with a bot token).
    assert slack["settings"]["url"] == grafana.SLACK_URL == "$__env{SLACK_WEBHOOK_URL}"
    assert "token" not in slack["settings"]
    assert "recipient" not in slack["settings"] and "username" not in slack["settings"]


def test_the_module_documents_the_expansion_the_code_uses() -> None:
    assert grafana.__doc__ is not None
    assert "$__env{SLACK_WEBHOOK_URL}" in grafana.__doc__
    assert "$__file" not in grafana.__doc__


def test_grafana_is_given_only_the_templates_its_contact_points_call() -> None:
    written = files(_with_watchdog(config.CONFIG))
    settings = [
        str(value)
        for point in written[f"{grafana.FOLDER}/contact-points.yaml"]["contactPoints"]
        for receiver in point["receivers"]
        for value in receiver["settings"].values()
    ]
    (provisioned,) = written[f"{grafana.FOLDER}/templates.yaml"]["templates"]
    given = gotemplate.defines(provisioned["template"])
    called = {c for text in settings for c in gotemplate.calls(text)}
    # Everything called is given, with what it calls in turn; nothing else is.
    assert called <= set(given)
    assert {c for block in given.values() for c in block.calls} <= set(given)
    reached, todo = set(), list(called)
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(given[name].calls)
    assert set(given) == reached
    everything: dict[str, gotemplate.Define] = {}
    for content in grafana.notification_templates().values():
        everything.update(gotemplate.defines(content.decode()))
    for name, block in given.items():
        assert block.text == everything[name].text  # the very same text as Grafana's file
    # Alertmanager's templates are Alertmanager's alone.
    alertmanager = gotemplate.defines(notification_templates()["genonaut.tmpl"].decode())
    assert set(given).isdisjoint(alertmanager)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["datasources"][0].update(jsondata={}), "unknown key 'jsondata'"),
        (lambda d: d["datasources"][0].update(isDefault="yes"), "'yes' is not a bool"),
        (lambda d: d["datasources"][0].update(access="browser"), "'browser' is not one of"),
        (lambda d: d["datasources"][0].pop("uid"), "'uid' is required"),
    ],
)
def test_the_audit_reports_what_grafana_would_silently_drop(mutate: Any, expected: str) -> None:
    path = provision.PROVISIONING_TEMPLATES["grafana/datasources.yaml.j2"]
    data = files(config.CONFIG)[path]
    mutate(data)
    problems = audit(data, DATASOURCES_FILE, path)
    assert len(problems) == 1 and expected in problems[0], problems
    assert problems[0].startswith(f"{path}.datasources[0]")
