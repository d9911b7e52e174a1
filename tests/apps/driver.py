"""Drive an ASGI app in-process with httpx, without a server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import httpx


async def _send(
    app: Any,
    requests: Iterable[tuple[str, str, dict[str, Any]]],
    root_path: str = "",
    raise_app_exceptions: bool = False,
) -> list[httpx.Response]:
    # raise_app_exceptions=False: an unhandled exception becomes the 500 a server would send.
    transport = httpx.ASGITransport(
        app, root_path=root_path, raise_app_exceptions=raise_app_exceptions
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return [await client.request(method, url, **kwargs) for method, url, kwargs in requests]


def request(app: Any, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request through the app."""
    return asyncio.run(_send(app, [(method, url, kwargs)]))[0]


def get(
    app: Any, *urls: str, root_path: str = "", raise_app_exceptions: bool = False, **kwargs: Any
) -> list[httpx.Response]:
    """GET each URL in turn through the app."""
    return asyncio.run(
        _send(app, [("GET", url, kwargs) for url in urls], root_path, raise_app_exceptions)
    )


async def websocket_echo(app: Any, path: str, text: str) -> list[dict[str, Any]]:
    """Open a websocket, send one text frame, return every message the app sent."""
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for message in (
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": text},
        {"type": "websocket.disconnect", "code": 1000},
    ):
        incoming.put_nowait(message)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "subprotocols": [],
    }
    await app(scope, incoming.get, send)
    return sent


async def _raw(
    app: Any, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes]:
    chunks: list[bytes] = []
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return status, b"".join(chunks)


def raw_get(
    app: Any, path: str, query: bytes = b"", headers: Iterable[tuple[bytes, bytes]] = ()
) -> tuple[int, bytes]:
    """One GET as a server would pass it on, bytes as given: no client validates them."""
    return asyncio.run(_raw(app, path, query, list(headers)))
