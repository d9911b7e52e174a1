"""Stand-ins for what cannot run on this machine: a mail server's inbox and Slack.

Both are real servers on loopback: :class:`SmtpCatcher` is aiosmtpd, which
Alertmanager delivers to over SMTP; :class:`SlackStandIn` answers the HTTP POST
that Alertmanager and Grafana send to a Slack incoming webhook.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    POST, including those answered 500 after ``fail_next(n)``.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[dict[str, Any]] = []
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
                        stand_in.requests.append(json.loads(body))
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
