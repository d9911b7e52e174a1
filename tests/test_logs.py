"""Structured access logs: JSON fields, text format, request ids, configuration."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from genonaut_monitoring.exporters import configure_logging, instrument, logs, pagination_query
from genonaut_monitoring.exporters.logs import JsonLineFormatter, TextFormatter
from tests.apps.driver import get
from tests.logcheck import ROUTES, Logged

BASE_FIELDS = {
    "timestamp",
    "level",
    "logger",
    "message",
    "event",
    "request_id",
    "method",
    "route",
    "path",
    "status",
    "duration_ms",
}
PAGINATION_FIELDS = {
    "pagination_mode",
    "page",
    "page_size",
    "offset",
    "offset_range",
    "page_size_class",
    "items_returned",
    "pagination_query_ms",
}


@pytest.fixture(params=ROUTES)
def logged(request: pytest.FixtureRequest, restore_logging: None) -> Logged:
    return Logged(request.param)


def content_app(registry: CollectorRegistry, **options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/content/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        logging.getLogger("genonaut.app").warning("fetching %d", item_id)
        return {"id": item_id}

    @app.get("/content")
    def content(page: int = 1, page_size: int = 50) -> list[int]:
        with pagination_query() as query:
            rows = list(range(7))
            query.items = len(rows)
        return rows

    instrument(app, registry=registry, **options)
    return app


def test_one_json_line_per_request_with_exactly_the_agreed_fields(
    registry: CollectorRegistry, logged: Logged
) -> None:
    app = content_app(registry)
    response = logged.get(app, "/content/42", headers={"X-Request-ID": "req-1"})[0]
    (line,) = logged.lines()
    assert set(line) == BASE_FIELDS
    assert response.headers["x-request-id"] == "req-1"
    duration = line.pop("duration_ms")
    stamp = line.pop("timestamp")
    assert re.fullmatch(r"GET /content/42 200 \d+\.\dms", line.pop("message"))
    assert line == {
        "level": "INFO",
        "logger": "genonaut_monitoring.access",
        "event": "request",
        "request_id": "req-1",
        "method": "GET",
        "route": "/content/{item_id}",
        "path": "/content/42",
        "status": 200,
    }
    assert isinstance(duration, float) and 0 < duration < 5_000
    assert stamp.endswith("Z")
    moment = datetime.fromisoformat(stamp)
    assert moment.tzinfo is not None and moment.utcoffset() == UTC.utcoffset(None)
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 60


def test_paginated_requests_log_their_pagination(
    registry: CollectorRegistry, logged: Logged
) -> None:
    app = content_app(registry)
    response = logged.get(app, "/content?page=3&page_size=20")[0]
    (line,) = logged.lines()
    assert set(line) == BASE_FIELDS | PAGINATION_FIELDS
    assert line["request_id"] == response.headers["x-request-id"]
    assert {key: line[key] for key in PAGINATION_FIELDS - {"pagination_query_ms"}} == {
        "pagination_mode": "offset",
        "page": 3,
        "page_size": 20,
        "offset": 40,
        "offset_range": "1-100",
        "page_size_class": "11-25",
        "items_returned": 7,
    }
    assert isinstance(line["pagination_query_ms"], float)
    assert 0 <= line["pagination_query_ms"] <= line["duration_ms"]


def test_lines_logged_inside_a_request_carry_its_id_and_route(
    registry: CollectorRegistry, logged: Logged
) -> None:
    app = content_app(registry)
    logged.get(app, "/content/5", headers={"X-Request-ID": "trace-me"})
    (app_line,) = logged.lines(logger="genonaut.app")
    assert app_line["message"] == "fetching 5"
    assert app_line["level"] == "WARNING"
    assert app_line["request_id"] == "trace-me"
    assert app_line["route"] == "/content/{item_id}"


def test_unsafe_request_ids_are_replaced_in_header_and_log(
    registry: CollectorRegistry, logged: Logged
) -> None:
    app = content_app(registry)
    response = logged.get(app, "/content/5", headers={"X-Request-ID": "a b\tc"})[0]
    (line,) = logged.lines()
    assert line["request_id"] == response.headers["x-request-id"]
    assert len(line["request_id"]) == 32


def test_unmatched_and_failed_requests_are_logged(
    registry: CollectorRegistry, logged: Logged
) -> None:
    app = content_app(registry)
    logged.get(app, "/nowhere", "/content/abc")
    first, second = logged.lines()
    assert (first["route"], first["path"], first["status"]) == ("unmatched", "/nowhere", 404)
    assert (second["route"], second["status"]) == ("/content/{item_id}", 422)


def test_metrics_scrapes_and_disabled_access_logs_write_nothing(
    registry: CollectorRegistry, logged: Logged
) -> None:
    logged.get(content_app(registry), "/metrics")
    logged.get(content_app(CollectorRegistry(), log_requests=False), "/content/1")
    assert logged.lines() == []


@pytest.mark.parametrize("route", ROUTES)
def test_text_format_is_one_readable_line(
    registry: CollectorRegistry, restore_logging: None, route: str
) -> None:
    terminal = Logged(route, "text")
    app = content_app(registry)
    terminal.get(app, "/content?page=2&page_size=10", headers={"X-Request-ID": "r-9"})
    written = terminal.stream.getvalue().splitlines()
    (line,) = [text for text in written if "genonaut_monitoring.access" in text]
    stamp, level, logger, message = line.split(maxsplit=3)
    assert stamp.endswith("Z") and datetime.fromisoformat(stamp).tzinfo is not None
    assert (level, logger) == ("INFO", "genonaut_monitoring.access")
    assert message.startswith("GET /content 200 ")
    for pair in (
        "request_id=r-9",
        "route=/content",
        "status=200",
        "pagination_mode=offset",
        "page=2",
        "offset=10",
        "items_returned=7",
    ):
        assert pair in message.split(), pair


def test_environment_chooses_level_and_format(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "warning")
    monkeypatch.setenv("LOG_FORMAT", "TEXT")
    handler = configure_logging(stream=io.StringIO())
    assert isinstance(handler.formatter, TextFormatter)
    assert logging.getLogger("genonaut_monitoring").level == logging.WARNING
    monkeypatch.delenv("LOG_LEVEL")
    monkeypatch.delenv("LOG_FORMAT")
    handler = configure_logging(stream=io.StringIO())
    assert isinstance(handler.formatter, JsonLineFormatter)
    assert logging.getLogger("genonaut_monitoring").level == logging.INFO
    # Calling again replaces the handler instead of doubling every line.
    mine = [h for h in logging.getLogger().handlers if h.get_name() == "genonaut_monitoring"]
    assert mine == [handler]


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("LOG_LEVEL", "loud", "log level 'LOUD' (LOG_LEVEL): choose one of DEBUG, INFO"),
        ("LOG_FORMAT", "xml", "log format 'xml' (LOG_FORMAT): choose one of json, text"),
    ],
)
def test_bad_settings_name_the_variable_and_the_choices(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError) as error:
        configure_logging(stream=io.StringIO())
    assert message in str(error.value)


def test_uvicorn_logs_go_through_the_same_handler(
    restore_logging: None,
) -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=stream)
    logging.getLogger("uvicorn.error").info("Started server process")
    logging.getLogger("uvicorn.access").info("duplicate access line")
    (line,) = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert (line["logger"], line["message"]) == ("uvicorn.error", "Started server process")


@pytest.mark.parametrize(
    "change",
    ["filter on the access logger", "handler level", "another formatter", "second handler"],
)
def test_the_access_line_honours_logging_configured_around_it(
    registry: CollectorRegistry, restore_logging: None, change: str
) -> None:
    logged = Logged("direct")
    access = logging.getLogger("genonaut_monitoring.access")
    extra = io.StringIO()
    second = logging.StreamHandler(extra)
    if change == "filter on the access logger":
        access.addFilter(lambda record: record.getMessage().startswith("GET /content/1 "))
    elif change == "handler level":
        logged.handler.setLevel(logging.WARNING)
    elif change == "another formatter":
        logged.handler.setFormatter(logging.Formatter("%(levelname)s|%(message)s|%(route)s"))
    else:
        logging.getLogger("genonaut_monitoring").addHandler(second)
    try:
        root = logging.getLogger()
        saved = list(root.handlers)
        root.handlers[:] = [logged.handler]
        try:
            assert logs._direct_handler() is None
            get(content_app(registry), "/content/1", "/content/2")
        finally:
            root.handlers[:] = saved
    finally:
        access.filters.clear()
        logging.getLogger("genonaut_monitoring").removeHandler(second)
    written = logged.stream.getvalue().splitlines()
    access_lines = [line for line in written if "GET /content/" in line]
    if change == "filter on the access logger":
        assert [json.loads(line)["path"] for line in access_lines] == ["/content/1"]
    elif change == "handler level":
        assert access_lines == []
    elif change == "another formatter":
        assert [line.split(" ")[0] for line in access_lines] == ["INFO|GET"] * 2
        assert all(line.endswith("|/content/{item_id}") for line in access_lines)
    else:
        assert len(access_lines) == 2
        assert [line.split(" 200 ")[0] for line in extra.getvalue().splitlines()] == [
            "GET /content/1",
            "GET /content/2",
        ]
