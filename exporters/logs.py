"""Structured logging: one JSON object per line, or readable text for a terminal.

Every line has ``timestamp`` (ISO 8601, UTC), ``level``, ``logger`` and
``message``, plus the fields passed in ``extra``. The middleware writes one
line per request on ``genonaut_monitoring.access``; lines logged during a request also
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

from genonaut_monitoring.exporters.context import current

# Every logger of this project is under this one; configure_logging() sets its level.
PROJECT_LOGGER = "genonaut_monitoring"
ACCESS_LOGGER = logging.getLogger(f"{PROJECT_LOGGER}.access")
HANDLER_NAME = "genonaut_monitoring"
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
    level: str | None = None,
    fmt: str | None = None,
    stream: TextIO | None = None,
    *,
    root_level: str | None = None,
) -> logging.Handler:
    """Write log lines to ``stream`` (stdout) as JSON or text; returns the handler.

    ``level`` (env ``LOG_LEVEL``, default INFO) applies to this project's
    loggers (``genonaut_monitoring.*``: the access log, slow queries, faults)
    and uvicorn's; ``fmt`` is env ``LOG_FORMAT`` (json, or text for a terminal).

    What it changes in the host app, and nothing else:

    - adds one handler to the root logger (replacing the one an earlier call
      added), so every library's records that reach the root are formatted
      alike; the root logger's level stays as it was unless ``root_level`` is
      given, so other libraries' INFO lines stay off by default;
    - sets the level of the ``genonaut_monitoring`` and ``uvicorn`` loggers;
    - routes ``uvicorn`` and ``uvicorn.error`` through the root handler (their
      own handlers are removed) and disables ``uvicorn.access``: the access
      line on ``genonaut_monitoring.access`` replaces it, with route and request id.

        configure_logging()                          # JSON on stdout
        configure_logging("DEBUG", "text")           # for a terminal
        configure_logging(root_level="INFO")         # every library's INFO lines too
    """
    level = _level(level or os.environ.get("LOG_LEVEL") or "INFO", "LOG_LEVEL")
    fmt = (fmt or os.environ.get("LOG_FORMAT") or "json").lower()
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} (LOG_FORMAT): choose one of {', '.join(FORMATS)}")

    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestContextFilter())
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    if root_level is not None:
        root.setLevel(_level(root_level, "root_level"))
    logging.getLogger(PROJECT_LOGGER).setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn").setLevel(level)
    logging.getLogger("uvicorn.access").disabled = True
    return handler


def _level(name: str, where: str) -> str:
    level = name.upper()
    if level not in LEVELS:
        raise ValueError(f"log level {level!r} ({where}): choose one of {', '.join(LEVELS)}")
    return level
