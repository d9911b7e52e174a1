"""Structured logging: one JSON object per line, or readable text for a terminal.

Every line has ``timestamp`` (ISO 8601, UTC), ``level``, ``logger`` and
``message``, plus the fields passed in ``extra``. The middleware writes one
line per request on ``genonaut_monitoring.access``; lines logged during a request also
carry its ``request_id`` and ``route``. Every record is exactly one line in
both formats: JSON escapes what it must; the text format escapes control
characters and quotes values holding spaces, ``=``, quotes or backslashes
(logfmt style), so a client cannot forge a line or a ``key=value`` field.

    >>> configure_logging(level="INFO", fmt="json")  # or env LOG_LEVEL, LOG_FORMAT

How the access line stays cheap. In ``make bench`` (in-process, process CPU
time), the line written the standard way (``Logger.info`` with ``extra``, a
LogRecord, python-json-logger) added 37-41 µs to a request, more than all of
its metrics; written as below it adds 9-15 µs. Taken apart, most of the old cost
was python-json-logger's per-record work; a LogRecord costs 1.5 µs, encoding
the finished dict 2-4 µs, a write and flush 0.5 µs to /dev/null, 3 µs to a pipe.
So the choices are:

- One encoder, no python-json-logger: a dict built directly and encoded by the
  C encoder behind ``json.dumps``, made once (``ensure_ascii``, so nothing
  unescaped reaches the stream); the timestamp's second formatted once per
  second. Every record goes through it.
- For the access line only, no LogRecord at all when nothing could tell the
  difference: the access logger is enabled for INFO, and the only handler its
  records would reach is the one :func:`configure_logging` installed, with its
  own formatter and filter and no filter on the loggers in between. Then the
  middleware's fields go straight to the encoder and the handler's stream.
  Anything else a user configured (a handler on the access logger, a filter,
  pytest's caplog, another formatter) gets a real LogRecord through
  ``Logger.info``, exactly as before. Both routes write the same bytes.
- Written synchronously and flushed per line, as ``StreamHandler`` does, not
  through a queue and a writer thread. A thread would save the flush (under
  1 µs to /dev/null) but moves no CPU time off the process, needs a bounded
  buffer that drops lines when the reader stalls, a restart after ``fork``,
  and a final drain that SIGKILL never runs. Written like this, a request's
  line is in the stream once its response is sent, before the event loop
  takes the next step: no exit, SIGTERM or SIGKILL loses a finished request's
  line, and there is no buffer to bound and no line to drop. A log reader that
  cannot keep up slows the writer, which is how container runtimes expect
  stdout to behave (Docker's default ``mode=blocking``; ``mode=non-blocking``
  with ``max-buffer-size`` drops instead, where an operator prefers that).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from datetime import time as daytime
from json.encoder import encode_basestring_ascii
from typing import Any, TextIO

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

# (second, "YYYY-MM-DDTHH:MM:SS") of the last line: one datetime per second, not per line.
_second: tuple[int, str] = (-1, "")


def timestamp(created: float) -> str:
    """``created`` (seconds since the epoch) as ISO 8601 UTC in ms: ``...T12:00:00.123Z``."""
    global _second
    second = int(created)
    cached = _second
    if cached[0] != second:
        cached = _second = (
            second,
            datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        )
    return f"{cached[1]}.{int((created - second) * 1000):03d}Z"


def _json_default(value: Any) -> Any:
    """JSON for what ``json`` cannot encode (as python-json-logger did); else ``str()``."""
    if isinstance(value, (datetime, date, daytime)):
        return value.isoformat()
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, type):
        return value.__name__
    return str(value)


def _object_encoder() -> Callable[[Any], str]:
    """JSON of a dict, with ``ensure_ascii``: no raw control character or line separator.

    The C encoder behind ``json.dumps``, made once: ``json.dumps`` makes one per call.
    """
    try:
        from _json import make_encoder
    except ImportError:  # not CPython: the json module's own encoder, made once
        return json.JSONEncoder(default=_json_default).encode
    encoder = make_encoder(
        None, _json_default, encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    return lambda value: "".join(encoder(value, 0))


_encode_object = _object_encoder()
_BASE_KEYS = frozenset({"timestamp", "level", "logger", "message"})


def json_line(
    created: float, level: str, logger: str, message: str, fields: Mapping[str, Any]
) -> str:
    """One JSON object: timestamp, level, logger, message, then ``fields`` in order."""
    if _BASE_KEYS.isdisjoint(fields):
        # The four leading keys written directly, the fields encoded in one call.
        head = (
            f'{{"timestamp": "{timestamp(created)}", "level": {encode_basestring_ascii(level)}, '
            f'"logger": {encode_basestring_ascii(logger)}, '
            f'"message": {encode_basestring_ascii(message)}'
        )
        return f"{head}, {_encode_object(fields)[1:]}" if fields else head + "}"
    # An extra field named like a leading key replaces its value, as the dict would.
    line = {"timestamp": timestamp(created), "level": level, "logger": logger, "message": message}
    line.update(fields)
    return _encode_object(line)


# --- Text: one line, logfmt quoting -----------------------------------------------------

# Characters escaped inside quotes. Control characters include every line break
# str.splitlines() knows (\x0b, \x0c, \x1c-\x1e, \x85, \u2028, \u2029).
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES |= {0x2028: "\\u2028", 0x2029: "\\u2029", 0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}
_ESCAPES |= {ord("\\"): "\\\\", ord('"'): '\\"'}
_CONTROL = "\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029"
# A value needs quotes when empty or holding whitespace, "=", a quote, a backslash or a control.
_QUOTE_VALUE = re.compile(f'[\\s="\\\\{_CONTROL}]')
# A message may keep single spaces unquoted: the fields start after two.
_QUOTE_MESSAGE = re.compile(f'[="\\\\{_CONTROL}]|\\s\\s|^\\s|\\s$|[^\\S ]')
_NOT_KEY = re.compile(r"[^A-Za-z0-9_.-]")


def _quoted(text: str) -> str:
    return '"' + text.translate(_ESCAPES) + '"'


def text_value(value: Any) -> str:
    """A field value: bare when safe, else quoted with backslash escapes."""
    text = value if isinstance(value, str) else str(value)
    return _quoted(text) if not text or _QUOTE_VALUE.search(text) else text


def _text_message(message: str) -> str:
    return _quoted(message) if not message or _QUOTE_MESSAGE.search(message) else message


def _text_name(name: str) -> str:
    """A key, level or logger name: one token of safe characters."""
    return _NOT_KEY.sub("_", name) or "_"


def text_line(
    created: float, level: str, logger: str, message: str, fields: Mapping[str, Any]
) -> str:
    """``time LEVEL logger message  key=value ...`` (None values and ``event`` left out)."""
    line = (
        f"{timestamp(created)} {_text_name(level):<7} {_text_name(logger)} {_text_message(message)}"
    )
    pairs = " ".join(
        f"{_text_name(key)}={text_value(value)}"
        for key, value in fields.items()
        if value is not None and key != "event"
    )
    return f"{line}  {pairs}" if pairs else line


# --- Logging plumbing -------------------------------------------------------------------


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


class _LineFormatter(logging.Formatter):
    """A record as one line of :meth:`render`: its extras become fields."""

    @staticmethod
    def render(
        created: float, level: str, logger: str, message: str, fields: Mapping[str, Any]
    ) -> str:
        raise NotImplementedError

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRS}
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields["exc_info"] = record.exc_text
        if record.stack_info:
            fields["stack_info"] = self.formatStack(record.stack_info)
        message = record.getMessage()
        return self.render(record.created, record.levelname, record.name, message, fields)


class JsonLineFormatter(_LineFormatter):
    """One JSON object per line with the field names the dashboards and log queries rely on."""

    render = staticmethod(json_line)


class TextFormatter(_LineFormatter):
    """``time LEVEL logger message  key=value ...``: the same fields, for a terminal."""

    render = staticmethod(text_line)


_OUR_FORMATTERS = (JsonLineFormatter, TextFormatter)


class LineHandler(logging.StreamHandler[TextIO]):
    """The handler :func:`configure_logging` installs: a StreamHandler that also takes lines."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.context = RequestContextFilter()
        self.addFilter(self.context)

    def write_line(self, line: str, message: str) -> None:
        """Write one finished line and flush, as ``emit`` does for a record."""
        with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
            try:
                self.stream.write(line + self.terminator)
                self.stream.flush()
            except RecursionError:
                raise
            except Exception:
                self.handleError(
                    logging.makeLogRecord({"name": ACCESS_LOGGER.name, "msg": message})
                )


