"""A Genonaut-shaped content API that the monitoring kit watches.

    uvicorn exporters.demo:app                    # settings from the environment
    app = create_app("sqlite:///demo.db", seed_rows=2_000, faults=True)

``content_items`` lives in SQLite (default ``./genonaut-demo.db``) or in
PostgreSQL via ``DATABASE_URL``; it is created and seeded with
``DEMO_SEED_ROWS`` rows on first start and never reseeded. Offset pagination
(``page``/``page_size`` or ``skip``/``limit``) and keyset pagination (opaque
cursor over ``(created_at, id)``) serve the same newest-first order, so deep
offsets can be compared with cursors on the same data. ``DEMO_FAULTS=1`` adds
``/debug/faults`` to inject 500s and latency.

Endpoints are plain ``def``: FastAPI runs them in AnyIO's worker threads (40 by
default), so a slow query holds a thread, never the event loop. The connection
pool (``POOL_SIZE`` + ``POOL_MAX_OVERFLOW``) is deliberately smaller than that
limit: under overload requests queue on checkout, which is what the pool
saturation metrics and alerts watch; a checkout that times out is a 503.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger("genonaut_monitoring.demo")

DEFAULT_DATABASE_URL = "sqlite:///./genonaut-demo.db"
DEFAULT_SEED_ROWS = 100_000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Deeper offsets are refused (422) rather than handed to the database as huge integers.
MAX_OFFSET = 100_000_000
MAX_ITEM_ID = 2**31 - 1
# total_count is cached this long: COUNT(*) over the whole table would otherwise
# cost more than the page query itself on every offset request.
COUNT_CACHE_SECONDS = 5.0
# Server-side LRU for item-by-id (cache "content-items" in the metrics).
ITEM_CACHE_SIZE = 1_024
ITEM_CACHE_NAME = "content-items"
POOL_SIZE = 10
POOL_MAX_OVERFLOW = 10
POOL_TIMEOUT_SECONDS = 10.0
# Longest injectable latency, so a typo cannot hang every request for hours.
MAX_FAULT_LATENCY_SECONDS = 60.0
CURSOR_VERSION = 1
SEED = 20_240_101
# Any constant works; it only has to be the same in every worker.
_PG_SEED_LOCK = 0x67656E6F

API_PREFIX = "/api/v1/content"
FAULTS_PATH = "/debug/faults"

metadata = sa.MetaData()
content_items = sa.Table(
    "content_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("tags", sa.JSON, nullable=False),
    sa.Column("content_type", sa.String(16), nullable=False),
    sa.Column("creator", sa.String(64), nullable=False),
    sa.Column("quality_score", sa.Float, nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    # Keyset pagination walks this index newest first; offsets walk it too.
    sa.Index("ix_content_items_created_at_id", "created_at", "id"),
)
# One row, written in the seeding transaction: its presence means "already seeded".
demo_seed = sa.Table(
    "demo_seed",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seed_rows", sa.Integer, nullable=False),
    sa.Column("seeded_at", sa.DateTime, nullable=False),
)
_LIST_COLUMNS = (
    content_items.c.id,
    content_items.c.title,
    content_items.c.created_at,
    content_items.c.tags,
    content_items.c.content_type,
    content_items.c.creator,
)
_NEWEST_FIRST = (content_items.c.created_at.desc(), content_items.c.id.desc())


# --- Settings -------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer: set it to e.g. {default}") from None


def _env_flag(name: str) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name}={raw!r} is not a flag: set it to 1 or 0")


# --- Schema and seeding ---------------------------------------------------------------

_CONTENT_TYPES = ("image", "video", "audio", "text")
_TAGS = (
    "abstract", "anime", "architecture", "cyberpunk", "fantasy", "landscape", "macro",
    "minimal", "neon", "noir", "portrait", "retro", "sci-fi", "surreal", "watercolor",
)  # fmt: skip
_ADJECTIVES = ("Quiet", "Golden", "Broken", "Electric", "Hidden", "Endless", "Crimson", "Pale")
_NOUNS = ("Harbor", "Forest", "Machine", "Garden", "Signal", "Cathedral", "Orbit", "Tide")
_EPOCH = datetime(2024, 1, 1)


def seed_rows_data(count: int, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """Deterministic rows; ``created_at`` is random to the second, so ties exist."""
    rng = random.Random(seed)
    span = max(count, 1) * 30  # about one item every 30 s on average
    for item_id in range(1, count + 1):
        yield {
            "id": item_id,
            "title": f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} #{item_id}",
            "created_at": _EPOCH + timedelta(seconds=rng.randrange(span)),
            "tags": sorted(rng.sample(_TAGS, rng.randint(1, 4))),
            "content_type": rng.choice(_CONTENT_TYPES),
            "creator": f"creator-{rng.randrange(500):03d}",
            "quality_score": round(rng.random(), 3),
            "prompt": f"{rng.choice(_ADJECTIVES).lower()} {rng.choice(_NOUNS).lower()}, "
            f"{rng.choice(_TAGS)} style, detailed, seed {rng.randrange(10**9)}",
        }


@contextmanager
def _schema_lock(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction that no other worker can run at the same time."""
    if engine.dialect.name == "sqlite":
        # BEGIN IMMEDIATE takes the write lock up front, so two workers starting
        # together cannot both decide the table is empty.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
    else:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_SEED_LOCK})
            yield conn


