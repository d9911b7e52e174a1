"""Database metrics and slow-query logs for SQLAlchemy engines.

Statements are timed by the ``before_cursor_execute`` / ``after_cursor_execute``
events and labelled by operation (``SELECT``, ``INSERT``, ``UPDATE``,
``DELETE``, everything else ``OTHER``) and main table. A statement string is
classified once, by a small tokenizer, and the result (with the histogram
child for its labels) is cached: statements repeat, so the hot path is one dict
lookup and one ``observe()``. Tables get at most :data:`MAX_TABLES` label
values per metric registry; later ones are folded into ``other``. Fingerprints
(:mod:`.sql`) follow the engine's dialect.

Inside a paginated request, a statement that pages (a ``SELECT`` with
``LIMIT``/``OFFSET``/``FETCH``, but not a single-row ``LIMIT 1`` lookup) adds
its time, and the rows the driver reports (``cursor.rowcount``: psycopg says
how many a ``SELECT`` returned, SQLite's driver always -1), to the request's
page query: ``pagination_query_duration_seconds`` and
``pagination_items_returned`` then need no code in the repository. A
``pagination_query()`` timer in the request wins over it.

Every fault counts in ``database_errors_total{pool, kind}``, created at zero:
``connection`` (the connection could not be opened, or was lost while a
statement ran: SQLAlchemy's ``handle_error`` without a statement, or a
disconnect), ``pool_timeout`` (no pooled connection came free in time) and
``statement`` (the statement raised). Statement errors are also counted by
operation and table in ``database_query_errors_total``.

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
from genonaut_monitoring.exporters.sql import (
    MAX_FINGERPRINT,
    NO_TABLE,
    OPERATIONS,
    classify,
    fingerprint,
    pages,
)

__all__ = [
    "MAX_FINGERPRINT",
    "NO_TABLE",
    "OPERATIONS",
    "classify",
    "fingerprint",
    "instrument_engine",
    "pool_name",
]

log = logging.getLogger("genonaut_monitoring.db")

# Distinct table label values per metric registry; more are labelled catalogue.OTHER.
MAX_TABLES = 50
# Distinct statement strings whose classification is cached; the cache restarts when full.
MAX_STATEMENTS = 2_000
# Pool label values are cut to this length.
MAX_POOL_NAME = 64


class _Statement:
    """A classified statement; ``duration`` is its histogram child once it succeeded."""

    __slots__ = ("duration", "fingerprint", "operation", "pages", "table")

    def __init__(self, operation: str, table: str, fingerprint: str) -> None:
        self.operation = operation
        self.table = table
        self.fingerprint = fingerprint
        # A SELECT with LIMIT/OFFSET/FETCH: inside a paginated request, it fetches the page.
        self.pages = pages(operation, fingerprint)
        # Bound on first success, so a statement that only ever fails adds no histogram.
        self.duration: Any = None


class _Statements:
    """Classifications of statement strings, shared by every engine using one Metrics.

    One cache per dialect: what double quotes mean depends on it (:mod:`.sql`).
    """

    def __init__(self, metrics: catalogue.Metrics) -> None:
        self.metrics = metrics
        self.duration = metrics[catalogue.DB_QUERY_DURATION]
        self._caches: dict[str, dict[str, _Statement]] = {}
        self._tables: set[str] = set()
        self._lock = threading.Lock()

    def cache(self, dialect: str) -> dict[str, _Statement]:
        """The statements already classified for ``dialect``."""
        with self._lock:
            return self._caches.setdefault(dialect, {})

    def get(self, statement: str, dialect: str) -> _Statement:
        """The classification of ``statement``; parsed only the first time it is seen."""
        cache = self._caches.get(dialect) or self.cache(dialect)
        found = cache.get(statement)
        if found is not None:
            return found
        operation, table, text = classify(statement, dialect)
        with self._lock:
            if table != NO_TABLE and table not in self._tables:
                if len(self._tables) < MAX_TABLES:
                    self._tables.add(table)
                else:
                    table = catalogue.OTHER
            if len(cache) >= MAX_STATEMENTS:
                # Statements with inlined literals never repeat; start over rather than grow.
                cache.clear()
            found = _Statement(operation, table, text)
            cache[statement] = found
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
        self.dialect = engine.dialect.name if engine is not None else ""
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
        # Created now, so the series exist at 0 before the first timeout or error.
        self._timeouts = metrics[catalogue.DB_POOL_CHECKOUT_TIMEOUTS].labels(name)
        self._errors = {
            kind: metrics[catalogue.DB_ERRORS].labels(name, kind)
            for kind in catalogue.DB_ERROR_KINDS
        }

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
            found = self.statements.get(statement, self.dialect)
            duration = found.duration
            if duration is None:
                duration = found.duration = self.statements.duration.labels(
                    found.operation, found.table
                )
            duration.observe(elapsed)
            if elapsed >= self.slow_query_seconds:
                self._slow(found, elapsed)
            if found.pages:
                self._page(cursor, context, elapsed)
        except Exception:
            _fault("after_cursor_execute")

    @staticmethod
    def _page(cursor: Any, context: Any, elapsed: float) -> None:
        """Add a paging statement's time and rows to its paginated request, if any."""
        request = current()
        page = request.pagination() if request is not None else None
        if page is None:
            return
        # A single-row lookup (ORM .first() adds LIMIT 1) does not fetch the page.
        invoked = getattr(context, "invoked_statement", None)
        if getattr(invoked, "_limit", None) == 1:
            return
        page.auto_seconds = (page.auto_seconds or 0.0) + elapsed
        # psycopg and most drivers report a SELECT's rows; SQLite's driver says -1.
        rows = getattr(cursor, "rowcount", -1)
        if isinstance(rows, int) and rows >= 0:
            page.auto_items = (page.auto_items or 0) + rows

    def handle_error(self, ctx: sa.engine.ExceptionContext) -> None:
        try:
            # getattr: SQLAlchemy 2.1's ExceptionContextImpl leaves its ``cursor`` slot unset.
            cursor = getattr(ctx, "cursor", None)
            if cursor is None and ctx.execution_context is not None:
                cursor = getattr(ctx.execution_context, "cursor", None)
            if cursor is not None:
                self._starts.pop(id(cursor), None)
            if getattr(ctx, "is_pre_ping", False):
                # A failed pre-ping only makes the pool reconnect; failing that is counted.
                return
            lost = ctx.statement is None or ctx.is_disconnect
            self._errors["connection" if lost else "statement"].inc()
            if ctx.statement is None:
                return
            statement = ctx.statement if self.uncomment is None else self.uncomment(ctx.statement)
            found = self.statements.get(statement, self.dialect)
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
                self._errors["pool_timeout"].inc()
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
