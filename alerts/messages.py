"""A notification's messages, rendered by ``amtool template render`` and assembled per receiver.

``amtool template render`` runs Alertmanager's own template code: Go's
text/template (html/template for an email's HTML part), Alertmanager's
functions and its data type (template.Data). Each field is rendered from the
template string the built configuration gives it (alertmanager.yml, Grafana's
contact points), and the fields are assembled as the receiver sends them:

* ``email`` (Alertmanager 0.25 email_configs): Subject, From and To headers,
  a text/plain and a text/html part.
* ``slack`` (slack_configs): the JSON posted to the webhook, with the keys and
  the omitempty rules of Alertmanager's Slack notifier.
* ``grafana-email``, ``grafana-slack``: the subject and message, title and text
  settings of Grafana's contact points (Grafana lays the email message out in
  its own HTML, which is not rendered here).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Alertmanager's receivers, then Grafana's contact points.
RECEIVERS = ("email", "slack", "grafana-email", "grafana-slack")
# Fields are rendered in one amtool run, joined by a character no template writes.
_SEPARATOR = "\x1e"
_RENDERED: dict[str, str] = {}
# What Alertmanager's Slack notifier marks as mrkdwn when the config does not say.
_SLACK_MRKDWN_DEFAULT = ["fallback", "pretext", "text"]

Message = dict[str, Any]


class RenderError(Exception):
    """amtool refused a template: the message is its own, without the ``amtool:`` prefix."""


@dataclass(frozen=True)
class Amtool:
    """``amtool template render`` over a set of template files.

    >>> Amtool([Path("out/alertmanager/templates/genonaut.tmpl")]).render(
    ...     '{{ template "genonaut.title" . }}', data)
    '[FIRING:1] ApiHighErrorRate (critical)'
    """

    templates: Sequence[Path]
    binary: str = "amtool"

    @staticmethod
    def found() -> str | None:
        return shutil.which("amtool")

    def render(self, text: str, data: Mapping[str, Any], html: bool = False) -> str:
        """``text`` rendered with ``data`` (Alertmanager's template.Data, as JSON)."""
        payload = json.dumps(data, sort_keys=True)
        # Rendering is a pure function of the templates, the text and the data: the same
        # inputs (say, builds that differ only in dashboards) are rendered once a process.
        key = hashlib.sha256(
            b"\0".join([*(p.read_bytes() for p in self.templates), text.encode(), payload.encode()])
        ).hexdigest() + ("h" if html else "t")
        if key not in _RENDERED:
            if len(_RENDERED) > 10_000:  # a bound for long-lived processes
                _RENDERED.clear()
            _RENDERED[key] = self._run(text, payload, html)
        return _RENDERED[key]

    def _run(self, text: str, payload: str, html: bool) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as file:
            file.write(payload)
            file.flush()
            result = subprocess.run(
                [
                    self.binary, "template", "render",
                    *(f"--template.glob={path}" for path in self.templates),
                    f"--template.data={file.name}",
                    f"--template.type={'html' if html else 'text'}",
                    f"--template.text={text}",
                ],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
        if result.returncode != 0:
            raise RenderError(
                (result.stderr or result.stdout).strip().removeprefix("amtool: error: ")
            )
        return result.stdout

    def fields(
        self, templates: Mapping[str, str], data: Mapping[str, Any], html: bool = False
    ) -> dict[str, str]:
        """Each template string rendered, in one amtool run."""
        names = list(templates)
        rendered = self.render(_SEPARATOR.join(templates[n] for n in names), data, html)
        return dict(zip(names, rendered.split(_SEPARATOR), strict=True))


def _receiver(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    for receiver in config.get("receivers") or []:
        if receiver.get("name") == name:
            return dict(receiver)
    raise RenderError(f"alertmanager.yml has no receiver {name!r}")


def email(amtool: Amtool, config: Mapping[str, Any], data: Mapping[str, Any]) -> Message:
    """The email Alertmanager sends to the ``email`` receiver for ``data``."""
    (conf,) = _receiver(config, "email")["email_configs"]
    sender = conf.get("from") or config["global"]["smtp_from"]
    text = amtool.fields(
        {
            "Subject": conf["headers"]["Subject"],
            "From": sender,
            "To": conf["to"],
            "text/plain": conf["text"],
        },
        data,
    )
    html = amtool.fields({"text/html": conf["html"]}, data, html=True)
    return {**text, **html}


def slack(amtool: Amtool, config: Mapping[str, Any], data: Mapping[str, Any]) -> Message:
    """The JSON Alertmanager posts to the ``slack`` receiver's webhook for ``data``."""
    (conf,) = _receiver(config, "slack")["slack_configs"]
    keys = ("channel", "username", "title", "title_link", "text", "fallback", "callback_id")
    f = amtool.fields({k: conf[k] for k in (*keys, "footer", "color") if k in conf}, data)
    # Alertmanager's attachment and request structs, in their order; omitempty ones left
    # out when empty (pretext, icons: Alertmanager's default templates for them are empty).
    attachment = {
        "title": f.get("title", ""),
        "title_link": f.get("title_link", ""),
        "text": f.get("text", ""),
        "fallback": f.get("fallback", ""),
        "callback_id": f.get("callback_id", ""),
        "footer": f.get("footer", ""),
        "color": f.get("color", ""),
        "mrkdwn_in": conf.get("mrkdwn_in") or _SLACK_MRKDWN_DEFAULT,
    }
    for omitempty in ("title", "title_link", "color"):
        if not attachment[omitempty]:
            del attachment[omitempty]
    payload: Message = {k: f[k] for k in ("channel", "username") if f.get(k)}
    payload["attachments"] = [attachment]
    return payload


def grafana(
    amtool: Amtool, contact_points: Mapping[str, Any], receiver: str, data: Mapping[str, Any]
) -> Message:
    """The templated settings of Grafana's contact point ``grafana-<type>`` for ``data``."""
    kind = receiver.removeprefix("grafana-")
    for point in contact_points.get("contactPoints") or []:
        for entry in point.get("receivers") or []:
            if entry.get("type") == kind:
                settings = entry["settings"]
                keys = ("subject", "message") if kind == "email" else ("title", "text")
                # Provisioning expands $VAR in settings; $$ is how the file writes a $.
                return amtool.fields(
                    {k: settings[k].replace("$$", "$") for k in keys if k in settings}, data
                )
    raise RenderError(f"contact-points.yaml has no {kind} contact point")


# --- What a message must not contain -------------------------------------------------------

_EMPTY_TEXT_FIELD = re.compile(r"^\*?[A-Z][A-Za-z ]*:\*?[ \t]*$", re.M)
_EMPTY_SLACK_FIELD = re.compile(r"\*[A-Z][A-Za-z ]*:\*[ \t]*(?=\*|$)", re.M)
_EMPTY_SLACK_LINK = re.compile(r"<\|[^>]*>|<[^>|]*\|>")
_EMPTY_HTML = re.compile(r"<(td|th)[^>]*>\s*</\1>|href=\"\"")


def problems(message: Mapping[str, Any]) -> list[str]:
    """Fields of a message that are empty, show ``<no value>``, or hold an empty field."""
    found = []
    strings = dict(message)
    for attachment in message.get("attachments") or []:
        strings.update({f"attachments.{k}": v for k, v in attachment.items()})
    for name, value in strings.items():
        if not isinstance(value, str):
            continue
        if not value.strip():
            found.append(f"{name} is empty")
        elif "<no value>" in value:
            found.append(f"{name} shows <no value>")
        else:
            for pattern in (_EMPTY_TEXT_FIELD, _EMPTY_SLACK_FIELD, _EMPTY_SLACK_LINK, _EMPTY_HTML):
                for match in pattern.finditer(value):
                    found.append(f"{name} has an empty field: {match.group(0).strip()!r}")
    return found