# The handler the last configure_logging() call installed.
_installed: LineHandler | None = None


def _direct_handler() -> LineHandler | None:
    """Our handler, when it is the only place an access record could go; else None.

    True when the handler has its own formatter and filter only, passes INFO, and
    the loggers from ``genonaut_monitoring.access`` up to where propagation stops have
    no filters and no other handler. Cheap: three loggers' lists, read per request.
    """
    handler = _installed
    if (
        handler is None
        or handler.level > logging.INFO
        or handler.formatter.__class__ not in _OUR_FORMATTERS
        or len(handler.filters) != 1
        or handler.filters[0] is not handler.context
    ):
        return None
    found = False
    logger: logging.Logger | None = ACCESS_LOGGER
    while logger is not None:
        if logger.filters:
            return None
        for each in logger.handlers:
            if each is not handler:
                return None
            found = True
        if not logger.propagate:
            break
        logger = logger.parent
    return handler if found else None


def log_request(fields: dict[str, Any], template: str, *args: Any) -> None:
    """Write the access line of one request: ``template % args`` and ``fields``.

    The caller checked ``ACCESS_LOGGER.isEnabledFor(logging.INFO)``.
    """
    handler = _direct_handler()
    if handler is None:
        ACCESS_LOGGER.info(template, *args, extra=fields)
        return
    message = template % args
    render = handler.formatter.render  # type: ignore[union-attr]  # checked in _direct_handler
    handler.write_line(render(time.time(), "INFO", ACCESS_LOGGER.name, message, fields), message)


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
    global _installed
    level = _level(level or os.environ.get("LOG_LEVEL") or "INFO", "LOG_LEVEL")
    fmt = (fmt or os.environ.get("LOG_FORMAT") or "json").lower()
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} (LOG_FORMAT): choose one of {', '.join(FORMATS)}")

    handler = LineHandler(stream or sys.stdout)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    _installed = handler
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
