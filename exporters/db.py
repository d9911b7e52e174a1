"""Database metrics and slow-query logs for SQLAlchemy engines.

Statements are timed by the ``before_cursor_execute`` / ``after_cursor_execute``
events and labelled by operation (``SELECT``, ``INSERT``, ``UPDATE``,
``DELETE``, everything else ``OTHER``) and main table. A statement string is
classified once, by a small tokenizer, and the result (with the histogram
child for its labels) is cached: statements repeat, so the hot path is one dict
lookup and one ``observe()``. Tables get at most :data:`MAX_TABLES` label
values per metric registry; later ones are folded into ``other``.

Pool gauges follow the pool's own accounting. SQLAlchemy has no event after a
connection is back in the pool (``checkin`` fires before the return, so the
pool still counts it) nor for a checkout that times out, so the engine's pool
gets two thin wrappers: ``connect`` (counts ``sqlalchemy.exc.TimeoutError``
and refreshes the gauges after every checkout) and ``_return_conn``
(refreshes after every return). ``engine.dispose()`` replaces the pool; the
``engine_disposed`` event wraps the new one.

Pools that never make a caller wait (SQLite's ``SingletonThreadPool`` and
``StaticPool``, ``NullPool``) have no size to exhaust: they report
``checked_out`` (connections in use) and the timeouts counter (always 0), and
no ``size``, ``max_overflow`` or ``overflow`` series, so a saturation ratio
has nothing to divide by instead of dividing by zero.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import QueuePool

from genonaut_monitoring.exporters import catalogue, sqlcomment
from genonaut_monitoring.exporters.context import FAULT_LOG_INTERVAL, current

log = logging.getLogger("genonaut_monitoring.db")

OPERATIONS = ("SELECT", "INSERT", "UPDATE", "DELETE", "OTHER")
# Table label of statements without one (``SELECT 1``, ``BEGIN``, DDL, ``PRAGMA``).
NO_TABLE = "none"
# Distinct table label values per metric registry; more are labelled catalogue.OTHER.
MAX_TABLES = 50
# Distinct statement strings whose classification is cached; the cache restarts when full.
MAX_STATEMENTS = 2_000
# Fingerprints longer than this are cut, so one log line stays readable.
MAX_FINGERPRINT = 2_000
# Pool label values are cut to this length.
MAX_POOL_NAME = 64

_VERBS = frozenset(OPERATIONS[:4])

# One pass over a statement: comments go, literals and bound parameters of every
# DBAPI paramstyle become "?", quoted identifiers and "::" casts stay as they are.
_LITERALS = re.compile(
    r"""
    (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<ident>"(?:[^"]|"")*"|`[^`]*`)
  | (?P<cast>::)
  | (?P<value>
        [Ee]'(?:[^'\\]|''|\\.)*'                # PostgreSQL escape string: backslashes too
      | [BbXxNnUu]?'(?:[^']|'')*'              # string literal, '' escapes a quote
      | \$(?P<tag>(?:[A-Za-z_]\w*)?)\$.*?\$(?P=tag)\$  # PostgreSQL dollar quoting
      | %\([^)]*\)s | %s | \? | :[A-Za-z_]\w* | \$\d+  # pyformat, format, qmark, named, numeric
      | (?<![\w$.])(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w$])
    )
    """,
    re.VERBOSE | re.DOTALL,
)
_SPACE = re.compile(r"\s+")
# A parenthesised list of placeholders: IN (?, ?, ?) and VALUES (?, ?).
_PLACEHOLDER_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)")
# Repeated rows of a multi-row VALUES: (?), (?), (?).
_PLACEHOLDER_ROWS = re.compile(r"\(\?\)(?:\s*,\s*\(\?\))+")
_TOKENS = re.compile(r'"(?:[^"]|"")*"|`[^`]*`|[\w$]+|[().,;]')
_PUNCTUATION = frozenset("().,;")


def fingerprint(statement: str) -> str:
    """The statement with every literal and parameter replaced by ``?``.

    >>> fingerprint("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'")
    'SELECT * FROM t WHERE id IN (?) AND name = ?'
    """

    def replace(match: re.Match[str]) -> str:
        if match.lastgroup == "comment":
            return " "
        if match.lastgroup in ("value", "tag"):
            return "?"
        return match.group()

    text = _LITERALS.sub(replace, statement)
    text = _SPACE.sub(" ", text).strip()
    text = _PLACEHOLDER_LIST.sub("(?)", text)
    text = _PLACEHOLDER_ROWS.sub("(?)", text)
    if len(text) > MAX_FINGERPRINT:
        text = text[: MAX_FINGERPRINT - 3] + "..."
    return text


def _name(token: str) -> str:
    """A table name as a label value: unquoted, lower case, bounded."""
    if token[:1] in ('"', "`"):
        token = token[1:-1]
    return token.lower()[:63]


class _Parsed:
    """Tokens of a fingerprint with their parenthesis depth."""

    def __init__(self, text: str) -> None:
        self.tokens = _TOKENS.findall(text)
        self.upper = [token.upper() for token in self.tokens]
        self.depth: list[int] = []
        depth = 0
        for token in self.tokens:
            if token == ")":
                depth -= 1
            self.depth.append(depth)
            if token == "(":
                depth += 1

    def name_at(self, i: int) -> str | None:
        """The (possibly schema-qualified) name starting at token ``i``; its last part."""
        tokens = self.tokens
        if i >= len(tokens) or tokens[i] in _PUNCTUATION:
            return None
        while i + 2 < len(tokens) and tokens[i + 1] == "." and tokens[i + 2] not in _PUNCTUATION:
            i += 2
        return _name(tokens[i])

    def table_after(self, verb: int) -> str | None:
        """Main table of the statement whose verb is token ``verb``."""
        upper, depth = self.upper, self.depth
        kind, level = upper[verb], depth[verb]
        i = verb + 1
        if kind in ("INSERT", "UPDATE"):
            # INSERT OR REPLACE INTO t, UPDATE OR IGNORE t, UPDATE ONLY t.
            while i < len(upper) and upper[i] in (
                "OR",
                "REPLACE",
                "IGNORE",
                "ROLLBACK",
                "ABORT",
                "FAIL",
                "INTO",
                "ONLY",
            ):
                i += 1
            return self.name_at(i)
        for j in range(i, len(upper)):
            if depth[j] < level:
                return None
            if depth[j] == level and upper[j] == "FROM":
                k = j + 1
                if k < len(upper) and upper[k] == "ONLY":
                    k += 1
                if k < len(upper) and upper[k] == "(":
                    # FROM (SELECT ... FROM t) AS anon: the subquery's table.
                    inner = self.first_verb(k + 1, depth[k] + 1)
                    return self.table_after(inner) if inner is not None else None
                return self.name_at(k)
        return None

    def first_verb(self, start: int, level: int) -> int | None:
        """Index of the first SELECT/INSERT/UPDATE/DELETE at ``level`` from ``start``."""
        for j in range(start, len(self.upper)):
            if self.depth[j] < level:
                return None
            if self.depth[j] == level and self.upper[j] in _VERBS:
                return j
        return None

    def tables(self) -> list[str]:
        """Every name that follows FROM, JOIN, INTO or UPDATE, in order."""
        found = []
        for j, word in enumerate(self.upper):
            if word in ("FROM", "JOIN", "INTO", "UPDATE"):
                name = self.name_at(j + 1)
                if name is not None:
                    found.append(name)
        return found


def classify(statement: str) -> tuple[str, str, str]:
    """``(operation, table, fingerprint)`` of a statement; table is uncapped here.

    >>> classify("WITH r AS (SELECT id FROM items) DELETE FROM tags WHERE id = 1")[:2]
    ('DELETE', 'tags')
    """
    text = fingerprint(statement)
    parsed = _Parsed(text)
    upper = parsed.upper
    start = 0
    while start < len(upper) and upper[start] == "(":
        start += 1
    if start >= len(upper):
        return "OTHER", NO_TABLE, text
    ctes: set[str] = set()
    if upper[start] == "WITH":
        level = parsed.depth[start]
        verb = parsed.first_verb(start + 1, level)
        if verb is None:
            return "OTHER", NO_TABLE, text
        # At the WITH's depth, between WITH and the verb, only CTE names and keywords remain.
        ctes = {
            _name(parsed.tokens[j])
            for j in range(start + 1, verb)
            if parsed.depth[j] == level
            and upper[j] not in ("RECURSIVE", "AS", "NOT", "MATERIALIZED", ",")
        }
    elif upper[start] in _VERBS:
        verb = start
    else:
        return "OTHER", NO_TABLE, text
    table = parsed.table_after(verb)
    if table is not None and table in ctes:
        # The statement reads a CTE: name the first real table the CTEs read.
        table = next((name for name in parsed.tables() if name not in ctes), None)
    return upper[verb], table or NO_TABLE, text


class _Statement:
    """A classified statement; ``duration`` is its histogram child once it succeeded."""

    __slots__ = ("duration", "fingerprint", "operation", "table")

    def __init__(self, operation: str, table: str, fingerprint: str) -> None:
        self.operation = operation
        self.table = table
        self.fingerprint = fingerprint
        # Bound on first success, so a statement that only ever fails adds no histogram.
        self.duration: Any = None


class _Statements:
    """Classifications of statement strings, shared by every engine using one Metrics."""

    def __init__(self, metrics: catalogue.Metrics) -> None:
        self.metrics = metrics
        self.duration = metrics[catalogue.DB_QUERY_DURATION]
        self._cache: dict[str, _Statement] = {}
        self._tables: set[str] = set()
        self._lock = threading.Lock()

    def get(self, statement: str) -> _Statement:
        """The classification of ``statement``; parsed only the first time it is seen."""
        found = self._cache.get(statement)
        if found is not None:
            return found
        operation, table, text = classify(statement)
        with self._lock:
            if table != NO_TABLE and table not in self._tables:
                if len(self._tables) < MAX_TABLES:
                    self._tables.add(table)
                else:
                    table = catalogue.OTHER
            if len(self._cache) >= MAX_STATEMENTS:
                # Statements with inlined literals never repeat; start over rather than grow.
                self._cache.clear()
            found = _Statement(operation, table, text)
            self._cache[statement] = found
        return found


_statements: weakref.WeakKeyDictionary[catalogue.Metrics, _Statements] = weakref.WeakKeyDictionary()
_statements_lock = threading.Lock()


def _statements_for(metrics: catalogue.Metrics) -> _Statements:
    with _statements_lock:
        found = _statements.get(metrics)
        if found is None:
            found = _statements[metrics] = _Statements(metrics)
        return found


# --- Fault reporting ------------------------------------------------------------------

# Its own clock, apart from the middleware's: a fault there must not hide one here.
_last_fault = -math.inf


def _fault(where: str) -> None:
    """Log a failure inside a listener (at most once per FAULT_LOG_INTERVAL); the query goes on."""
    global _last_fault
    now = time.monotonic()
    if now - _last_fault >= FAULT_LOG_INTERVAL:
        _last_fault = now
        log.exception("database metrics failed in %s; the statement itself was not affected", where)


# --- Engine instrumentation ---------------------------------------------------------


def pool_name(engine: sa.Engine) -> str:
    """Default ``pool`` label: backend and database name, never host or credentials."""
    url = engine.url
    database = url.database or ""
    if url.get_backend_name() == "sqlite":
        database = database.replace("\\", "/").rsplit("/", 1)[-1] or "memory"
        database = "memory" if database == ":memory:" else database
    name = f"{url.get_backend_name()}:{database}" if database else url.get_backend_name()
    return name[:MAX_POOL_NAME]


class _Instrumentation:
    """Listeners and pool wrappers of one engine; reconfigured, never duplicated."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = weakref.ref(engine)
        self._starts: dict[int, float] = {}
        self._pool_lock = threading.Lock()
        # Records checked out of pools that keep no count of their own (NullPool & co).
        self._checked_out: set[int] = set()

    def configure(
        self,
        metrics: catalogue.Metrics,
        slow_query_seconds: float,
        name: str,
        sql_comments: bool = False,
    ) -> None:
        # Tagged statements end in a per-request comment (sqlcomment): drop it before the
        # statement is looked up, or every request would add a cache entry.
        self.uncomment: Callable[[str], str] | None = (
            sqlcomment.without_comment if sql_comments else None
        )
        self.statements = _statements_for(metrics)
        self.metrics = metrics
        self.slow_query_seconds = slow_query_seconds
        self.name = name
        engine = self._engine()
        sized = engine is not None and isinstance(engine.pool, QueuePool)
        # Only pools with a size get size, max_overflow and overflow series (module docstring).
        specs = [catalogue.DB_POOL_CHECKED_OUT]
        if sized:
            specs += [
                catalogue.DB_POOL_SIZE,
                catalogue.DB_POOL_MAX_OVERFLOW,
                catalogue.DB_POOL_OVERFLOW,
            ]
        self._gauges = {spec: metrics[spec].labels(name) for spec in specs}
        # Created now, so the series exists at 0 before the first timeout.
        self._timeouts = metrics[catalogue.DB_POOL_CHECKOUT_TIMEOUTS].labels(name)

    # --- statements ---

    def before_cursor_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        try:
            starts = self._starts
            if len(starts) > 10_000:
                # Only reachable if executions vanished without after/handle_error events.
                starts.clear()
            # Keyed by cursor: unique among executions in flight, across threads and greenlets.
            starts[id(cursor)] = time.perf_counter()
        except Exception:
            _fault("before_cursor_execute")

    def after_cursor_execute(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        try:
            started = self._starts.pop(id(cursor), None)
            if started is None:
                return
            elapsed = time.perf_counter() - started
            if self.uncomment is not None:
                statement = self.uncomment(statement)
            found = self.statements.get(statement)
            duration = found.duration
            if duration is None:
                duration = found.duration = self.statements.duration.labels(
                    found.operation, found.table
                )
            duration.observe(elapsed)
            if elapsed >= self.slow_query_seconds:
                self._slow(found, elapsed)
        except Exception:
            _fault("after_cursor_execute")

    def handle_error(self, ctx: sa.engine.ExceptionContext) -> None:
        try:
            # getattr: SQLAlchemy 2.1's ExceptionContextImpl leaves its ``cursor`` slot unset.
            cursor = getattr(ctx, "cursor", None)
            if cursor is None and ctx.execution_context is not None:
                cursor = getattr(ctx.execution_context, "cursor", None)
            if cursor is not None:
                self._starts.pop(id(cursor), None)
            if ctx.statement is None or getattr(ctx, "is_pre_ping", False):
                return
            statement = ctx.statement if self.uncomment is None else self.uncomment(ctx.statement)
            found = self.statements.get(statement)
            self.metrics[catalogue.DB_QUERY_ERRORS].labels(found.operation, found.table).inc()
        except Exception:
            _fault("handle_error")

    def _slow(self, found: _Statement, elapsed: float) -> None:
        self.metrics[catalogue.DB_SLOW_QUERIES].labels(found.operation, found.table).inc()
        duration_ms = round(elapsed * 1000, 3)
        # Parameters are never logged: they can hold personal data.
        extra: dict[str, Any] = {
            "event": "slow_query",
            "operation": found.operation,
            "table": found.table,
            "fingerprint": found.fingerprint,
            "duration_ms": duration_ms,
        }
        request = current()
        if request is not None:
            extra["request_id"] = str(request.request_id)
            extra["route"] = str(request.route)
        log.warning("slow query (%.1f ms): %s", duration_ms, found.fingerprint, extra=extra)

    # --- pool ---

    def wrap_pool(self, pool: sa.pool.Pool) -> None:
        """Count checkout timeouts and refresh the gauges after checkouts and returns."""
        if pool.__dict__.get("_genonaut_instrumented"):
            return
        connect = pool.connect
        # Private, but what checkin calls right after the checkin event; without it the
        # gauges would only catch up at the next checkout (the pool tests pin this).
        return_conn = getattr(pool, "_return_conn", None)

        def counted_connect() -> Any:
            try:
                return connect()
            except sa.exc.TimeoutError:
                self._timeouts.inc()
                raise
            finally:
                self.refresh_pool()

        pool.connect = counted_connect  # type: ignore[method-assign]
        if return_conn is not None:
            original_return: Callable[[Any], None] = return_conn

            def refreshing_return(record: Any) -> None:
                try:
                    original_return(record)
                finally:
                    self.refresh_pool()

            pool._return_conn = refreshing_return  # type: ignore[method-assign]
        pool._genonaut_instrumented = True  # type: ignore[attr-defined]
        self.refresh_pool(static=True)

    def refresh_pool(self, static: bool = False) -> None:
        """Set the gauges from the pool's own counts (under a lock: the last write wins)."""
        try:
            engine = self._engine()
            if engine is None:
                return
            pool, gauges = engine.pool, self._gauges
            with self._pool_lock:
                if isinstance(pool, QueuePool):
                    if static:
                        limit = pool._max_overflow
                        gauges[catalogue.DB_POOL_SIZE].set(pool.size())
                        gauges[catalogue.DB_POOL_MAX_OVERFLOW].set(
                            limit if limit >= 0 else math.inf
                        )
                    gauges[catalogue.DB_POOL_CHECKED_OUT].set(pool.checkedout())
                    # QueuePool starts its overflow at -size; below the size nothing overflows.
                    gauges[catalogue.DB_POOL_OVERFLOW].set(max(pool.overflow(), 0))
                else:
                    gauges[catalogue.DB_POOL_CHECKED_OUT].set(len(self._checked_out))
        except Exception:
            _fault("pool gauges")

    def checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        try:
            self._checked_out.add(id(record))
            self.refresh_pool()
        except Exception:
            _fault("checkout")

    def checkin(self, dbapi_connection: Any, record: Any) -> None:
        try:
            self._checked_out.discard(id(record))
            self.refresh_pool()
        except Exception:
            _fault("checkin")

    def detach(self, dbapi_connection: Any, record: Any) -> None:
        self.checkin(dbapi_connection, record)

    def engine_disposed(self, engine: sa.Engine) -> None:
        try:
            self.wrap_pool(engine.pool)
        except Exception:
            _fault("engine_disposed")


_TAGGER = sqlcomment.Tagger()


def _tag(engine: sa.Engine, on: bool) -> None:
    """Add or remove the sqlcommenter listener, so a reconfiguration can turn it off."""
    listening = event.contains(engine, "before_cursor_execute", _TAGGER)
    if on and not listening:
        event.listen(engine, "before_cursor_execute", _TAGGER, retval=True)
    elif listening and not on:
        event.remove(engine, "before_cursor_execute", _TAGGER)


_instrumented: weakref.WeakKeyDictionary[sa.Engine, _Instrumentation] = weakref.WeakKeyDictionary()
_instrumented_lock = threading.Lock()


def instrument_engine(
    engine: Any,
    *,
    metrics: catalogue.Metrics,
    slow_query_seconds: float,
    name: str | None = None,
    sql_comments: bool = False,
) -> None:
    """Record query, error, slow-query and pool metrics of a SQLAlchemy engine.

    Accepts an ``Engine`` or an ``AsyncEngine``. Calling it again for the same
    engine reconfigures it (the last call wins); statements are never counted twice.
    ``sql_comments`` tags each statement run in a request with its route and request
    id (:mod:`sqlcomment`).

    >>> engine = sa.create_engine("sqlite://")
    >>> from prometheus_client import CollectorRegistry
    >>> instrument_engine(engine, metrics=catalogue.Metrics(CollectorRegistry()),
    ...                   slow_query_seconds=0.1)
    """
    sync_engine: sa.Engine = getattr(engine, "sync_engine", engine)
    if not isinstance(sync_engine, sa.Engine):
        raise TypeError(
            f"instrument_engine() needs a SQLAlchemy Engine or AsyncEngine, got {type(engine)!r}"
        )
    if slow_query_seconds < 0:
        raise ValueError(f"slow_query_seconds must be >= 0, got {slow_query_seconds!r}")
    label = (name or pool_name(sync_engine))[:MAX_POOL_NAME]
    with _instrumented_lock:
        found = _instrumented.get(sync_engine)
        first = found is None
        if found is None:
            found = _instrumented[sync_engine] = _Instrumentation(sync_engine)
        found.configure(metrics, slow_query_seconds, label, sql_comments)
        _tag(sync_engine, sql_comments)
        if first:
            event.listen(sync_engine, "before_cursor_execute", found.before_cursor_execute)
            event.listen(sync_engine, "after_cursor_execute", found.after_cursor_execute)
            event.listen(sync_engine, "handle_error", found.handle_error)
            event.listen(sync_engine, "engine_disposed", found.engine_disposed)
            if not isinstance(sync_engine.pool, QueuePool):
                # Only pools without counts of their own need the checkout/checkin events.
                event.listen(sync_engine, "checkout", found.checkout)
                event.listen(sync_engine, "checkin", found.checkin)
                event.listen(sync_engine, "detach", found.detach)
        found.wrap_pool(sync_engine.pool)
        # A new configuration (metrics, name) must start from the pool's current state.
        found.refresh_pool(static=True)
