"""A tiny instrumented app for the multi-worker test: ``uvicorn tests.apps.multiproc_app:app``."""

from __future__ import annotations

import os

from fastapi import FastAPI

from genonaut_monitoring.exporters import instrument

app = FastAPI()


@app.get("/pid")
async def pid() -> dict[str, int]:
    """Which worker process served this request."""
    return {"pid": os.getpid()}


@app.get("/health")
async def health() -> dict[str, int]:
    """Readiness, with the worker's pid."""
    return {"pid": os.getpid()}


instrument(app, log_requests=False)
