"""A raw in-process ASGI driver: no sockets, no HTTP client, just ``await app(...)``.

driver = AsgiDriver(app)
await driver.start()                   # lifespan startup
status, body = await driver.get("/items/1")
await driver.stop()
"""

from __future__ import annotations

import asyncio
from typing import Any

Message = dict[str, Any]
_REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}


class AsgiDriver:
    """Calls an ASGI app the way a server would, with the least work of its own."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lifespan: asyncio.Task[None] | None = None
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self.state: dict[str, Any] = {}

    async def start(self) -> None:
        """Run the app's lifespan startup; fail if the app reports a startup error."""
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self._lifespan = asyncio.create_task(self.app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._from_app.get()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {message}")

    async def stop(self) -> None:
        """Run the lifespan shutdown."""
        if self._lifespan is None:
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        await self._from_app.get()
        await self._lifespan
        self._lifespan = None

    async def get(self, path: str, query: bytes = b"") -> tuple[int, bytes]:
        """One GET request; the status and the body."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query,
            "headers": [(b"host", b"bench")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "state": dict(self.state),
        }
        sent = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return _REQUEST
            # The client never disconnects: wait like a live connection would.
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)
