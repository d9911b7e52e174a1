"""Database instrumentation against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from genonaut_monitoring.exporters import catalogue, db
from genonaut_monitoring.exporters.logs import JsonLineFormatter
from tests.postgres import postgres_url  # noqa: F401

METADATA = sa.MetaData()
ITEMS = sa.Table(
    "items",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
)
SELECT_BY_NAME = sa.select(ITEMS.c.id, ITEMS.c.name).where(ITEMS.c.name == sa.bindparam("name"))
# The same fingerprint on both backends: qmark (SQLite) and pyformat (psycopg2) alike.
SELECT_BY_NAME_FINGERPRINT = "SELECT items.id, items.name FROM items WHERE items.name = ?"


def value(registry: CollectorRegistry, spec: catalogue.MetricSpec, suffix: str = "", **labels: str):
    """One sample of a catalogue metric, or None when the series does not exist."""
    return registry.get_sample_value(spec.name + suffix, labels)


def query_count(registry: CollectorRegistry, operation: str, table: str) -> float | None:
    return value(registry, catalogue.DB_QUERY_DURATION, "_count", operation=operation, table=table)


def series(registry: CollectorRegistry, name: str) -> dict[tuple[str, ...], float]:
    """Every sample called ``name``: label values (in label-name order) to value."""
    found = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                found[tuple(v for _, v in sorted(sample.labels.items()))] = sample.value
    return found


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A real database with an empty ``items`` table: a SQLite file, or PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    setup = sa.create_engine(url, poolclass=sa.pool.NullPool)
    METADATA.drop_all(setup)
    METADATA.create_all(setup)
    setup.dispose()
    yield url


@pytest.fixture
def metrics(registry: CollectorRegistry) -> catalogue.Metrics:
    return catalogue.Metrics(registry)


def engine_for(url: str, metrics: catalogue.Metrics, slow: float = 10.0, **kwargs: Any):
    engine = sa.create_engine(url, **kwargs)
    db.instrument_engine(engine, metrics=metrics, slow_query_seconds=slow)
    return engine


def insert_rows(engine: sa.Engine, names: list[str]) -> None:
    with engine.begin() as conn:
        conn.execute(ITEMS.insert(), [{"name": name} for name in names])


# --- Fingerprints and classification ---------------------------------------------


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?"),
        ("select *\n  from t\twhere name = 'O''Brien'", "select * from t where name = ?"),
        ("SELECT a FROM t WHERE id IN (1, 2, 3)", "SELECT a FROM t WHERE id IN (?)"),
        ("SELECT a FROM t WHERE id IN (?, ?, ?, ?)", "SELECT a FROM t WHERE id IN (?)"),
        ("SELECT a FROM t WHERE a = %(a_1)s AND b = %s", "SELECT a FROM t WHERE a = ? AND b = ?"),
        ("SELECT a FROM t WHERE a = :a AND b = $2", "SELECT a FROM t WHERE a = ? AND b = ?"),
        ("INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)", "INSERT INTO t (a, b) VALUES (?)"),
        ("SELECT x::text, $$it's$$, $q$v$q$ FROM t1", "SELECT x::text, ?, ? FROM t1"),
        ("SELECT -1.5e3, 0x1F, .5, col_2 FROM t2", "SELECT -?, ?, ?, col_2 FROM t2"),
        ("SELECT 1 -- who: alice\n/* id=7 */ FROM t", "SELECT ? FROM t"),
        ('SELECT "weird ""name""" FROM t', 'SELECT "weird ""name""" FROM t'),
        (
            "SELECT a FROM t WHERE e = E'a\\'' AND p = 'C:\\'",
            "SELECT a FROM t WHERE e = ? AND p = ?",
        ),
    ],
)
def test_fingerprint_replaces_every_literal_and_parameter(statement: str, expected: str) -> None:
    assert db.fingerprint(statement) == expected


def test_fingerprint_is_the_same_for_the_same_query_with_other_values() -> None:
    one = db.fingerprint("SELECT a FROM t WHERE email = 'alice@example.com' AND id IN (1, 2)")
    two = db.fingerprint("SELECT a FROM t WHERE email = 'bob@example.org' AND id IN (9, 8, 7)")
    assert one == two == "SELECT a FROM t WHERE email = ? AND id IN (?)"


