"""Every log line is one line: nothing a client sends can break a line or forge a field.

Every control character (C0, DEL, C1, the Unicode line and paragraph
separators) and a forged ``key=value`` travel through the path, the query, a
header and the request id, in both formats and on both routes of the access
line; each line written must parse back to exactly the values sent.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI, Header
from prometheus_client import CollectorRegistry

from genonaut_monitoring.exporters import instrument
from genonaut_monitoring.exporters.logs import json_line, log_request, text_line
from tests.apps.driver import raw_get
from tests.conftest import ROOT, free_port
from tests.logcheck import ROUTES, Logged, parse_text_line

CONTROLS = "".join(chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029))
# A field and a whole access line, forged; quotes and backslashes to confuse an unescaper.
FORGED = (
    ' level=ERROR  request_id=forged status=500 "q\\"uote" back\\slash ='
    "\n2030-01-01T00:00:00.000Z ERROR   genonaut_monitoring.access GET /admin 200 0.1ms"
    "  request_id=forged"
)
HOSTILE = f"x{CONTROLS}{FORGED}"
# A header value is bytes; Starlette decodes it as latin-1, so C1 controls arrive as such.
HEADER = HOSTILE.encode("utf-8")
APP_LOGGER = "genonaut.app"


def echo_app(registry: CollectorRegistry) -> FastAPI:
    """Logs what the client sent, as an app would: in the message, in fields, in a traceback."""
    app = FastAPI()

    @app.get("/echo")
    async def echo(q: str = "", x_note: str = Header("")) -> dict[str, int]:
        log = logging.getLogger(APP_LOGGER)
        log.warning("echo %s", q, extra={"q": q, "note": x_note})
        try:
            raise ValueError(q)
        except ValueError:
            log.exception("failed on %s", q)
        return {"length": len(q)}

    instrument(app, registry=registry)
    return app


def _send(logged: Logged) -> None:
    """The query and two headers to a route that logs them; then the path (no route has it)."""
    app = echo_app(CollectorRegistry())
    hostile_headers = [(b"x-note", HEADER), (b"x-request-id", HEADER)]
    with logged.serving():
        echoed = raw_get(app, "/echo", f"q={quote(HOSTILE)}".encode(), hostile_headers)
        unmatched = raw_get(app, f"/echo/{HOSTILE}", b"", hostile_headers)
    assert (echoed[0], unmatched[0]) == (200, 404)


def _written(logged: Logged) -> list[str]:
    text = logged.stream.getvalue()
    # Four records (warning, exception, two access lines): four line breaks, and no other control.
    assert text.count("\n") == 4 and text.endswith("\n")
    assert not set(text[:-1].replace("\n", "")) & set(CONTROLS)
    return text.splitlines()


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_control_characters_and_forged_fields_stay_inside_their_value(
    restore_logging: None, fmt: str, route: str
) -> None:
    logged = Logged(route, fmt)
    _send(logged)
    parse = json.loads if fmt == "json" else parse_text_line
    warning, failure, access, unmatched = (parse(line) for line in _written(logged))
    header = HEADER.decode("latin-1")

    assert warning["message"] == f"echo {HOSTILE}"
    assert (warning["q"], warning["note"]) == (HOSTILE, header)
    assert failure["message"] == f"failed on {HOSTILE}"
    assert failure["exc_info"].startswith("Traceback (most recent call last):\n")
    assert failure["exc_info"].endswith(f"ValueError: {HOSTILE}")
    assert (access["path"], access["route"]) == ("/echo", "/echo")
    assert unmatched["path"] == f"/echo/{HOSTILE}"
    assert unmatched["route"] == "unmatched"
    assert unmatched["message"].startswith(f"GET /echo/{HOSTILE} 404 ")
    # The unsafe request id was replaced, and every line of the request carries the new one.
    assert re.fullmatch("[0-9a-f]{32}", access["request_id"])
    assert re.fullmatch("[0-9a-f]{32}", unmatched["request_id"])
    assert warning["request_id"] == failure["request_id"] == access["request_id"]

    # No forged field appeared: each line has exactly the fields it was given.
    context = {"timestamp", "level", "logger", "message", "request_id", "route"}
    assert set(warning) == context | {"q", "note"}
    assert set(failure) == context | {"exc_info"}
    access_fields = context | {"method", "path", "status", "duration_ms"}
    assert set(access) == set(unmatched) == access_fields | ({"event"} if fmt == "json" else set())
    levels = [line["level"] for line in (warning, failure, access, unmatched)]
    assert levels == ["WARNING", "ERROR", "INFO", "INFO"]


FIELDS: dict[str, Any] = {
    "event": "request",
    "request_id": "r-1",
    "method": "GET",
    "route": "/items/{item_id}",
    "path": f"/items/{HOSTILE}",
    "status": 200,
    "duration_ms": 1.25,
    "page": None,
}


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_both_routes_of_the_access_line_write_the_same_bytes(
    restore_logging: None, fmt: str
) -> None:
    written = []
    for route in ROUTES:
        logged = Logged(route, fmt)
        with logged.serving():
            log_request(dict(FIELDS), "%s %s %d %.1fms", "GET", FIELDS["path"], 200, 1.25)
        written.append(logged.stream.getvalue())
    # Equal but for the time of writing.
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    direct, record = (stamp.sub("T", text, count=1) for text in written)
    assert direct == record
    render = json_line if fmt == "json" else text_line
    expected = render(
        0.0, "INFO", "genonaut_monitoring.access", f"GET {FIELDS['path']} 200 1.2ms", FIELDS
    )
    assert direct == stamp.sub("T", expected, count=1) + "\n"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain", "plain"),
        ("", '""'),
        ("two words", '"two words"'),
        ("a=b", '"a=b"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ("tab\there", '"tab\\there"'),
        ("bell\x07", '"bell\\x07"'),
        ("next\x85line", '"next\\x85line"'),
        ("para\u2029graph", '"para\\u2029graph"'),
        ("café", "café"),
        (42, "42"),
    ],
)
def test_text_values_are_bare_only_when_safe(value: Any, shown: str) -> None:
    line = text_line(0.0, "INFO", "x", "m", {"k": value})
    assert line.endswith(f"  k={shown}")
    assert parse_text_line(line)["k"] == str(value)


def _served_lines(fmt: str, stop: signal.Signals, tmp_path: Path, requests: int) -> list[str]:
    """Serve ``requests`` requests with uvicorn, stop it with ``stop``; the lines it wrote."""
    port = free_port()
    env = dict(os.environ, LOG_FORMAT=fmt, LOG_LEVEL="INFO", PYTHONPATH=str(ROOT))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # Python's stdout on a file is block-buffered unless this is set: the handler must flush.
    env.pop("PYTHONUNBUFFERED", None)
    args = [sys.executable, "-m", "uvicorn", "tests.apps.logged_app:app"]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    out = tmp_path / "stdout.log"
    with out.open("wb") as log:
        server = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        with httpx.Client(base_url=base, timeout=5) as client:
            while True:
                try:
                    client.get("/items/0", headers={"X-Request-ID": "ready"})
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        pytest.fail(f"uvicorn did not start:\n{out.read_text()}")
                    time.sleep(0.1)
            for n in range(requests):
                response = client.get(f"/items/{n}", headers={"X-Request-ID": f"req-{n}"})
                assert response.status_code == 200
            # A line is written once its response has been sent (its duration ends there), in
            # the same step of the event loop: when this answer arrives, every earlier line is
            # written. Its own line may be lost to SIGKILL.
            client.get("/items/0", headers={"X-Request-ID": "fence"})
        server.send_signal(stop)
        server.wait(timeout=15)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return out.read_text().splitlines()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "stop"),
    [("json", signal.SIGTERM), ("json", signal.SIGKILL), ("text", signal.SIGTERM)],
    ids=["json-sigterm", "json-sigkill", "text-sigterm"],
)
def test_no_line_is_lost_when_the_server_stops(
    fmt: str, stop: signal.Signals, tmp_path: Path
) -> None:
    requests = 300
    lines = _served_lines(fmt, stop, tmp_path, requests)
    parsed = [json.loads(line) if fmt == "json" else parse_text_line(line) for line in lines]
    access = [line for line in parsed if line["logger"] == "genonaut_monitoring.access"]
    served = [line["request_id"] for line in access if line["request_id"].startswith("req-")]
    # Every request has its line, once, in order; nothing held in a buffer when the process ends.
    assert served == [f"req-{n}" for n in range(requests)]
    if stop == signal.SIGTERM:
        # uvicorn's own lines go through the same handler, to the very last one.
        assert parsed[-1]["logger"] == "uvicorn.error"
        assert parsed[-1]["message"].startswith("Finished server process")
