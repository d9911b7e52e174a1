"""Helpers for the logging tests: the two routes of the access line, and a text-line parser."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from genonaut_monitoring.exporters import configure_logging, logs
from tests.apps.driver import get

ROUTES = ("direct", "record")


class Logged:
    """Lines configure_logging() wrote, and requests served on one route of the access line.

    ``direct``: our handler alone on the root logger, as in production, so the
    access line skips the LogRecord. ``record``: pytest's capture handlers are
    on the root too, so the access line goes through ``Logger.info``.
    """

    def __init__(self, route: str, fmt: str = "json") -> None:
        self.route = route
        self.stream = io.StringIO()
        self.handler = configure_logging(level="INFO", fmt=fmt, stream=self.stream)

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Within: the root logger's handlers as this route needs them (checked)."""
        root = logging.getLogger()
        saved = list(root.handlers)
        if self.route == "direct":
            root.handlers[:] = [self.handler]
        try:
            assert (logs._direct_handler() is self.handler) == (self.route == "direct")
            yield
        finally:
            root.handlers[:] = saved

    def get(self, app: FastAPI, *urls: str, **kwargs: Any) -> list[httpx.Response]:
        with self.serving():
            return get(app, *urls, **kwargs)

    def lines(self, logger: str = "genonaut_monitoring.access") -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self.stream.getvalue().splitlines()]
        return [line for line in parsed if line["logger"] == logger]


# The text format's grammar: "time LEVEL logger message  key=value key=value".
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_NAME = r"[A-Za-z0-9_.-]+"
_LINE = re.compile(
    rf"(?P<stamp>\S+) (?P<level>{_NAME}) +(?P<logger>{_NAME}) "
    rf'(?P<message>{_QUOTED}|[^"=\\]*?)(?:  (?P<fields>.+))?'
)
_PAIR = re.compile(rf'({_NAME})=({_QUOTED}|[^\s"=\\]+)(?: |$)')
_ESCAPE = re.compile(r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|.)")
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"'}


def _unquote(token: str) -> str:
    if not token.startswith('"'):
        return token

    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if code[0] in "xu" and len(code) > 1 else _SIMPLE[code]

    return _ESCAPE.sub(one, token[1:-1])


def parse_text_line(line: str) -> dict[str, str]:
    """A text-format line back into its fields (every value a string); fails on any other."""
    found = _LINE.fullmatch(line)
    assert found is not None, f"not a text log line: {line!r}"
    parsed = {
        "timestamp": found["stamp"],
        "level": found["level"],
        "logger": found["logger"],
        "message": _unquote(found["message"]),
    }
    rest, position = found["fields"] or "", 0
    while position < len(rest):
        pair = _PAIR.match(rest, position)
        assert pair is not None, f"not a key=value field at {rest[position:]!r} in {line!r}"
        assert pair[1] not in parsed, f"field {pair[1]!r} twice in {line!r}"
        parsed[pair[1]] = _unquote(pair[2])
        position = pair.end()
    return parsed
