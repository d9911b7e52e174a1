"""alertmanager.yml to an AlertmanagerConfig, and back as the Prometheus Operator merges it.

The AlertmanagerConfig is converted from the very ``alertmanager.yml`` the files
target writes, so its routes, receivers and inhibition rules cannot drift from it.
Secrets become references to Kubernetes Secrets (``config.Kubernetes``); settings
that only Alertmanager's global section holds move onto each receiver (SMTP) or are
left to the Alertmanager's own config (``resolve_timeout``, ``templates``: the
templates ship as a ConfigMap the Alertmanager mounts, see the README).

:func:`to_alertmanager` goes the other way, as the operator does when it merges an
AlertmanagerConfig (prometheus-operator ``pkg/alertmanager/amcfg.go``): receivers are
renamed ``<namespace>/<name>/<receiver>``; the top route becomes a child of the
Alertmanager's own root route, gains a ``namespace="<namespace>"`` matcher and
``continue: true``; inhibition rules gain the namespace matcher on both sides. The
result is what ``amtool`` checks and routes with.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from genonaut_monitoring import config

API_VERSION = "monitoring.coreos.com/v1alpha1"
# Where to_alertmanager() says a Secret's value is read from; only amtool reads it.
SECRETS_DIR = "/etc/alertmanager/secrets"
# kube-prometheus-stack's own root route and receiver, which AlertmanagerConfigs hang under.
ROOT_RECEIVER = "null"

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')


class Unconvertible(ValueError):
    """alertmanager.yml holds something this module has no AlertmanagerConfig form for."""


def parse_matcher(text: str) -> dict[str, str]:
    """``'severity=~"a|b"'`` as the CRD's ``{name, matchType, value}``."""
    found = _MATCHER.fullmatch(text)
    if found is None:
        raise Unconvertible(f'matcher {text!r} is not name<op>"value"')
    name, op, value = found.groups()
    value = re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m[1], m[1]), value)
    return {"name": name, "matchType": op, "value": value}


def matcher_text(matcher: Mapping[str, str]) -> str:
    """The operator's ``Matcher.String()``: name, operator, the value quoted and escaped."""
    value = matcher["value"].replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'{matcher["name"]}{matcher["matchType"]}"{value}"'


def _take(table: Mapping[str, Any], fields: Mapping[str, str], where: str) -> dict[str, Any]:
    """``table``'s keys renamed by ``fields`` (snake_case to camelCase); others refused."""
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise Unconvertible(
            f"{where}: {', '.join(unknown)} has no AlertmanagerConfig form in "
            "genonaut_monitoring/kubernetes/amconfig.py; add it there"
        )
    return {fields[k]: v for k, v in table.items()}


_ROUTE = {
    "receiver": "receiver",
    "group_by": "groupBy",
    "group_wait": "groupWait",
    "group_interval": "groupInterval",
    "repeat_interval": "repeatInterval",
    "matchers": "matchers",
    "continue": "continue",
    "routes": "routes",
}
_SLACK = {
    "send_resolved": "sendResolved",
    "api_url_file": "apiURL",
    "channel": "channel",
    "username": "username",
    "color": "color",
    "title": "title",
    "title_link": "titleLink",
    "text": "text",
    "fallback": "fallback",
    "callback_id": "callbackId",
    "footer": "footer",
}
_EMAIL = {
    "send_resolved": "sendResolved",
    "to": "to",
    "headers": "headers",
    "html": "html",
    "text": "text",
}
# Global SMTP settings, which an AlertmanagerConfig sets on each email receiver.
_SMTP = {
    "smtp_smarthost": "smarthost",
    "smtp_from": "from",
    "smtp_require_tls": "requireTLS",
    "smtp_auth_username": "authUsername",
    "smtp_auth_password_file": "authPassword",
}
_WEBHOOK = {"send_resolved": "sendResolved", "url": "url"}
_INHIBIT = {"source_matchers": "sourceMatch", "target_matchers": "targetMatch", "equal": "equal"}
_GLOBAL = {"resolve_timeout": "", **_SMTP}
_TOP = {"global": "", "templates": "", "route": "", "receivers": "", "inhibit_rules": ""}