def test_fingerprint_of_a_huge_statement_is_cut() -> None:
    text = db.fingerprint("SELECT " + ", ".join(f"c{i}" for i in range(2_000)) + " FROM t")
    assert len(text) == db.MAX_FINGERPRINT
    assert text.endswith("...")


@pytest.mark.parametrize(
    ("statement", "operation", "table"),
    [
        ("SELECT items.id FROM items WHERE items.id = ?", "SELECT", "items"),
        ("select * from public.Items join tags on tags.id = items.tag_id", "SELECT", "items"),
        (
            "SELECT count(*) AS count_1 FROM (SELECT items.id FROM items WHERE x > %(x_1)s) AS a",
            "SELECT",
            "items",
        ),
        ('INSERT INTO "Items" (id, name) VALUES (%(id)s, %(name)s)', "INSERT", "items"),
        ("INSERT OR REPLACE INTO main.items (a) VALUES (?)", "INSERT", "items"),
        ("UPDATE ONLY items SET name = :name WHERE id = $1", "UPDATE", "items"),
        ("UPDATE OR IGNORE items SET a = 1", "UPDATE", "items"),
        ("DELETE FROM items WHERE id IN (1, 2)", "DELETE", "items"),
        (
            "WITH r AS (SELECT id FROM items) DELETE FROM tags WHERE id IN (SELECT id FROM r)",
            "DELETE",
            "tags",
        ),
        ("WITH recent AS (SELECT * FROM items) SELECT * FROM recent", "SELECT", "items"),
        (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c",
            "SELECT",
            "none",
        ),
        ("(SELECT a FROM x) UNION (SELECT a FROM y)", "SELECT", "x"),
        ("SELECT 1", "SELECT", "none"),
        ("SELECT 'FROM secrets' AS label", "SELECT", "none"),
        ("BEGIN", "OTHER", "none"),
        ("COMMIT", "OTHER", "none"),
        ('PRAGMA main.table_info("items")', "OTHER", "none"),
        ("CREATE TABLE items (id INTEGER)", "OTHER", "none"),
        ("", "OTHER", "none"),
    ],
)
def test_classify_names_operation_and_main_table(
    statement: str, operation: str, table: str
) -> None:
    assert db.classify(statement)[:2] == (operation, table)


def test_pool_name_never_contains_credentials_or_host() -> None:
    pg = sa.create_engine("postgresql+psycopg2://alice:s3cret@db.internal:5432/genonaut")
    assert db.pool_name(pg) == "postgresql:genonaut"
    assert db.pool_name(sa.create_engine("sqlite:////var/lib/genonaut/data.db")) == "sqlite:data.db"
    assert db.pool_name(sa.create_engine("sqlite://")) == "sqlite:memory"


# --- Statements on real databases -------------------------------------------------


def test_selects_and_inserts_are_counted_exactly(db_url: str, registry, metrics) -> None:
    engine = engine_for(db_url, metrics)
    # One executemany of three rows is one statement.
    insert_rows(engine, ["a", "b", "c"])
    with engine.connect() as conn:
        for _ in range(7):
            assert conn.execute(SELECT_BY_NAME, {"name": "b"}).one().name == "b"
    assert series(registry, "database_query_duration_seconds_count") == {
        ("INSERT", "items"): 1.0,
        ("SELECT", "items"): 7.0,
    }
    assert (
        value(
            registry,
            catalogue.DB_QUERY_DURATION,
            "_bucket",
            operation="SELECT",
            table="items",
            le="+Inf",
        )
        == 7.0
    )
    assert series(registry, "database_query_errors_total") == {}
    assert series(registry, "database_slow_queries_total") == {}
    engine.dispose()


