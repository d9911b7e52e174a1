"""The demo API on a real PostgreSQL: COPY seeding, both paginations, restarts, metrics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from genonaut_monitoring.exporters import demo
from tests.postgres import postgres_url  # noqa: F401
from tests.test_demo import CONTENT, CURSOR, Client, running

pytestmark = pytest.mark.postgres

ROWS = 3_000


@pytest.fixture
def schema_url(postgres_url: str) -> Iterator[str]:  # noqa: F811
    """A URL whose connections use a fresh schema, dropped afterwards (the server is shared)."""
    schema = f"demo_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def pg_api(schema_url: str, registry: CollectorRegistry) -> Iterator[Client]:
    app = demo.create_app(schema_url, seed_rows=ROWS, registry=registry, count_cache_seconds=3600)
    with running(app, registry) as client:
        yield client


def _expected_ids() -> list[int]:
    rows = sorted(demo.seed_rows_data(ROWS), key=lambda r: (r["created_at"], r["id"]), reverse=True)
    return [row["id"] for row in rows]


def test_offset_pages_on_postgres(pg_api: Client):
    expected = _expected_ids()
    body = pg_api.get(CONTENT, params={"page": 3, "page_size": 100}).json()
    assert [item["id"] for item in body["items"]] == expected[200:300]
    assert body["pagination"] == {
        "mode": "offset",
        "page": 3,
        "page_size": 100,
        "offset": 200,
        "total_count": ROWS,
        "has_next": True,
    }
    last = pg_api.get(CONTENT, params={"skip": ROWS - 10, "limit": 50}).json()
    assert [item["id"] for item in last["items"]] == expected[-10:]
    assert last["pagination"]["has_next"] is False


def test_cursor_walk_on_postgres_covers_every_row_once(pg_api: Client):
    ids: list[int] = []
    params: dict[str, Any] = {"limit": 499}
    while True:
        body = pg_api.get(CURSOR, params=params).json()
        ids.extend(item["id"] for item in body["items"])
        if body["pagination"]["next_cursor"] is None:
            assert body["pagination"]["has_next"] is False
            break
        params["cursor"] = body["pagination"]["next_cursor"]
    assert ids == _expected_ids()
    assert len(set(ids)) == ROWS


def test_item_and_errors_on_postgres(pg_api: Client):
    seeded = {row["id"]: row for row in demo.seed_rows_data(ROWS)}[2_500]
    item = pg_api.get(f"{CONTENT}/2500").json()
    assert (item["title"], item["tags"], item["quality_score"]) == (
        seeded["title"],
        seeded["tags"],
        seeded["quality_score"],
    )
    assert item["created_at"] == seeded["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert pg_api.get(f"{CONTENT}/{ROWS + 1}").status_code == 404
    assert pg_api.get(CURSOR, params={"cursor": "not a cursor"}).status_code == 400
    assert pg_api.get(CONTENT, params={"page": 1, "limit": 5}).status_code == 422
    assert pg_api.get("/health").json() == {"status": "ok", "database": "ok"}


def test_postgres_queries_are_counted(pg_api: Client):
    select = {"operation": "SELECT", "table": "content_items"}
    before = pg_api.value("database_query_duration_seconds_count", **select)
    pg_api.get(CONTENT, params={"page_size": 10})
    pg_api.get(CONTENT, params={"page": 2, "page_size": 10})
    pg_api.get(CURSOR, params={"limit": 10})
    # Two pages, one count (then cached), one cursor page.
    assert pg_api.value("database_query_duration_seconds_count", **select) - before == 4
    labels = {"method": "GET", "route": CONTENT, "status": "200"}
    assert pg_api.value("http_requests_total", **labels) == 2


def test_postgres_restart_keeps_the_data(schema_url: str):
    for rows in (500, 800):
        registry = CollectorRegistry()
        with running(demo.create_app(schema_url, seed_rows=rows, registry=registry), registry) as c:
            assert c.get(CONTENT).json()["pagination"]["total_count"] == 500
    engine = sa.create_engine(schema_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT seed_rows FROM demo_seed")).scalar_one() == 500
    finally:
        engine.dispose()