def _insert_rows(conn: sa.Connection, count: int) -> None:
    """Insert ``count`` rows fast: COPY on psycopg2, one executemany elsewhere."""
    raw = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql" and raw is not None:
        cursor = raw.cursor()
        if hasattr(cursor, "copy_expert"):
            _copy_rows(cursor, count)
            # Fresh statistics, or the planner guesses at the size of a table it has never seen.
            conn.exec_driver_sql("ANALYZE content_items")
            return
    batch: list[dict[str, Any]] = []
    for row in seed_rows_data(count):
        batch.append(row)
        if len(batch) == 20_000:
            conn.execute(content_items.insert(), batch)
            batch = []
    if batch:
        conn.execute(content_items.insert(), batch)


def _copy_rows(cursor: Any, count: int) -> None:
    """PostgreSQL COPY from an in-memory CSV: an order of magnitude faster than INSERTs."""
    import csv
    import io

    columns = [column.name for column in content_items.columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in seed_rows_data(count):
        values = dict(row, tags=json.dumps(row["tags"]), created_at=row["created_at"].isoformat())
        writer.writerow([values[name] for name in columns])
    buffer.seek(0)
    cursor.copy_expert(
        f"COPY content_items ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buffer
    )
    cursor.close()


def prepare_database(engine: sa.Engine, seed_rows: int) -> int:
    """Create the tables and seed them once; return the rows the table holds."""
    started = time.perf_counter()
    with _schema_lock(engine) as conn:
        metadata.create_all(conn)
        seeded = conn.execute(sa.select(demo_seed.c.seed_rows)).scalar()
        existing = conn.execute(sa.select(sa.func.count()).select_from(content_items)).scalar_one()
        if seeded is None and existing == 0:
            _insert_rows(conn, seed_rows)
            conn.execute(
                demo_seed.insert(),
                {
                    "id": 1,
                    "seed_rows": seed_rows,
                    "seeded_at": datetime.now(UTC).replace(tzinfo=None),
                },
            )
            log.info(
                "seeded content_items with %d rows in %.2f s",
                seed_rows,
                time.perf_counter() - started,
                extra={"event": "seed", "rows": seed_rows},
            )
            return seed_rows
    if seeded is None:
        log.info(
            "content_items already holds %d rows not seeded by the demo: left as they are",
            existing,
            extra={"event": "seed_skipped", "rows": existing},
        )
    elif existing != seed_rows:
        log.info(
            "content_items already holds %d rows; DEMO_SEED_ROWS=%d is ignored and the data kept "
            "(drop the tables or use a new database to reseed)",
            existing,
            seed_rows,
            extra={"event": "seed_skipped", "rows": existing, "requested_rows": seed_rows},
        )
    else:
        log.info("content_items already seeded with %d rows", existing)
    return int(existing)


def make_engine(database_url: str) -> sa.Engine:
    """An engine for the demo database; SQLite files get WAL so readers never block."""
    url = sa.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        # The seeding worker may hold the write lock for a few seconds.
        engine = sa.create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=POOL_SIZE,
            max_overflow=POOL_MAX_OVERFLOW,
            pool_timeout=POOL_TIMEOUT_SECONDS,
            poolclass=sa.pool.QueuePool,
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return sa.create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        pool_pre_ping=True,
    )


