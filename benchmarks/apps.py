"""One FastAPI app, four ways: bare, ours and the two peers' documented defaults.

app, registry = build_app("ours", routes=50)
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import REGISTRY, CollectorRegistry

VARIANTS = ("bare", "ours", "instrumentator", "starlette-exporter")
# Status codes the scrape phase spreads its requests over: item_id % 5 picks one.
STATUSES = (200, 201, 400, 404, 500)
_BODY = b'{"ok":true}'


async def _item(item_id: int) -> Response:
    return Response(
        _BODY, status_code=STATUSES[item_id % len(STATUSES)], media_type="application/json"
    )


def route_path(index: int) -> str:
    """The template of route ``index``: every route has a path parameter."""
    return f"/api/v1/group{index:02d}/items/{{item_id}}"


def request_path(index: int, item_id: int = 0) -> str:
    """A concrete path for route ``index`` (item 0 answers 200)."""
    return route_path(index).replace("{item_id}", str(item_id))


def build_app(
    variant: str, routes: int, registry: CollectorRegistry | None = None
) -> tuple[FastAPI, CollectorRegistry]:
    """The app with ``routes`` routes, instrumented as ``variant``; and where its metrics live.

    ``registry=None`` means the library's default (the global registry), as a
    user following its README would get. starlette-exporter has no registry
    option: it always uses the global one.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    app = FastAPI()
    for index in range(routes):
        app.add_api_route(route_path(index), _item, methods=["GET"], name=f"item{index:02d}")
    used: Any = registry or REGISTRY
    if variant == "ours":
        from genonaut_monitoring import exporters

        used = exporters.instrument(app, registry=registry).registry
    elif variant == "instrumentator":
        from prometheus_fastapi_instrumentator import Instrumentator

        Instrumentator(registry=registry).instrument(app).expose(app)
    elif variant == "starlette-exporter":
        from starlette_exporter import PrometheusMiddleware, handle_metrics

        app.add_middleware(PrometheusMiddleware)
        app.add_route("/metrics", handle_metrics)
        used = REGISTRY
    return app, used