def test_a_failing_statement_is_counted_and_still_raises(db_url: str, registry, metrics) -> None:
    engine = engine_for(db_url, metrics)
    insert_rows(engine, ["taken"])
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(ITEMS.insert(), {"name": "taken"})
    with pytest.raises(sa.exc.DBAPIError), engine.connect() as conn:
        conn.execute(sa.text("SELECT id FROM no_such_table WHERE id = 1"))
    assert series(registry, "database_query_errors_total") == {
        ("INSERT", "items"): 1.0,
        ("SELECT", "no_such_table"): 1.0,
    }
    # Failed statements are errors, not durations.
    assert series(registry, "database_query_duration_seconds_count") == {("INSERT", "items"): 1.0}
    # The engine still works after the errors.
    with engine.connect() as conn:
        assert conn.execute(SELECT_BY_NAME, {"name": "taken"}).one().name == "taken"
    engine.dispose()


def test_slow_queries_are_counted_and_logged_without_values(
    db_url: str, registry, metrics, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_for(db_url, metrics, slow=0.0)
    insert_rows(engine, ["alice@example.com"])
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="genonaut_monitoring.db"),
        engine.connect() as conn,
    ):
        for _ in range(3):
            conn.execute(SELECT_BY_NAME, {"name": "alice@example.com"}).one()
    assert value(registry, catalogue.DB_SLOW_QUERIES, operation="SELECT", table="items") == 3.0
    records = [r for r in caplog.records if r.name == "genonaut_monitoring.db"]
    assert len(records) == 3
    formatter = JsonLineFormatter()
    for record in records:
        line = json.loads(formatter.format(record))
        duration = line.pop("duration_ms")
        assert isinstance(duration, float)
        assert duration >= 0
        assert line.pop("timestamp").endswith("Z")
        assert line == {
            "level": "WARNING",
            "logger": "genonaut_monitoring.db",
            "message": f"slow query ({duration:.1f} ms): {SELECT_BY_NAME_FINGERPRINT}",
            "event": "slow_query",
            "operation": "SELECT",
            "table": "items",
            "fingerprint": SELECT_BY_NAME_FINGERPRINT,
        }
        assert "alice" not in formatter.format(record)
    engine.dispose()


def slow_statement(url: str) -> tuple[str, str]:
    """A statement that really takes a while, and its fingerprint."""
    if url.startswith("sqlite"):
        statement = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
            "SELECT count(*) FROM c"
        )
        return statement, statement.replace("1", "?").replace("3000000", "?")
    return "SELECT pg_sleep(0.4)", "SELECT pg_sleep(?)"


def test_only_statements_over_the_threshold_are_slow(
    db_url: str, registry, metrics, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_for(db_url, metrics, slow=0.2)
    insert_rows(engine, ["x"])
    statement, expected_fingerprint = slow_statement(db_url)
    caplog.clear()
    with (
        caplog.at_level(logging.WARNING, logger="genonaut_monitoring.db"),
        engine.connect() as conn,
    ):
        conn.execute(SELECT_BY_NAME, {"name": "x"}).one()
        conn.execute(sa.text(statement)).all()
    assert series(registry, "database_slow_queries_total") == {("SELECT", "none"): 1.0}
    (record,) = [r for r in caplog.records if r.name == "genonaut_monitoring.db"]
    assert record.fingerprint == expected_fingerprint  # type: ignore[attr-defined]
    assert record.duration_ms >= 200  # type: ignore[attr-defined]
    assert not hasattr(record, "request_id")
    engine.dispose()


def test_slow_query_inside_a_request_names_the_request(
    tmp_path: Path, metrics, caplog: pytest.LogCaptureFixture
) -> None:
    from genonaut_monitoring.exporters import context

    engine = engine_for(f"sqlite:///{tmp_path / 'r.db'}", metrics, slow=0.0)
    state = SimpleNamespace(request_id="req-7", route="/api/v1/content")
    token = context._current.set(state)  # type: ignore[arg-type]
    try:
        with (
            caplog.at_level(logging.WARNING, logger="genonaut_monitoring.db"),
            engine.connect() as conn,
        ):
            conn.execute(sa.text("SELECT 1")).one()
    finally:
        context._current.reset(token)
    (record,) = [r for r in caplog.records if r.name == "genonaut_monitoring.db"]
    assert (record.request_id, record.route) == ("req-7", "/api/v1/content")  # type: ignore[attr-defined]
    engine.dispose()


def test_tables_beyond_the_cap_are_labelled_other(tmp_path: Path, registry, metrics) -> None:
    url = f"sqlite:///{tmp_path / 'many.db'}"
    names = [f"t{i:02d}" for i in range(db.MAX_TABLES + 2)]
    setup = sa.create_engine(url)
    with setup.begin() as conn:
        for name in names:
            conn.execute(sa.text(f"CREATE TABLE {name} (id INTEGER)"))
    setup.dispose()
    engine = engine_for(url, metrics)
    with engine.connect() as conn:
        for name in [*names, *names]:
            conn.execute(sa.text(f"SELECT id FROM {name}")).all()
    counts = series(registry, "database_query_duration_seconds_count")
    assert counts == {
        **{("SELECT", name): 2.0 for name in names[: db.MAX_TABLES]},
        ("SELECT", catalogue.OTHER): 4.0,
    }
    engine.dispose()


def test_instrumenting_twice_never_counts_twice(tmp_path: Path, registry, metrics) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'twice.db'}", metrics)
    db.instrument_engine(engine, metrics=metrics, slow_query_seconds=10.0)
    with engine.connect() as conn:
        for _ in range(5):
            conn.execute(sa.text("SELECT 1")).one()
    assert query_count(registry, "SELECT", "none") == 5.0
    # A later call with another registry wins; the first registry stops counting.
    other = CollectorRegistry()
    db.instrument_engine(engine, metrics=catalogue.Metrics(other), slow_query_seconds=10.0)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).one()
    assert query_count(registry, "SELECT", "none") == 5.0
    assert query_count(other, "SELECT", "none") == 1.0
    engine.dispose()


