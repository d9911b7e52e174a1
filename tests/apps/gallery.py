"""An instrumented app shaped unlike the demo, as a real service grows: ``tests.apps.gallery:app``.

Routers with prefixes and router-level dependencies, pagination parameters
carried by a dependency class, a cursor feed, top-N lists, handlers that page
with raw SQL (``LIMIT``/``OFFSET``) and SQLAlchemy Core without ever calling
``pagination_query()``, a route declared by template, a sub-app mounted under
a path parameter, ``StaticFiles``, a server-side cache, writes, and a handler
with a bug (an unhandled exception).

Settings come from the environment: ``DATABASE_URL`` (default a SQLite file
in the working directory), ``GALLERY_ROWS`` (rows seeded on start, default
2000) and ``SLOW_QUERY_SECONDS``.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
import sqlalchemy as sa
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.staticfiles import StaticFiles

from genonaut_monitoring.exporters import instrument, paginated

metadata = sa.MetaData()
images = sa.Table(
    "gallery_images",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.Integer, nullable=False, index=True),
    sa.Column("title", sa.String(100), nullable=False),
    sa.Column("likes", sa.Integer, nullable=False),
)
tags = sa.Table(
    "gallery_tags",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("uses", sa.Integer, nullable=False),
)
OWNERS = 50
TAGS = ("sky", "sea", "city", "night", "forest", "portrait", "macro", "street")


class ListParams:
    """Pagination and sorting, shared by every list route as one dependency."""

    def __init__(
        self,
        page: Annotated[int, Query(ge=1, le=100_000)] = 1,
        page_size: Annotated[int, Query(ge=1, le=100)] = 20,
        sort: Annotated[str, Query(pattern="^(new|old)$")] = "new",
    ) -> None:
        self.page, self.page_size, self.sort = page, page_size, sort

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def client_version(x_client: Annotated[str | None, Header()] = None) -> str | None:
    """A router-level dependency, as an API gateway header check would be."""
    return x_client


def seed(engine: sa.Engine, rows: int) -> None:
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            images.insert(),
            [
                {"id": n, "owner": n % OWNERS, "title": f"image {n}", "likes": (n * 7) % 1000}
                for n in range(1, rows + 1)
            ],
        )
        conn.execute(tags.insert(), [{"name": t, "uses": 10 * i} for i, t in enumerate(TAGS)])


def create_app(database_url: str, rows: int, slow_query_seconds: float | None = None) -> FastAPI:
    """The gallery API over ``database_url``, seeded with ``rows`` images at start-up."""
    # pre-ping, as services usually do: a dead connection is replaced before it is used, so
    # a database that went away shows as failures to connect, with no statement.
    engine = sa.create_engine(
        database_url, pool_size=5, max_overflow=5, pool_timeout=5, pool_pre_ping=True
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(seed, engine, rows)
        yield
        engine.dispose()

    app = FastAPI(title="gallery", lifespan=lifespan)
    api = APIRouter(prefix="/api/v2", dependencies=[Depends(client_version)])
    tag_cache: dict[str, list[str]] = {}
    cache_lock = threading.Lock()

    @api.get("/images")
    def list_images(params: Annotated[ListParams, Depends()]) -> dict[str, Any]:
        """Offset pages in raw SQL; the listeners time the statement that pages."""
        order = "DESC" if params.sort == "new" else "ASC"
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    f"SELECT id, title FROM gallery_images ORDER BY id {order} "
                    "LIMIT :limit OFFSET :offset"
                ),
                {"limit": params.page_size, "offset": params.offset},
            ).all()
            total = conn.execute(sa.text("SELECT count(*) FROM gallery_images")).scalar_one()
        return {"items": [dict(r._mapping) for r in rows], "total": total}

    @api.get("/images/feed")
    def feed(
        limit: Annotated[int, Query(ge=1, le=100)] = 25,
        cursor: Annotated[int | None, Query(ge=1)] = None,
    ) -> dict[str, Any]:
        """Keyset pages: the cursor is the last id seen."""
        query = sa.select(images.c.id, images.c.title).order_by(images.c.id.desc()).limit(limit)
        if cursor is not None:
            query = query.where(images.c.id < cursor)
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        return {"items": [r.id for r in rows], "next": rows[-1].id if rows else None}

    @api.get("/users/{user_id}/gallery")
    def user_gallery(
        user_id: int,
        skip: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=50)] = 10,
    ) -> list[int]:
        """Offset pages with skip/limit, SQLAlchemy Core."""
        query = (
            sa.select(images.c.id)
            .where(images.c.owner == user_id)
            .order_by(images.c.id)
            .offset(skip)
            .limit(limit)
        )
        with engine.connect() as conn:
            return [r.id for r in conn.execute(query)]

    @api.get("/images/{image_id}")
    def image(image_id: int) -> dict[str, Any]:
        with engine.connect() as conn:
            row = conn.execute(sa.select(images).where(images.c.id == image_id).limit(1)).first()
        if row is None:
            raise HTTPException(404, f"image {image_id} does not exist")
        return dict(row._mapping)

    @api.get("/images/{image_id}/exif")
    def exif(image_id: int) -> dict[str, Any]:
        """A handler with a bug: images without camera data raise KeyError (a 500)."""
        data: dict[int, dict[str, Any]] = {1: {"camera": "x100"}}
        return {"camera": data.get(image_id, {})["camera"]}

    @api.post("/images/{image_id}/like", status_code=204)
    def like(image_id: int) -> None:
        with engine.begin() as conn:
            conn.execute(
                images.update().where(images.c.id == image_id).values(likes=images.c.likes + 1)
            )

    @api.get("/tags/popular")
    def popular_tags(limit: Annotated[int, Query(ge=1, le=20)] = 5) -> list[str]:
        """A top-N list: a limit alone, not pagination; served from a cache."""
        key = str(limit)
        with cache_lock:
            cached = tag_cache.get(key)
        if cached is not None:
            instrumentation.cache("tags").hit()
            return cached
        instrumentation.cache("tags").miss()
        with engine.connect() as conn:
            found = [
                r.name
                for r in conn.execute(
                    sa.text("SELECT name FROM gallery_tags ORDER BY uses DESC LIMIT :n"),
                    {"n": limit},
                )
            ]
        with cache_lock:
            tag_cache[key] = found
        return found

    @api.get("/search")
    def search(q: str, limit: Annotated[int, Query(ge=1, le=50)] = 10) -> list[int]:
        """Declared by template in instrument(): the best matches, counted as a first page."""
        with engine.connect() as conn:
            return [
                r.id
                for r in conn.execute(
                    sa.text(
                        "SELECT id FROM gallery_images WHERE title LIKE :q ORDER BY likes DESC "
                        "LIMIT :limit"
                    ),
                    {"q": f"%{q}%", "limit": limit},
                )
            ]

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    admin = FastAPI()

    @admin.get("/stats/{day}")
    def stats(request: Request, day: str) -> dict[str, str]:
        return {"org": request.path_params["org"], "day": day}

    assets = Path(tempfile.mkdtemp(prefix="gallery-assets-"))
    (assets / "app.css").write_text("body { margin: 0 }\n")
    app.include_router(api)
    app.mount("/orgs/{org}/admin", admin)
    app.mount("/assets", StaticFiles(directory=assets))
    instrumentation = instrument(
        app,
        engine=engine,
        slow_query_seconds=slow_query_seconds,
        pagination_routes={"/api/v2/search": paginated("offset")},
        log_requests=False,
    )
    return app


_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    """``app`` is built on first access, from the environment."""
    global _app
    if name == "app":
        if _app is None:
            slow = os.environ.get("SLOW_QUERY_SECONDS")
            _app = create_app(
                os.environ.get("DATABASE_URL") or "sqlite:///gallery.db",
                int(os.environ.get("GALLERY_ROWS") or 2000),
                float(slow) if slow else None,
            )
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
