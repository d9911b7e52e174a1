"""sqlcommenter tagging: the format, a real app on SQLite, and a real PostgreSQL reading it back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from genonaut_monitoring.exporters import catalogue, db, instrument, sqlcomment
from tests.apps.driver import get
from tests.postgres import postgres_url  # noqa: F401

ROUTE = "/api/v1/content/{item_id}"


def read_comment(text: str) -> dict[str, str]:
    """The key/value pairs of a trailing sqlcommenter comment, decoded."""
    body = text[text.rindex("/*") + 2 : text.rindex("*/")]
    pairs = [pair.split("=", 1) for pair in body.split(",")]
    return {unquote(key): unquote(value.strip("'")) for key, value in pairs}


def test_keys_are_sorted_and_values_url_encoded_then_quoted() -> None:
    comment = sqlcomment.serialize({"route": "/api/v1/content/{item_id}", "request_id": "a b'c"})
    assert comment == ("/*request_id='a%20b%27c',route='%2Fapi%2Fv1%2Fcontent%2F%7Bitem_id%7D'*/")
    assert read_comment(comment) == {
        "request_id": "a b'c",
        "route": "/api/v1/content/{item_id}",
    }


def test_a_value_cannot_close_the_comment_and_empty_values_are_left_out() -> None:
    comment = sqlcomment.serialize({"route": "/x*/; DROP TABLE t; --", "request_id": ""})
    assert comment.count("*/") == 1 and comment.endswith("*/")
    assert comment == "/*route='%2Fx%2A%2F%3B%20DROP%20TABLE%20t%3B%20--'*/"
    assert sqlcomment.serialize({"route": ""}) == ""


def test_strip_removes_only_a_trailing_comment() -> None:
    tagged = "SELECT 1 /*request_id='r',route='%2Fa'*/"
    assert sqlcomment.without_comment(tagged) == "SELECT 1"
    assert sqlcomment.without_comment("SELECT 1") == "SELECT 1"
    assert sqlcomment.without_comment("SELECT /* a */ 1 /* b */") == "SELECT /* a */ 1"
    assert sqlcomment.without_comment("SELECT '*/'") == "SELECT '*/'"


# --- a real app on SQLite: what the driver receives -----------------------------------------


def tiny_app(url: str, **options: Any) -> tuple[FastAPI, sa.Engine, list[str]]:
    """An app reading one row per request; ``received`` gets every statement SQLite ran."""
    engine = sa.create_engine(url)
    received: list[str] = []
    sa.event.listen(engine, "connect", lambda conn, _: conn.set_trace_callback(received.append))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO items (id) VALUES (7)")
    app = FastAPI()

    @app.get(ROUTE)
    def item(item_id: int) -> dict[str, Any]:
        with engine.connect() as conn:
            found = conn.execute(sa.text("SELECT id FROM items WHERE id = :id"), {"id": item_id})
            return {"id": found.scalar()}

    instrument(app, engine=engine, registry=CollectorRegistry(), **options)
    received.clear()
    return app, engine, received


def selects(received: list[str]) -> list[str]:
    return [s for s in received if s.startswith("SELECT id FROM items")]


def test_statements_carry_the_route_template_and_request_id_never_the_query_string(
    tmp_path: Path,
) -> None:
    app, _, received = tiny_app(f"sqlite:///{tmp_path / 'a.db'}", sql_comments=True)
    (response,) = get(app, "/api/v1/content/7?token=secret", headers={"x-request-id": "req-42"})
    assert response.json() == {"id": 7}
    (statement,) = selects(received)
    # SQLite traces the statement with its parameters bound.
    assert statement.startswith("SELECT id FROM items WHERE id = 7 /*")
    assert statement.endswith("route='%2Fapi%2Fv1%2Fcontent%2F%7Bitem_id%7D'*/")
    assert read_comment(statement) == {"request_id": "req-42", "route": ROUTE}
    assert "secret" not in statement and "/7" not in statement


def test_tagging_is_off_by_default(tmp_path: Path) -> None:
    app, _, received = tiny_app(f"sqlite:///{tmp_path / 'a.db'}")
    get(app, "/api/v1/content/7")
    assert selects(received) == ["SELECT id FROM items WHERE id = 7"]


def test_statements_outside_a_request_or_with_a_comment_are_left_alone(tmp_path: Path) -> None:
    _, engine, received = tiny_app(f"sqlite:///{tmp_path / 'a.db'}", sql_comments=True)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT id FROM items")
    assert selects(received) == ["SELECT id FROM items"]

    app = FastAPI()

    @app.get("/commented")
    def commented() -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT id FROM items /* mine */")

    instrument(app, registry=CollectorRegistry())
    received.clear()
    get(app, "/commented")
    assert selects(received) == ["SELECT id FROM items /* mine */"]


def test_a_reconfiguration_turns_tagging_off(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    metrics = catalogue.Metrics(CollectorRegistry())
    db.instrument_engine(engine, metrics=metrics, slow_query_seconds=1, sql_comments=True)
    assert sa.event.contains(engine, "before_cursor_execute", db._TAGGER)
    db.instrument_engine(engine, metrics=metrics, slow_query_seconds=1)
    assert not sa.event.contains(engine, "before_cursor_execute", db._TAGGER)


def test_slow_query_log_and_statement_cache_see_the_statement_without_its_comment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app, _, _ = tiny_app(f"sqlite:///{tmp_path / 'a.db'}", sql_comments=True)
    engine_metrics = app.state.genonaut_instrumentation.metrics
    # Every statement is "slow" from here on, so each one is logged.
    for instrumentation in db._instrumented.values():
        instrumentation.slow_query_seconds = 0.0
    with caplog.at_level(logging.WARNING, logger="genonaut_monitoring.db"):
        for n in range(3):
            get(app, "/api/v1/content/7", headers={"x-request-id": f"req-{n}"})
    logged = {
        getattr(r, "fingerprint", None)
        for r in caplog.records
        if getattr(r, "event", "") == "slow_query"
    }
    assert logged == {"SELECT id FROM items WHERE id = ?"}
    # Three requests, three request ids: still one cached statement, not one per request.
    cached = db._statements_for(engine_metrics).cache("sqlite")
    assert [s for s in cached if "items WHERE" in s] == ["SELECT id FROM items WHERE id = ?"]


# --- a real PostgreSQL: what the server sees ------------------------------------------------


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[sa.Engine]:  # noqa: F811
    engine = sa.create_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_postgres_shows_the_route_in_pg_stat_activity(pg_engine: sa.Engine) -> None:
    app = FastAPI()
    own_row = "SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()"

    @app.get(ROUTE)
    def item(item_id: int) -> dict[str, Any]:
        with pg_engine.connect() as conn:
            # psycopg2 interpolates parameters with %: literal % signs, bound values and
            # the comment's own % signs must all reach the server intact.
            text = conn.execute(
                sa.text(f"SELECT :tag || '%' AS tag, ({own_row}) AS seen"), {"tag": "50"}
            ).one()
            driver = conn.exec_driver_sql(f"SELECT '100%%' AS tag, ({own_row}) AS seen").one()
            raw = (
                conn.execution_options(no_parameters=True)
                .exec_driver_sql(f"SELECT '1%' AS tag, ({own_row}) AS seen")
                .one()
            )
            return {"rows": [list(text), list(driver), list(raw)]}

    instrument(app, engine=pg_engine, registry=CollectorRegistry(), sql_comments=True)
    (response,) = get(app, "/api/v1/content/3?q=x", headers={"x-request-id": "pg-1"})
    rows = response.json()["rows"]
    assert [tag for tag, _ in rows] == ["50%", "100%", "1%"]
    for _, seen in rows:
        assert seen.endswith("route='%2Fapi%2Fv1%2Fcontent%2F%7Bitem_id%7D'*/"), seen
        assert read_comment(seen) == {"request_id": "pg-1", "route": ROUTE}
