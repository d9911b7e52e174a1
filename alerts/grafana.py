"""Grafana alerting provisioning (file format, apiVersion 1) mirroring Alertmanager's routing.

Grafana-managed alerts (made in the UI) then reach the same Slack channel and
mailbox, grouped and routed like the Prometheus alerts, with messages laid out
like Alertmanager's. Grafana's template data differs from Alertmanager's (it
computes each alert's silence and panel links), so its templates are its own:
``provisioning/grafana/*.tmpl``, provisioned to Grafana only, and only the
templates its contact points call. Secrets are referenced, never written:
Grafana expands ``$__env{SLACK_WEBHOOK_URL}`` from its own environment when it
reads the file (compose sets it on the container).
"""

from __future__ import annotations

from typing import Any

from genonaut_monitoring import PACKAGE_DIR, config
from genonaut_monitoring.alerts import gotemplate, routing
from genonaut_monitoring.alerts.alertmanager import go_template
from genonaut_monitoring.alerts.render import HEADER, dump

# Grafana's own notification templates (Go templates over Grafana's data).
TEMPLATES = PACKAGE_DIR / "provisioning" / "grafana"

ORG_ID = 1
# Grafana expands this when it loads the file; the URL is a secret and never written here.
SLACK_URL = "$__env{SLACK_WEBHOOK_URL}"
FOLDER = "grafana/provisioning/alerting"


def literal(text: str) -> str:
    """``text`` protected from provisioning's variable expansion, which reads ``$`` as a var."""
    return text.replace("$", "$$")


def contact_points(cfg: config.Config) -> dict[str, Any]:
    n = cfg.notifications
    points: list[dict[str, Any]] = [
        {
            "orgId": ORG_ID,
            "name": routing.SLACK,
            "receivers": [
                {
                    "uid": "genonaut-slack",
                    "type": "slack",
                    "disableResolveMessage": False,
                    # An incoming webhook posts to the channel it was made for, as the
                    # app it belongs to: Slack ignores recipient and username with one.
                    "settings": {
                        "url": SLACK_URL,
                        "title": literal(go_template("genonaut.grafana.title")),
                        "text": literal(go_template("genonaut.grafana.slack.text")),
                    },
                }
            ],
        },
        {
            "orgId": ORG_ID,
            "name": routing.EMAIL,
            "receivers": [
                {
                    "uid": "genonaut-email",
                    "type": "email",
                    "disableResolveMessage": False,
                    "settings": {
                        "addresses": n.email_to,
                        "singleEmail": True,
                        "subject": literal(go_template("genonaut.grafana.title")),
                        "message": literal(go_template("genonaut.grafana.email.message")),
                    },
                }
            ],
        },
    ]
    if n.watchdog_url:
        points.append(
            {
                "orgId": ORG_ID,
                "name": routing.WATCHDOG_RECEIVER,
                "receivers": [
                    {
                        "uid": "genonaut-watchdog",
                        "type": "webhook",
                        "disableResolveMessage": True,
                        "settings": {"url": literal(n.watchdog_url), "httpMethod": "POST"},
                    }
                ],
            }
        )
    return {"apiVersion": 1, "contactPoints": points}


def policies(cfg: config.Config) -> dict[str, Any]:
    """The notification policy tree: the same routes as alertmanager.yml."""
    i = cfg.intervals
    routes: list[dict[str, Any]] = []
    if cfg.notifications.watchdog_url:
        routes.append(
            {
                "receiver": routing.WATCHDOG_RECEIVER,
                "object_matchers": [["alertname", "=", routing.WATCHDOG]],
                "group_wait": "0s",
                "repeat_interval": i.group_interval,
            }
        )
    for index, (receiver, severities) in enumerate(routing.RECEIVER_SEVERITIES):
        route: dict[str, Any] = {
            "receiver": receiver,
            "object_matchers": [list(routing.severity_match(severities))],
        }
        if index < len(routing.RECEIVER_SEVERITIES) - 1:
            route["continue"] = True
        routes.append(route)
    return {
        "apiVersion": 1,
        "policies": [
            {
                "orgId": ORG_ID,
                "receiver": routing.DEFAULT_RECEIVER,
                "group_by": list(routing.GROUP_BY),
                "group_wait": i.group_wait,
                "group_interval": i.group_interval,
                "repeat_interval": i.repeat_interval,
                "routes": routes,
            }
        ],
    }


def notification_templates() -> dict[str, bytes]:
    """Grafana's notification templates, by file name."""
    return {path.name: path.read_bytes() for path in sorted(TEMPLATES.glob("*.tmpl"))}


def template_name(file_name: str) -> str:
    """The name a template file gets in Grafana: ``genonaut-`` and its stem."""
    return f"genonaut-{file_name.removesuffix('.tmpl')}"


def templates(cfg: config.Config) -> dict[str, Any]:
    """The notification templates Grafana's contact points call (and what those call).

    A template nothing calls stays out: Grafana would list it as unused. A call of
    a template no file defines raises ValueError naming it.
    """
    settings = [
        str(value)
        for point in contact_points(cfg)["contactPoints"]
        for receiver in point["receivers"]
        for value in receiver["settings"].values()
    ]
    provisioned = []
    for name, content in notification_templates().items():
        blocks = gotemplate.needed(gotemplate.defines(content.decode()), settings)
        if blocks:
            text = "\n\n".join(block.text for block in blocks) + "\n"
            provisioned.append({"orgId": ORG_ID, "name": template_name(name), "template": text})
    return {"apiVersion": 1, "templates": provisioned}


def outputs(cfg: config.Config) -> dict[str, bytes]:
    documents = {
        "contact-points.yaml": contact_points(cfg),
        "policies.yaml": policies(cfg),
        "templates.yaml": templates(cfg),
    }
    return {
        f"{FOLDER}/{name}": (HEADER + dump(document)).encode()
        for name, document in documents.items()
    }