def test_a_statement_is_parsed_once(
    tmp_path: Path, registry, metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = db.classify

    def counting(statement: str, dialect: str = "postgresql") -> tuple[str, str, str]:
        calls.append(statement)
        return real(statement, dialect)

    monkeypatch.setattr(db, "classify", counting)
    engine = engine_for(f"sqlite:///{tmp_path / 'once.db'}", metrics)
    with engine.connect() as conn:
        for i in range(100):
            conn.execute(sa.text("SELECT :i"), {"i": i}).one()
    assert calls == ["SELECT ?"]
    assert query_count(registry, "SELECT", "none") == 100.0
    engine.dispose()


def test_a_fault_in_a_listener_never_breaks_the_query(
    tmp_path: Path, metrics, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(statement: str) -> tuple[str, str, str]:
        raise RuntimeError("classifier exploded")

    monkeypatch.setattr(db, "classify", broken)
    monkeypatch.setattr(db, "_last_fault", -math.inf)
    engine = engine_for(f"sqlite:///{tmp_path / 'fault.db'}", metrics)
    with caplog.at_level(logging.ERROR, logger="genonaut_monitoring.db"), engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 40 + 2")).scalar_one() == 42
        with pytest.raises(sa.exc.OperationalError):
            conn.execute(sa.text("SELECT * FROM missing"))
    messages = [r.getMessage() for r in caplog.records if r.name == "genonaut_monitoring.db"]
    # Logged once, not per statement.
    assert messages == [
        "database metrics failed in after_cursor_execute; the statement itself was not affected"
    ]
    engine.dispose()


def test_async_engine_is_instrumented(
    tmp_path: Path, registry, metrics, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from genonaut_monitoring.exporters import context

    async def run() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'async.db'}")
        db.instrument_engine(engine, metrics=metrics, slow_query_seconds=10.0, name="async")
        async with engine.begin() as conn:
            await conn.run_sync(METADATA.create_all)
            await conn.execute(ITEMS.insert(), [{"name": "a"}, {"name": "b"}])
        async with engine.connect() as conn:
            for _ in range(4):
                assert (await conn.execute(SELECT_BY_NAME, {"name": "a"})).one().name == "a"
        assert value(registry, catalogue.DB_POOL_CHECKED_OUT, pool="async") == 0.0
        # The request context reaches the listeners through SQLAlchemy's greenlets.
        db.instrument_engine(engine, metrics=metrics, slow_query_seconds=0.0, name="async")
        state = SimpleNamespace(request_id="req-async", route="/api/v1/content")
        token = context._current.set(state)  # type: ignore[arg-type]
        try:
            async with engine.connect() as conn:
                await conn.execute(SELECT_BY_NAME, {"name": "b"})
        finally:
            context._current.reset(token)
        await engine.dispose()

    with caplog.at_level(logging.WARNING, logger="genonaut_monitoring.db"):
        asyncio.run(run())
    assert query_count(registry, "SELECT", "items") == 5.0
    assert query_count(registry, "INSERT", "items") == 1.0
    assert value(registry, catalogue.DB_POOL_SIZE, pool="async") == 5.0
    records = [r for r in caplog.records if r.name == "genonaut_monitoring.db"]
    slow = [(r.fingerprint, r.request_id) for r in records]  # type: ignore[attr-defined]
    assert slow == [(SELECT_BY_NAME_FINGERPRINT, "req-async")]


# --- Connection pool ---------------------------------------------------------------


def pool_gauges(registry: CollectorRegistry, pool: str) -> dict[str, float | None]:
    return {
        "size": value(registry, catalogue.DB_POOL_SIZE, pool=pool),
        "max_overflow": value(registry, catalogue.DB_POOL_MAX_OVERFLOW, pool=pool),
        "checked_out": value(registry, catalogue.DB_POOL_CHECKED_OUT, pool=pool),
        "overflow": value(registry, catalogue.DB_POOL_OVERFLOW, pool=pool),
        "timeouts": value(registry, catalogue.DB_POOL_CHECKOUT_TIMEOUTS, pool=pool),
    }


def gauges(size: int, checked_out: int, overflow: int, timeouts: int) -> dict[str, float]:
    return {
        "size": size,
        "max_overflow": 1,
        "checked_out": checked_out,
        "overflow": overflow,
        "timeouts": timeouts,
    }


def test_pool_gauges_and_checkout_timeouts(db_url: str, registry, metrics) -> None:
    engine = engine_for(
        db_url, metrics, poolclass=sa.pool.QueuePool, pool_size=2, max_overflow=1, pool_timeout=0.2
    )
    name = db.pool_name(engine)
    assert name == ("sqlite:test.db" if db_url.startswith("sqlite") else "postgresql:genonaut_test")
    # The timeouts counter exists at zero before anything happened.
    assert pool_gauges(registry, name) == gauges(2, 0, 0, 0)

    for round_ in (1, 2):
        conns = [engine.connect() for _ in range(3)]
        assert pool_gauges(registry, name) == gauges(2, 3, 1, round_ - 1)
        with pytest.raises(sa.exc.TimeoutError):
            engine.connect()
        assert pool_gauges(registry, name) == gauges(2, 3, 1, round_)
        # Overflow counts connections open beyond the size: the extra one stays open
        # (idle) until the pool is full again, and only then is it closed.
        conns.pop().close()
        assert pool_gauges(registry, name) == gauges(2, 2, 1, round_)
        conns.pop().close()
        assert pool_gauges(registry, name) == gauges(2, 1, 1, round_)
        conns.pop().close()
        assert pool_gauges(registry, name) == gauges(2, 0, 0, round_)
        # dispose() replaces the pool; the new one must be counted as well.
        engine.dispose()
        assert pool_gauges(registry, name) == gauges(2, 0, 0, round_)


def test_pool_gauges_are_exact_after_concurrent_load(tmp_path: Path, registry, metrics) -> None:
    engine = engine_for(
        f"sqlite:///{tmp_path / 'load.db'}",
        metrics,
        pool_size=3,
        max_overflow=2,
        pool_timeout=10,
        connect_args={"check_same_thread": False},
    )
    peak: list[float] = []

    def work() -> None:
        for _ in range(40):
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1")).one()
                peak.append(value(registry, catalogue.DB_POOL_CHECKED_OUT, pool="sqlite:load.db"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert query_count(registry, "SELECT", "none") == 320.0
    assert 1.0 <= max(peak) <= 5.0
    assert value(registry, catalogue.DB_POOL_CHECKED_OUT, pool="sqlite:load.db") == 0.0
    assert value(registry, catalogue.DB_POOL_OVERFLOW, pool="sqlite:load.db") == 0.0
    engine.dispose()


def test_pools_without_a_size_report_connections_in_use(registry, metrics) -> None:
    # sqlite:// (in memory) uses SingletonThreadPool: one connection per thread, no waiting.
    engine = engine_for("sqlite://", metrics)
    assert isinstance(engine.pool, sa.pool.SingletonThreadPool)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).one()
        assert value(registry, catalogue.DB_POOL_CHECKED_OUT, pool="sqlite:memory") == 1.0
    assert pool_gauges(registry, "sqlite:memory") == {
        "size": None,
        "max_overflow": None,
        "checked_out": 0.0,
        "overflow": None,
        "timeouts": 0.0,
    }
    engine.dispose()


def test_null_pool_counts_each_connection_in_use(tmp_path: Path, registry, metrics) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'null.db'}", metrics, poolclass=sa.pool.NullPool)
    first, second = engine.connect(), engine.connect()
    assert value(registry, catalogue.DB_POOL_CHECKED_OUT, pool="sqlite:null.db") == 2.0
    first.close()
    second.close()
    assert value(registry, catalogue.DB_POOL_CHECKED_OUT, pool="sqlite:null.db") == 0.0
    engine.dispose()


# --- Every literal, every dialect -----------------------------------------------------------

# Literal forms of PostgreSQL, then of SQLite; each marked with "v" + digits so a leak shows.
POSTGRES_LITERALS = [
    "'v101'",
    "'v102 it''s'",
    "E'v103\\\\ \\' quoted'",
    "e'v104'",
    "U&'v105\\0061'",
    "N'v106'",
    "B'1011'",
    "X'1F0A'",
    "$$v107 it's$$",
    "$tag$v108 $$ nested$tag$",
    "$a_1$v109$a_1$",
    "1010",
    "-1011",
    "10.12",
    ".1013",
    "1014e3",
    "1.015E-2",
    "1_016",
    "0x1017",
    "0b1011",
    "0o1017",
    "TRUE",
    "false",
    "DATE '2024-01-18'",
    "INTERVAL '19 days'",
    "'v120'::text",
    "ARRAY[1021, 1022]",
]
SQLITE_LITERALS = [
    "'v201'",
    '"v202-ssn-123-45-6789"',
    "x'ABCD'",
    "X'0203'",
    "204",
    "2.05e1",
    "0x206",
    "true",
]
PLACEHOLDERS = ["?", "?207", ":v208", "@v209", "$210", "%s", "%(v211)s"]
# Where a literal can stand, with {} for it.
POSITIONS = [
    "SELECT * FROM t WHERE a = {}",
    "SELECT * FROM t WHERE a <> {} AND b IS NOT {}",
    "SELECT * FROM t WHERE a IN ({}, {}, {})",
    "SELECT * FROM t WHERE a BETWEEN {} AND {}",
    "SELECT * FROM t WHERE a LIKE {} ESCAPE {}",
    "SELECT CASE WHEN a > {} THEN {} ELSE {} END FROM t",
    "SELECT a || {} FROM t",
    "INSERT INTO t (a, b) VALUES ({}, {}), ({}, {})",
    "UPDATE t SET a = {}, b = {} WHERE c = {}",
    "SELECT * FROM t ORDER BY a LIMIT {} OFFSET {}",
]


def _marked(literal: str) -> list[str]:
    """The parts of a literal that must not survive: its digits and marked words."""
    import re

    return re.findall(r"v\d{3}[\w-]*|\d{3,}|[0-9A-F]{4}", literal)


@pytest.mark.parametrize(
    ("dialect", "literal"),
    [("postgresql", lit) for lit in POSTGRES_LITERALS + PLACEHOLDERS]
    + [("sqlite", lit) for lit in SQLITE_LITERALS + PLACEHOLDERS],
)
def test_no_literal_survives_in_any_position(dialect: str, literal: str) -> None:
    for position in POSITIONS:
        statement = position.format(*[literal] * position.count("{}"))
        text = db.fingerprint(statement, dialect)
        for part in _marked(literal):
            assert part not in text, (statement, text)
        assert "?" in text, (statement, text)


@pytest.mark.parametrize(
    ("statement", "dialect", "expected"),
    [
        # SQLite takes "x" for a string where no column is called x: never in a fingerprint.
        (
            'SELECT * FROM people WHERE name = "ssn-123-45-6789"',
            "sqlite",
            "SELECT * FROM people WHERE name = ?",
        ),
        # SQLAlchemy quotes reserved and mixed-case names with double quotes: they stay.
        (
            'SELECT "order"."group", "Name" FROM "order" WHERE "order"."group" = ? AND "x" = 1',
            "sqlite",
            'SELECT "order"."group", "Name" FROM "order" WHERE "order"."group" = ? AND "x" = ?',
        ),
        (
            'INSERT INTO "order" ("group", "user") VALUES ("a", "b")',
            "sqlite",
            'INSERT INTO "order" ("group", "user") VALUES (?)',
        ),
        ('UPDATE "order" SET "group" = "x"', "sqlite", 'UPDATE "order" SET "group" = ?'),
        # On PostgreSQL double quotes are identifiers, always.
        (
            'SELECT "user"."name" FROM "user" WHERE "user"."name" = \'x\'',
            "postgresql",
            'SELECT "user"."name" FROM "user" WHERE "user"."name" = ?',
        ),
        # MySQL quotes strings with them; SQLAlchemy quotes identifiers with backticks there.
        ('SELECT `a` FROM `t` WHERE `a` = "secret"', "mysql", "SELECT `a` FROM `t` WHERE `a` = ?"),
    ],
)
def test_double_quotes_follow_the_dialect(statement: str, dialect: str, expected: str) -> None:
    assert db.fingerprint(statement, dialect) == expected


def test_a_double_quoted_sqlite_literal_never_reaches_the_slow_query_log(
    tmp_path: Path, registry, metrics, caplog: pytest.LogCaptureFixture
) -> None:
    engine = engine_for(f"sqlite:///{tmp_path / 'q.db'}", metrics, slow=0.0)
    METADATA.create_all(engine)
    with caplog.at_level(logging.WARNING, logger="genonaut_monitoring.db"), engine.connect() as c:
        c.exec_driver_sql('SELECT id FROM items WHERE name = "ssn-123-45-6789"').all()
    lines = [r for r in caplog.records if getattr(r, "event", None) == "slow_query"]
    assert lines and all("6789" not in r.getMessage() + str(vars(r)) for r in lines)
    engine.dispose()


# --- Every fault counts ---------------------------------------------------------------------


def errors(registry: CollectorRegistry, pool: str) -> dict[str, float]:
    return {
        kind: value(registry, catalogue.DB_ERRORS, pool=pool, kind=kind) or 0.0
        for kind in catalogue.DB_ERROR_KINDS
    }


def test_every_kind_of_database_fault_is_counted(db_url: str, registry, metrics) -> None:
    engine = engine_for(
        db_url, metrics, poolclass=sa.pool.QueuePool, pool_size=1, max_overflow=0, pool_timeout=0.1
    )
    name = db.pool_name(engine)
    # Created at zero, before any fault.
    assert errors(registry, name) == {"connection": 0, "pool_timeout": 0, "statement": 0}
    with pytest.raises(sa.exc.DBAPIError), engine.connect() as conn:
        conn.execute(sa.text("SELECT nope FROM no_such_table"))
    held = engine.connect()
    with pytest.raises(sa.exc.TimeoutError):
        engine.connect()
    held.close()
    assert errors(registry, name) == {"connection": 0, "pool_timeout": 1, "statement": 1}
    engine.dispose()


def test_a_database_that_cannot_be_reached_counts_connection_errors(
    tmp_path: Path, registry, metrics
) -> None:
    from tests.conftest import free_port

    urls = {
        "postgres": f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/nowhere",
        "sqlite": f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}",
    }
    for kind, url in urls.items():
        engine = engine_for(url, metrics, pool_pre_ping=True)
        for _ in range(3):
            with pytest.raises(sa.exc.OperationalError), engine.connect():
                pass
        assert errors(registry, db.pool_name(engine))["connection"] == 3, kind
        # Nothing ran: no statement to count by operation and table.
        assert series(registry, "database_query_errors_total") == {}
        engine.dispose()


# --- Page-query time without pagination_query() ---------------------------------------------


def paged_app(engine: sa.Engine, registry: CollectorRegistry, explicit: bool = False) -> Any:
    """Handlers that page with raw SQL and with Core, and one single-row lookup."""
    from fastapi import FastAPI

    from genonaut_monitoring.exporters import instrument, pagination_query

    app = FastAPI()

    @app.get("/raw")
    def raw(skip: int = 0, limit: int = 10) -> int:
        with engine.connect() as conn:
            conn.execute(SELECT_BY_NAME.limit(1), {"name": "n1"}).first()  # not the page
            rows = conn.execute(
                sa.text("SELECT id, name FROM items ORDER BY id LIMIT :limit OFFSET :skip"),
                {"limit": limit, "skip": skip},
            ).all()
            conn.execute(sa.text("SELECT count(*) FROM items")).scalar_one()  # not the page
        return len(rows)

    @app.get("/core")
    def core(cursor: int = 0, limit: int = 5) -> int:
        query = sa.select(ITEMS.c.id).where(ITEMS.c.id > cursor).order_by(ITEMS.c.id).limit(limit)
        with engine.connect() as conn:
            if explicit:
                with pagination_query() as page:
                    rows = conn.execute(query).all()
                    page.items = 99
            else:
                rows = conn.execute(query).all()
        return len(rows)

    instrument(app, registry=registry, engine=engine)
    return app


def test_paging_statements_are_timed_and_counted_without_pagination_query(
    db_url: str, registry: CollectorRegistry
) -> None:
    from tests.apps.driver import get

    engine = sa.create_engine(db_url)
    insert_rows(engine, [f"n{i}" for i in range(30)])
    app = paged_app(engine, registry)
    assert [r.json() for r in get(app, "/raw?skip=20&limit=25", "/core?cursor=10")] == [10, 5]
    query = "pagination_query_duration_seconds"
    raw = {"route": "/raw", "mode": "offset", "page_size_class": "11-25", "offset_range": "1-100"}
    core = {"route": "/core", "mode": "cursor", "page_size_class": "1-10", "offset_range": "none"}
    assert registry.get_sample_value(f"{query}_count", raw) == 1
    assert registry.get_sample_value(f"{query}_count", core) == 1
    assert (registry.get_sample_value(f"{query}_sum", raw) or 0) > 0
    items = {
        route: registry.get_sample_value(f"{catalogue.PAGINATION_ITEMS_RETURNED.name}_sum",
                                         {"route": route, "mode": mode})
        for route, mode in (("/raw", "offset"), ("/core", "cursor"))
    }  # fmt: skip
    if db_url.startswith("postgresql"):
        # psycopg2 reports the rows a SELECT returned: exactly the page.
        assert items == {"/raw": 10, "/core": 5}
    else:
        # SQLite's driver reports -1 for a SELECT: no item counts, only times.
        assert items == {"/raw": 0, "/core": 0}
    engine.dispose()


def test_an_explicit_pagination_query_wins_over_the_listeners(
    db_url: str, registry: CollectorRegistry
) -> None:
    from tests.apps.driver import get

    engine = sa.create_engine(db_url)
    insert_rows(engine, [f"n{i}" for i in range(10)])
    app = paged_app(engine, registry, explicit=True)
    assert get(app, "/core?limit=3")[0].json() == 3
    labels = {"route": "/core", "mode": "cursor", "page_size_class": "1-10", "offset_range": "none"}
    assert registry.get_sample_value("pagination_query_duration_seconds_count", labels) == 1
    items = {"route": "/core", "mode": "cursor"}
    assert registry.get_sample_value("pagination_items_returned_sum", items) == 99
    engine.dispose()
