"""One FastAPI app, five ways: bare, ours (with and without the access log) and two peers.

app, registry = build_app("ours", routes=50)
status, body = await AsgiDriver(app).get(*KINDS["offset"])

The app has ``routes`` filler routes (``/api/v1/groupNN/items/{item_id}``),
then one route per request kind, shaped like the real ones: the paginated
routes declare their query parameters with FastAPI ``Query`` and defaults, as
Genonaut's API does. Every kind's route sits behind the filler routes, so a
library that re-matches the path pays for the whole route table.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import Response
from prometheus_client import REGISTRY, CollectorRegistry

# "ours+log" is ours plus the JSON access log configure_logging() sets up in production.
OURS_LOGGED = "ours+log"
VARIANTS = ("bare", "ours", OURS_LOGGED, "instrumentator", "starlette-exporter")
# Status codes the scrape phase spreads its requests over: item_id % 5 picks one.
STATUSES = (200, 201, 400, 404, 500)
# An opaque cursor as an API hands it out (base64 of a position).
CURSOR = "eyJjcmVhdGVkX2F0IjogIjIwMjQtMDUtMDFUMTI6MDA6MDAiLCAiaWQiOiAxMjM0NX0"
# Request kind -> (path, query string): what the overhead is measured on.
KINDS: dict[str, tuple[str, bytes]] = {
    "offset": ("/api/v1/content", b"page=3&page_size=20"),
    "cursor": ("/api/v1/content/cursor", f"cursor={CURSOR}&limit=20".encode()),
    "item": ("/api/v1/items/7", b""),
    "health": ("/health", b""),
}
_BODY = b'{"ok":true}'
_PAGE = b'{"items":[],"total":0}'


def _json(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="application/json")


async def _filler(item_id: int) -> Response:
    return _json(_BODY, STATUSES[item_id % len(STATUSES)])


async def _offset_page(
    page: Annotated[int, Query(ge=1)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    return _json(_PAGE)


async def _cursor_page(
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Response:
    return _json(_PAGE)


async def _item(item_id: int) -> Response:
    return _json(_BODY)


async def _health() -> Response:
    return _json(_BODY)


def route_path(index: int) -> str:
    """The template of filler route ``index``: every route has a path parameter."""
    return f"/api/v1/group{index:02d}/items/{{item_id}}"


def request_path(index: int, item_id: int = 0) -> str:
    """A concrete path for filler route ``index`` (item 0 answers 200)."""
    return route_path(index).replace("{item_id}", str(item_id))


def build_app(
    variant: str, routes: int, registry: CollectorRegistry | None = None
) -> tuple[FastAPI, CollectorRegistry]:
    """The app with ``routes`` filler routes, instrumented as ``variant``; and its registry.

    ``registry=None`` means the library's default (the global registry), as a
    user following its README would get. starlette-exporter has no registry
    option: it always uses the global one. ``ours+log`` builds the same app as
    ``ours``: the access log is process-wide logging, switched on by
    :func:`access_log_on` around that variant's batches.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    app = FastAPI()
    for index in range(routes):
        app.add_api_route(route_path(index), _filler, methods=["GET"], name=f"item{index:02d}")
    app.add_api_route("/api/v1/content", _offset_page, methods=["GET"])
    app.add_api_route("/api/v1/content/cursor", _cursor_page, methods=["GET"])
    app.add_api_route("/api/v1/items/{item_id}", _item, methods=["GET"])
    app.add_api_route("/health", _health, methods=["GET"])
    used: Any = registry or REGISTRY
    if variant in ("ours", OURS_LOGGED):
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


_DEVNULL: list[Any] = []


def access_log_on() -> logging.Handler:
    """Our JSON access log to /dev/null, exactly as ``configure_logging()`` sets it up."""
    from genonaut_monitoring.exporters import configure_logging

    if not _DEVNULL:
        _DEVNULL.append(open(os.devnull, "w"))  # noqa: SIM115 - kept open for the whole run
    return configure_logging("INFO", "json", stream=_DEVNULL[0])


def access_log_off(handler: logging.Handler) -> None:
    """Undo :func:`access_log_on`: the access log is skipped again (root at WARNING)."""
    root = logging.getLogger()
    root.removeHandler(handler)
    logging.getLogger("genonaut_monitoring").setLevel(logging.NOTSET)
    root.setLevel(logging.WARNING)
