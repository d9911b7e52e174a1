"""A tiny instrumented app for the multi-worker tests: ``uvicorn tests.apps.multiproc_app:app``.

Environment: ``GENONAUT_TEST_STARTS`` names a file each worker appends its pid to
as it starts (the tests count worker starts); ``GENONAUT_TEST_DB`` names a SQLite
file served through a sized pool (``/db``), so the pool gauges have values.
"""

from __future__ import annotations

import asyncio
import os

from fastapi import FastAPI
from prometheus_client import Counter, Histogram

from genonaut_monitoring.exporters import instrument

POOL_SIZE = 3
POOL_MAX_OVERFLOW = 2

if os.environ.get("GENONAUT_TEST_STARTS"):
    with open(os.environ["GENONAUT_TEST_STARTS"], "a", encoding="ascii") as starts:
        starts.write(f"{os.getpid()}\n")

app = FastAPI()
# Created after the exporters were imported, like an app's own metrics should be.
LABELLED = Counter("test_labelled_total", "Requests to /labels, by label.", ["n"])
LABELLED_SECONDS = Histogram("test_labelled_seconds", "Made-up durations, by label.", ["n"])


@app.get("/pid")
async def pid() -> dict[str, int]:
    """Which worker process served this request."""
    return {"pid": os.getpid()}


@app.get("/health")
async def health() -> dict[str, int]:
    """Readiness, with the worker's pid."""
    return {"pid": os.getpid()}


@app.get("/labels/{n}")
async def labels(n: str) -> dict[str, int]:
    """A new label set per ``n``: grows the worker's counter and histogram files."""
    LABELLED.labels(n).inc()
    LABELLED_SECONDS.labels(n).observe(0.1)
    return {"pid": os.getpid()}


@app.get("/work")
async def work() -> dict[str, int]:
    """A request that stays in progress for a moment."""
    await asyncio.sleep(0.02)
    return {"pid": os.getpid()}


engine = None
if os.environ.get("GENONAUT_TEST_DB"):
    import sqlalchemy as sa
    from sqlalchemy.pool import QueuePool

    engine = sa.create_engine(
        f"sqlite:///{os.environ['GENONAUT_TEST_DB']}",
        poolclass=QueuePool,
        pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW,
    )

    @app.get("/db")
    def db() -> dict[str, int]:
        """One query through the pool (a sync endpoint: it holds a connection in a thread)."""
        assert engine is not None
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return {"pid": os.getpid()}


instrument(app, engine=engine, log_requests=False)
