"""Structured logging: one JSON object per line, or readable text for a terminal.

Every line has ``timestamp`` (ISO 8601, UTC), ``level``, ``logger`` and
``message``, plus the fields passed in ``extra``. The middleware writes one
line per request on ``genonaut.access``; lines logged during a request also
carry its ``request_id`` and ``route``.

    >>> configure_logging(level="INFO", fmt="json")  # or env LOG_LEVEL, LOG_FORMAT
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

from exporters.context import current

ACCESS_LOGGER = logging.getLogger("genonaut.access")
FORMATS = ("json", "text")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` and ``route`` to records logged inside a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        state = current()
        if state is not None:
            if not hasattr(record, "request_id"):
                record.request_id = state.request_id
            if not hasattr(record, "route"):
                try:
                    record.route = state.route
                except Exception:
                    record.route = None
        return True


class JsonLineFormatter(JsonFormatter):
    """python-json-logger with the field names the dashboards and log queries rely on."""

    def __init__(self) -> None:
        super().__init__(
            "%(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = _timestamp(record)
        super().add_fields(log_data, record, message_dict)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger message key=value ...``: the same fields, for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _RECORD_ATTRS and key != "event" and value is not None
        )
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name} {record.getMessage()}"
        if extras:
            line = f"{line}  {extras}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(
    level: str | None = None, fmt: str | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Send all logging to ``stream`` (stdout) as JSON lines or text; returns the handler.

    ``level`` defaults to env ``LOG_LEVEL`` (INFO), ``fmt`` to env ``LOG_FORMAT``
    (json). Calling it again replaces the handler it installed before.
    Uvicorn's own loggers are routed through it too, and its access log is
    silenced: ``genonaut.access`` replaces it with the route and request id.

        configure_logging()                 # JSON on stdout, level from LOG_LEVEL
        configure_logging("DEBUG", "text")  # for a terminal
    """
    level = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    fmt = (fmt or os.environ.get("LOG_FORMAT") or "json").lower()
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} (LOG_LEVEL): choose one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} (LOG_FORMAT): choose one of {', '.join(FORMATS)}")

    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestContextFilter())
    handler.set_name("genonaut")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "genonaut"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    return handler
