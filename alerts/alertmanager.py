"""alertmanager.yml and its notification templates, rendered from provisioning/alertmanager/."""

from __future__ import annotations

import jinja2

from genonaut_monitoring import PACKAGE_DIR, config
from genonaut_monitoring.alerts import routing, slo

TEMPLATES = PACKAGE_DIR / "provisioning" / "alertmanager"


def single_quoted(text: str) -> str:
    """A YAML single-quoted scalar (only ' needs escaping, by doubling)."""
    return "'" + text.replace("'", "''") + "'"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["sq"] = single_quoted
    return env


def go_template(name: str) -> str:
    """A Go-template call of one of the named templates in the *.tmpl files."""
    return f'{{{{ template "{name}" . }}}}'


def config_yaml(cfg: config.Config) -> str:
    """The text of alertmanager.yml for ``cfg``."""
    template = _environment().get_template("alertmanager.yml.j2")
    return template.render(
        intervals=cfg.intervals,
        notifications=cfg.notifications,
        default_receiver=routing.DEFAULT_RECEIVER,
        slack_receiver=routing.SLACK,
        email_receiver=routing.EMAIL,
        group_by=list(routing.GROUP_BY),
        watchdog=routing.WATCHDOG,
        watchdog_receiver=routing.WATCHDOG_RECEIVER,
        target_down=routing.TARGET_DOWN,
        slo_page=slo.FAST_BURN,
        slo_ticket=slo.SLOW_BURN,
        severity_routes=[
            {"receiver": receiver, "matcher": routing.severity_matcher(severities)}
            for receiver, severities in routing.RECEIVER_SEVERITIES
        ],
        tmpl=go_template,
    )


def notification_templates() -> dict[str, bytes]:
    """The Go notification templates, by file name."""
    return {path.name: path.read_bytes() for path in sorted(TEMPLATES.glob("*.tmpl"))}


def outputs(cfg: config.Config) -> dict[str, bytes]:
    files = {"alertmanager/alertmanager.yml": config_yaml(cfg).encode()}
    for name, content in notification_templates().items():
        files[f"alertmanager/templates/{name}"] = content
    return files


def problems(cfg: config.Config) -> list[str]:
    """Settings Alertmanager would accept but that cannot work; each names the config key."""
    n = cfg.notifications
    found = []
    if n.smtp_auth_username and not n.smtp_password_file:
        found.append(
            "config.Notifications: smtp_auth_username is set but smtp_password_file is empty; "
            "name the file Alertmanager reads the SMTP password from"
        )
    for key in ("slack_api_url_file", "smtp_password_file"):
        value = getattr(n, key)
        # Alertmanager reads these relative to its working directory, not the config file.
        if value and not value.startswith("/"):
            found.append(f"config.Notifications.{key} must be an absolute path, not {value!r}")
    return found
