"""An app that logs as production does: ``LOG_FORMAT=json uvicorn tests.apps.logged_app:app``."""

from __future__ import annotations

from fastapi import FastAPI

from genonaut_monitoring.exporters import configure_logging, instrument

configure_logging()
app = FastAPI()


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    """One item."""
    return {"id": item_id}


instrument(app)