# --- Queries --------------------------------------------------------------------------


def offset_page_query(offset: int, rows: int) -> sa.Select[Any]:
    """``rows`` rows newest first, skipping ``offset``: the database walks every skipped row."""
    return sa.select(*_LIST_COLUMNS).order_by(*_NEWEST_FIRST).offset(offset).limit(rows)


def cursor_page_query(after: tuple[datetime, int] | None, rows: int) -> sa.Select[Any]:
    """``rows`` rows newest first, after ``(created_at, id)``: one index seek at any depth."""
    query = sa.select(*_LIST_COLUMNS).order_by(*_NEWEST_FIRST).limit(rows)
    if after is None:
        return query
    key = sa.tuple_(content_items.c.created_at, content_items.c.id)
    return query.where(key < sa.tuple_(sa.literal(after[0], sa.DateTime), sa.literal(after[1])))


# --- Cursors --------------------------------------------------------------------------


class CursorError(ValueError):
    """A cursor that this API did not hand out (or that was altered)."""


def encode_cursor(created_at: datetime, item_id: int) -> str:
    """Opaque base64url token for the position after ``(created_at, item_id)``."""
    raw = json.dumps([CURSOR_VERSION, created_at.isoformat(), item_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(token: str) -> tuple[datetime, int]:
    """The position inside a cursor; :class:`CursorError` says what is wrong."""
    if not token or len(token) > 200:
        raise CursorError("cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise CursorError("cursor is not a base64url token issued by this API") from None
    if not (isinstance(value, list) and len(value) == 3):
        raise CursorError("cursor has the wrong shape")
    version, created_at, item_id = value
    if type(version) is not int or version != CURSOR_VERSION:
        raise CursorError(
            f"cursor version {version!r} is not supported (expected {CURSOR_VERSION})"
        )
    # bool is an int subclass: type() rather than isinstance() keeps `true` out.
    if not isinstance(created_at, str) or type(item_id) is not int:
        raise CursorError("cursor has the wrong shape")
    if not 0 < item_id <= MAX_ITEM_ID:
        raise CursorError("cursor has the wrong shape")
    try:
        position = datetime.fromisoformat(created_at)
    except ValueError:
        raise CursorError("cursor holds an invalid timestamp") from None
    # Issued cursors hold naive UTC timestamps, as the table does; an offset means tampering.
    if position.tzinfo is not None:
        raise CursorError("cursor holds an invalid timestamp")
    return position, item_id


# --- Caches ---------------------------------------------------------------------------


class CountCache:
    """``COUNT(*)`` of the table, recomputed at most every ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._value: int | None = None
        self._expires = 0.0

    def get(self, compute: Callable[[], int]) -> int:
        """The cached count, or ``compute()`` when it is missing or stale."""
        with self._lock:
            now = time.monotonic()
            if self._value is None or now >= self._expires:
                self._value = compute()
                self._expires = now + self.ttl
            return self._value


class LruCache:
    """A small thread-safe LRU that reports hits and misses to a cache metric."""

    def __init__(self, size: int, metrics: Any) -> None:
        self.size = size
        self.metrics = metrics
        self._lock = threading.Lock()
        self._items: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def get(self, key: int) -> dict[str, Any] | None:
        """The cached value (now most recent), counting a hit or a miss."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
        if value is None:
            self.metrics.miss()
        else:
            self.metrics.hit()
        return value

    def put(self, key: int, value: dict[str, Any]) -> None:
        """Store ``value``, evicting the least recently used entry beyond ``size``."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


# --- Faults ---------------------------------------------------------------------------


class InjectedFault(RuntimeError):
    """The bug ``exception_rate`` plants: raised, never handled, so the server answers 500."""


class FaultSettings(BaseModel):
    """Injected faults: body of ``PUT /debug/faults``."""

    error_rate: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    # Share of matching requests whose handler raises (an unhandled exception, as a bug
    # would), on top of error_rate's handled 500s: http_exceptions_total counts these.
    exception_rate: float = Field(default=0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    latency_seconds: float = Field(
        default=0.0, ge=0.0, le=MAX_FAULT_LATENCY_SECONDS, allow_inf_nan=False
    )
    route_prefix: str = Field(default="/api/", min_length=1, max_length=200, pattern=r"^/")


class Faults:
    """The live fault settings and the dependency that applies them."""

    def __init__(self) -> None:
        self.settings = FaultSettings()
        self._random = random.Random()

    async def inject(self, request: Request) -> None:
        """Sleep and fail matching requests; runs after routing, so metrics see the route."""
        settings = self.settings
        path = request.url.path
        if not path.startswith(settings.route_prefix) or path == FAULTS_PATH:
            return
        if settings.latency_seconds:
            import asyncio

            await asyncio.sleep(settings.latency_seconds)
        if settings.error_rate and self._random.random() < settings.error_rate:
            raise HTTPException(500, "injected fault (DELETE /debug/faults to clear)")
        if settings.exception_rate and self._random.random() < settings.exception_rate:
            raise InjectedFault("injected exception (DELETE /debug/faults to clear)")


# --- Responses ------------------------------------------------------------------------


class Item(BaseModel):
    id: int
    title: str
    created_at: str
    tags: list[str]
    content_type: str
    creator: str


class ItemDetail(Item):
    quality_score: float
    prompt: str


class OffsetPagination(BaseModel):
    mode: str = "offset"
    page: int
    page_size: int
    offset: int
    total_count: int
    has_next: bool


class CursorPagination(BaseModel):
    mode: str = "cursor"
    page_size: int
    next_cursor: str | None
    has_next: bool


class OffsetPage(BaseModel):
    items: list[Item]
    pagination: OffsetPagination


class CursorPage(BaseModel):
    items: list[Item]
    pagination: CursorPagination


def _iso(value: datetime) -> str:
    return value.isoformat() + "Z"


def _item(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "created_at": _iso(row.created_at),
        "tags": list(row.tags),
        "content_type": row.content_type,
        "creator": row.creator,
    }


def _unprocessable(field: str, message: str, value: Any) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors."""
    detail = [{"type": "value_error", "loc": ["query", field], "msg": message, "input": value}]
    return HTTPException(422, detail)


@dataclass(frozen=True)
class OffsetWindow:
    page: int
    page_size: int
    offset: int


def offset_window(
    page: int | None, page_size: int | None, skip: int | None, limit: int | None
) -> OffsetWindow:
    """Resolve either parameter style into one window; mixing them is a 422."""
    page_style = page is not None or page_size is not None
    skip_style = skip is not None or limit is not None
    if page_style and skip_style:
        raise _unprocessable(
            "skip" if skip is not None else "limit",
            "use either page/page_size or skip/limit, not both",
            {"page": page, "page_size": page_size, "skip": skip, "limit": limit},
        )
    if skip_style:
        size = limit or DEFAULT_PAGE_SIZE
        offset = skip or 0
        window = OffsetWindow(offset // size + 1, size, offset)
    else:
        size = page_size or DEFAULT_PAGE_SIZE
        number = page or 1
        window = OffsetWindow(number, size, (number - 1) * size)
    if window.offset > MAX_OFFSET:
        raise _unprocessable(
            "skip" if skip_style else "page",
            f"offset {window.offset} is beyond the maximum {MAX_OFFSET}; "
            "use /api/v1/content/cursor to walk deep",
            window.offset,
        )
    return window


# --- Application ----------------------------------------------------------------------


def create_app(
    database_url: str | None = None,
    seed_rows: int | None = None,
    faults: bool | None = None,
    registry: CollectorRegistry | None = None,
    *,
    count_cache_seconds: float = COUNT_CACHE_SECONDS,
    item_cache_size: int = ITEM_CACHE_SIZE,
    log_level: str | None = None,
    log_format: str | None = None,
) -> FastAPI:
    """The demo API; each argument left as None comes from its environment variable.

    >>> app = create_app("sqlite:///demo.db", seed_rows=2_000, faults=True)
    """
    from genonaut_monitoring import exporters
    from genonaut_monitoring.exporters.logs import configure_logging

    database_url = database_url or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    seed_rows = _env_int("DEMO_SEED_ROWS", DEFAULT_SEED_ROWS) if seed_rows is None else seed_rows
    if seed_rows < 0:
        raise ValueError(f"seed_rows (DEMO_SEED_ROWS) must be >= 0, got {seed_rows}")
    faults = _env_flag("DEMO_FAULTS") if faults is None else faults
    raw_slow = os.environ.get("SLOW_QUERY_SECONDS", "").strip()
    try:
        slow_query_seconds = float(raw_slow) if raw_slow else None
    except ValueError:
        raise ValueError(f"SLOW_QUERY_SECONDS={raw_slow!r} is not a number of seconds") from None
    # None lets configure_logging read LOG_LEVEL and LOG_FORMAT itself.
    configure_logging(log_level, log_format)
    engine = make_engine(database_url)
    fault_state = Faults() if faults else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Seeding blocks for seconds: keep the event loop free while it runs.
        await anyio.to_thread.run_sync(prepare_database, engine, seed_rows)
        yield
        engine.dispose()

    app = FastAPI(
        title="Genonaut demo content API",
        lifespan=lifespan,
        dependencies=[Depends(fault_state.inject)] if fault_state else [],
    )
    app.state.engine = engine
    app.state.faults = fault_state
    instrumentation = exporters.instrument(
        app,
        engine=engine,
        registry=registry,
        slow_query_seconds=slow_query_seconds,
        # On PostgreSQL, pg_stat_activity then names the route of every session.
        sql_comments=True,
    )
    app.state.instrumentation = instrumentation
    counts = CountCache(count_cache_seconds)
    item_cache = LruCache(item_cache_size, instrumentation.cache(ITEM_CACHE_NAME))

    def count_rows() -> int:
        with engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(content_items)
            return int(conn.execute(query).scalar_one())

    @app.exception_handler(sa.exc.TimeoutError)
    async def _pool_exhausted(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "database connection pool exhausted; retry"}, 503)

    @app.get(API_PREFIX, response_model=OffsetPage)
    # Its parameters default to None (either style may be used): the declaration says
    # what a request that gives no size gets, so one that fails early is still labelled.
    @exporters.paginated("offset", page_size=DEFAULT_PAGE_SIZE)
    def list_content(
        page: Annotated[int | None, Query(ge=1, le=MAX_OFFSET)] = None,
        page_size: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
        skip: Annotated[int | None, Query(ge=0, le=MAX_OFFSET)] = None,
        limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
        offset: Annotated[int | None, Query(ge=0, le=MAX_OFFSET)] = None,
    ) -> dict[str, Any]:
        """Offset pagination, newest first: ``?page=1&page_size=50`` or ``?skip=0&limit=50``.

        ``offset`` is accepted as another name for ``skip``.
        """
        if offset is not None and skip is not None:
            raise _unprocessable("offset", "offset is another name for skip: give one", offset)
        window = offset_window(page, page_size, skip if offset is None else offset, limit)
        query = offset_page_query(window.offset, window.page_size + 1)
        # Optional (the listeners time the page statement by themselves); here it counts
        # the items too, which SQLite's driver does not report, and fetches one row more.
        timed = exporters.pagination_query(
            mode="offset", page_size=window.page_size, offset=window.offset
        )
        with engine.connect() as conn, timed as handle:
            rows = conn.execute(query).all()
            handle.items = min(len(rows), window.page_size)
        total = counts.get(count_rows)
        return {
            "items": [_item(row) for row in rows[: window.page_size]],
            "pagination": {
                "mode": "offset",
                "page": window.page,
                "page_size": window.page_size,
                "offset": window.offset,
                "total_count": total,
                "has_next": len(rows) > window.page_size,
            },
        }

    @app.get(f"{API_PREFIX}/cursor", response_model=CursorPage)
    def list_content_cursor(
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        """Keyset pagination, newest first; pass ``next_cursor`` back unchanged."""
        position = None
        if cursor is not None:
            try:
                position = decode_cursor(cursor)
            except CursorError as exc:
                raise HTTPException(
                    400,
                    f"invalid cursor: {exc}; pass next_cursor from a previous response "
                    "unchanged, or omit cursor to start from the newest item",
                ) from None
        query = cursor_page_query(position, limit + 1)
        timed = exporters.pagination_query()  # counts the items, as above
        with engine.connect() as conn, timed as handle:
            rows = conn.execute(query).all()
            handle.items = min(len(rows), limit)
        page_rows = rows[:limit]
        has_next = len(rows) > limit
        # The last row shown is where the next page starts after.
        next_cursor = (
            encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if has_next else None
        )
        return {
            "items": [_item(row) for row in page_rows],
            "pagination": {
                "mode": "cursor",
                "page_size": limit,
                "next_cursor": next_cursor,
                "has_next": has_next,
            },
        }

    @app.get(f"{API_PREFIX}/{{item_id}}", response_model=ItemDetail)
    def get_content(item_id: Annotated[int, Path(ge=1, le=MAX_ITEM_ID)]) -> dict[str, Any]:
        """One item by id, through the server-side LRU cache."""
        cached = item_cache.get(item_id)
        if cached is not None:
            return cached
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(content_items).where(content_items.c.id == item_id)
            ).first()
        if row is None:
            raise HTTPException(404, f"content item {item_id} does not exist")
        item = _item(row) | {"quality_score": row.quality_score, "prompt": row.prompt}
        item_cache.put(item_id, item)
        return item

    @app.get("/health")
    def health() -> JSONResponse:
        """200 when the database answers, 503 with the reason when it does not."""
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1")).scalar_one()
        except sa.exc.SQLAlchemyError as exc:
            return JSONResponse(
                {"status": "error", "database": f"{type(exc).__name__}: {exc}".splitlines()[0]},
                503,
            )
        return JSONResponse({"status": "ok", "database": "ok"})

    if fault_state is not None:
        _add_fault_routes(app, fault_state)
    return app


def _add_fault_routes(app: FastAPI, state: Faults) -> None:
    @app.get(FAULTS_PATH, response_model=FaultSettings)
    async def get_faults() -> FaultSettings:
        """The fault settings in force."""
        return state.settings

    @app.put(FAULTS_PATH, response_model=FaultSettings)
    async def put_faults(settings: FaultSettings) -> FaultSettings:
        """Inject faults: a 500 with probability ``error_rate``, an unhandled exception with
        ``exception_rate``, plus ``latency_seconds``."""
        state.settings = settings
        log.warning("faults injected: %s", settings.model_dump(), extra={"event": "faults"})
        return settings

    @app.delete(FAULTS_PATH, response_model=FaultSettings)
    async def delete_faults() -> FaultSettings:
        """Clear every injected fault."""
        state.settings = FaultSettings()
        log.warning("faults cleared", extra={"event": "faults"})
        return state.settings


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """``exporters.demo.app`` is built on first access, so importing the module is free."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_app()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
