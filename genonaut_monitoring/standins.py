"""Stand-ins for what cannot run on this machine: a mail server's inbox and Slack.

Both are real servers on loopback: :class:`SmtpCatcher` is aiosmtpd, which
Alertmanager delivers to over SMTP; :class:`SlackStandIn` answers the HTTP POST
that Alertmanager and Grafana send to a Slack incoming webhook, and keeps each
payload as a numbered JSON file, so a warning that only goes to Slack can be
read locally (``.run/slack/0001.json`` under ``genonaut-monitoring up``).
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class SmtpCatcher:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it receives."""

    def __init__(self, port: int) -> None:
        from aiosmtpd.controller import Controller

        self.port = port
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


class SlackStandIn:
    """Receives what Alertmanager posts to a Slack incoming webhook.

    ``requests`` holds the JSON payloads answered 200; ``attempts`` counts every
    POST, including those answered 500 after ``fail_next(n)``. With a ``folder``,
    each accepted payload is also written there as ``0001.json``, ``0002.json``,
    ...; numbering continues after the files already there, so nothing is
    overwritten across runs. ``paths`` lists the files written.

        >>> slack = SlackStandIn(port, folder=Path(".run/slack"))
        >>> slack.start()  # point Alertmanager's slack_configs at slack.url
    """

    def __init__(self, port: int, folder: Path | None = None) -> None:
        self.port = port
        self.folder = folder
        self.requests: list[dict[str, Any]] = []
        self.paths: list[Path] = []
        self._next = 0  # the next file number, found on the first write
        self.attempts = 0
        self._failures_left = 0
        self._lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with stand_in._lock:
                    stand_in.attempts += 1
                    fail = stand_in._failures_left > 0
                    if fail:
                        stand_in._failures_left -= 1
                    elif self.headers.get("Content-Type", "").startswith("application/json"):
                        stand_in._keep(json.loads(body))
                    else:
                        fail = True  # Slack rejects anything but JSON
                self.send_response(500 if fail else 200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"internal_error" if fail else b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _keep(self, payload: dict[str, Any]) -> None:
        """Hold ``payload`` and write it to the next numbered file (caller holds the lock)."""
        self.requests.append(payload)
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self._next:
            taken = [int(p.stem) for p in self.folder.glob("*.json") if p.stem.isdigit()]
            self._next = max(taken, default=0) + 1
        path = self.folder / f"{self._next:04d}.json"
        self._next += 1
        # Written aside and renamed, so a reader never sees half a payload.
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        partial.replace(path)
        self.paths.append(path)

    @staticmethod
    def url_for(port: int) -> str:
        """The webhook URL for a stand-in on ``port`` (Slack's path shape; any path works)."""
        return f"http://127.0.0.1:{port}/services/T0000000/B0000000/standin"

    @property
    def url(self) -> str:
        return self.url_for(self.port)

    def fail_next(self, n: int) -> None:
        """Answer the next ``n`` posts with HTTP 500, as Slack does when it is unwell."""
        with self._lock:
            self._failures_left = n

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