def _route(route: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = _take(route, _ROUTE, where)
    if "matchers" in out:
        out["matchers"] = [parse_matcher(m) for m in out["matchers"]]
    if "routes" in out:
        out["routes"] = [_route(r, f"{where}.routes[{i}]") for i, r in enumerate(out["routes"])]
    return out


def _secret(ref: config.SecretRef) -> dict[str, str]:
    return {"name": ref.name, "key": ref.key}


def _receiver(
    receiver: Mapping[str, Any], smtp: Mapping[str, Any], cfg: config.Config, where: str
) -> dict[str, Any]:
    kinds = {"name", "slack_configs", "email_configs", "webhook_configs"}
    _take(receiver, {k: k for k in kinds}, where)
    out: dict[str, Any] = {"name": receiver["name"]}
    for index, slack in enumerate(receiver.get("slack_configs") or []):
        item = _take(slack, _SLACK, f"{where}.slack_configs[{index}]")
        if "apiURL" in item:  # the file Alertmanager reads becomes the Secret it comes from
            item["apiURL"] = _secret(cfg.kubernetes.slack_webhook)
        out.setdefault("slackConfigs", []).append(item)
    for index, email in enumerate(receiver.get("email_configs") or []):
        item = {**smtp, **_take(email, _EMAIL, f"{where}.email_configs[{index}]")}
        if "authPassword" in item:
            item["authPassword"] = _secret(cfg.kubernetes.smtp_password)
        if "headers" in item:
            item["headers"] = [{"key": k, "value": v} for k, v in sorted(item["headers"].items())]
        out.setdefault("emailConfigs", []).append(item)
    for index, hook in enumerate(receiver.get("webhook_configs") or []):
        item = _take(hook, _WEBHOOK, f"{where}.webhook_configs[{index}]")
        out.setdefault("webhookConfigs", []).append(item)
    return out


def to_spec(alertmanager: Mapping[str, Any], cfg: config.Config) -> dict[str, Any]:
    """An AlertmanagerConfig's ``spec`` from a parsed alertmanager.yml."""
    _take(alertmanager, {k: k for k in _TOP}, "alertmanager.yml")
    global_ = alertmanager.get("global") or {}
    _take(global_, {k: k for k in _GLOBAL}, "alertmanager.yml global")
    smtp = {_SMTP[k]: v for k, v in global_.items() if k in _SMTP}
    spec: dict[str, Any] = {"route": _route(alertmanager["route"], "alertmanager.yml route")}
    spec["receivers"] = [
        _receiver(r, smtp, cfg, f"alertmanager.yml receivers[{i}]")
        for i, r in enumerate(alertmanager.get("receivers") or [])
    ]
    rules = []
    for index, rule in enumerate(alertmanager.get("inhibit_rules") or []):
        item = _take(rule, _INHIBIT, f"alertmanager.yml inhibit_rules[{index}]")
        for side in ("sourceMatch", "targetMatch"):
            if side in item:
                item[side] = [parse_matcher(m) for m in item[side]]
        rules.append(item)
    if rules:
        spec["inhibitRules"] = rules
    return spec


def secret_refs(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    """Secret name -> the keys an AlertmanagerConfig ``spec`` reads (they must exist first)."""
    found: dict[str, set[str]] = {}
    for receiver in spec.get("receivers", []):
        for item in [*receiver.get("slackConfigs", []), *receiver.get("emailConfigs", [])]:
            for field in ("apiURL", "authPassword"):
                if field in item:
                    found.setdefault(item[field]["name"], set()).add(item[field]["key"])
    return {name: sorted(keys) for name, keys in sorted(found.items())}


# --- back to alertmanager.yml ------------------------------------------------------------

_BACK = {
    "route": {v: k for k, v in _ROUTE.items()},
    "slack": {v: k for k, v in _SLACK.items()},
    # An email receiver's own keys are the global ones without "smtp_".
    "email": {
        **{v: k.removeprefix("smtp_") for k, v in _SMTP.items()},
        **{v: k for k, v in _EMAIL.items()},
    },
    "webhook": {v: k for k, v in _WEBHOOK.items()},
}


def secret_path(ref: Mapping[str, str]) -> str:
    """Where the converted config reads a Secret's key (the operator inlines the value)."""
    return f"{SECRETS_DIR}/{ref['name']}/{ref['key']}"


def to_alertmanager(
    spec: Mapping[str, Any],
    namespace: str,
    name: str,
    templates: list[str] | None = None,
    operator: bool = True,
) -> dict[str, Any]:
    """alertmanager.yml for ``spec``: as the operator merges it, or (``operator=False``) as is."""
    rename: Callable[[str], str] = (lambda r: f"{namespace}/{name}/{r}") if operator else str

    def route(r: Mapping[str, Any]) -> dict[str, Any]:
        out = {_BACK["route"][k]: v for k, v in r.items()}
        out["receiver"] = rename(r["receiver"])
        if "matchers" in r:
            out["matchers"] = [matcher_text(m) for m in r["matchers"]]
        if "routes" in r:
            out["routes"] = [route(child) for child in r["routes"]]
        return out

    def receiver(r: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"name": rename(r["name"])}
        for kind, key in (("slack", "slackConfigs"), ("email", "emailConfigs")):
            for item in r.get(key, []):
                converted = {_BACK[kind][k]: v for k, v in item.items()}
                if "api_url_file" in converted:
                    converted["api_url_file"] = secret_path(item["apiURL"])
                if "auth_password_file" in converted:
                    converted["auth_password_file"] = secret_path(item["authPassword"])
                if "headers" in converted:
                    converted["headers"] = {h["key"]: h["value"] for h in item["headers"]}
                out.setdefault(f"{kind}_configs", []).append(converted)
        for item in r.get("webhookConfigs", []):
            converted = {_BACK["webhook"][k]: v for k, v in item.items()}
            out.setdefault("webhook_configs", []).append(converted)
        return out

    top = route(spec["route"])
    same_namespace = matcher_text({"name": "namespace", "matchType": "=", "value": namespace})
    inhibit = []
    for rule in spec.get("inhibitRules", []):
        converted = {"equal": list(rule.get("equal", []))}
        for side, key in (("sourceMatch", "source_matchers"), ("targetMatch", "target_matchers")):
            converted[key] = [matcher_text(m) for m in rule.get(side, [])]
            if operator:
                converted[key].append(same_namespace)
        inhibit.append(converted)
    receivers = [receiver(r) for r in spec.get("receivers", [])]
    if operator:
        top["matchers"] = [*top.get("matchers", []), same_namespace]
        top["continue"] = True
        root = {"receiver": ROOT_RECEIVER, "routes": [top]}
        receivers.insert(0, {"name": ROOT_RECEIVER})
    else:
        root = top
    out: dict[str, Any] = {"route": root, "receivers": receivers}
    if inhibit:
        out["inhibit_rules"] = inhibit
    if templates:
        out["templates"] = templates
    return out
