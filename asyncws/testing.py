"""An in-memory test client: drive an ASGI app's websockets without a network.

    async with TestClient(app) as client:            # runs the app's lifespan
        async with client.websocket_connect("/ws") as ws:
            await ws.send_json({"type": "subscribe", "topic": "rooms/lobby", "id": 1})
            assert await ws.receive_json() == {"type": "ack", "id": 1}

Everything runs on the test's own event loop (pytest-asyncio or anyio), so a test awaits real
frames with a timeout instead of sleeping. `WebSocketSession` also has helpers for the asyncws
protocol: `call` (send an operation and await its correlated reply), `subscribe`, and
`receive_event`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message

__all__ = ["TestClient", "WebSocketClosed", "WebSocketDenied", "WebSocketSession"]

DEFAULT_TIMEOUT = 5.0


class WebSocketDenied(Exception):
    """The app refused the handshake (``status`` is the HTTP status, 403 by default)."""

    def __init__(self, status: int, body: bytes = b"") -> None:
        super().__init__(f"websocket handshake refused with HTTP {status}")
        self.status = status
        self.body = body


class WebSocketClosed(Exception):
    """The app closed the websocket (``code`` and ``reason`` of its close frame)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"websocket closed by the server with {code} {reason}".strip())
        self.code = code
        self.reason = reason


class WebSocketSession:
    """One client websocket on the app; use as ``async with client.websocket_connect(...)``."""

    __test__ = False

    def __init__(self, app: ASGIApp, scope: dict[str, Any], timeout: float) -> None:
        self._app = app
        self._scope = scope
        self.timeout = timeout
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._pending: list[dict[str, Any]] = []  # frames received while waiting for another
        self.accepted_subprotocol: str | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._ended = False  # the app closed the websocket or its handler returned

    async def _receive(self) -> Message:
        return await self._to_app.get()

    async def _send(self, message: Message) -> None:
        await self._from_app.put(message)

    async def _run(self) -> None:
        try:
            await self._app(self._scope, self._receive, self._send)
        finally:
            await self._from_app.put({"type": "asyncws.testing.app_done"})

    async def connect(self) -> WebSocketSession:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._to_app.put({"type": "websocket.connect"})
        message = await self._next()
        kind = message["type"]
        if kind == "websocket.accept":
            self.accepted_subprotocol = message.get("subprotocol")
            return self
        if kind == "websocket.close":
            await self._finish()
            raise WebSocketDenied(403)
        if kind == "websocket.http.response.start":
            body = b""
            while True:
                more = await self._next()
                if more["type"] != "websocket.http.response.body":
                    break
                body += more.get("body", b"")
                if not more.get("more_body"):
                    break
            await self._finish()
            raise WebSocketDenied(message["status"], body)
        await self._finish()  # raises what the app raised, if it crashed
        if kind == "asyncws.testing.app_done":  # returned without accepting: servers say 403
            raise WebSocketDenied(403)
        raise RuntimeError(f"the app ended the handshake with {kind!r}")

    async def _next(self, timeout: float | None = None) -> Message:
        try:
            return await asyncio.wait_for(
                self._from_app.get(), self.timeout if timeout is None else timeout
            )
        except TimeoutError:
            raise TimeoutError("no message from the app in time") from None

    async def __aenter__(self) -> WebSocketSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- sending --------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        await self._to_app.put({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        await self._to_app.put({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any) -> None:
        await self.send_text(json.dumps(data))

    async def close(self, code: int = 1000) -> None:
        """Close from the client side and wait for the app's handler to end."""
        if self._task is None:
            return
        if not self._task.done():
            await self._to_app.put({"type": "websocket.disconnect", "code": code})
        await self._finish()

    async def _finish(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- receiving ------------------------------------------------------------------------

    async def receive_text(self, timeout: float | None = None) -> str:
        """The next text frame; raises `WebSocketClosed` when the app closes instead."""
        if self._pending:
            return json.dumps(self._pending.pop(0))
        while True:
            if self._ended and self._from_app.empty():  # nothing more will ever come
                raise WebSocketClosed(self.close_code or 1006, "the app ended the connection")
            message = await self._next(timeout)
            kind = message["type"]
            if kind == "websocket.send":
                if message.get("text") is not None:
                    return str(message["text"])
                raise AssertionError(f"expected a text frame, got bytes {message.get('bytes')!r}")
            if kind == "websocket.close":
                self.close_code = message.get("code", 1000)
                self.close_reason = message.get("reason") or ""
                raise WebSocketClosed(self.close_code or 1000, self.close_reason)
            if kind == "asyncws.testing.app_done":
                self._ended = True
                raise WebSocketClosed(self.close_code or 1006, "the app ended the connection")

    async def receive_json(self, timeout: float | None = None) -> Any:
        if self._pending:
            return self._pending.pop(0)
        return json.loads(await self.receive_text(timeout))

    async def receive_until(self, predicate: Any, timeout: float | None = None) -> dict[str, Any]:
        """Receive until a frame satisfies ``predicate``; other frames are kept for later."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if timeout is None else timeout)
        skipped: list[dict[str, Any]] = []
        try:
            for i, held in enumerate(self._pending):
                if predicate(held):
                    del self._pending[i]
                    return held
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise TimeoutError("no matching frame in time")
                frame: dict[str, Any] = json.loads(await self.receive_text(left))
                if predicate(frame):
                    return frame
                skipped.append(frame)
        finally:
            self._pending.extend(skipped)

    async def expect_closed(self, timeout: float | None = None) -> int:
        """Wait for the app to close the connection; return the close code."""
        try:
            while True:
                await self.receive_text(timeout)
        except WebSocketClosed as closed:
            return closed.code

    # -- asyncws protocol helpers ---------------------------------------------------------

    async def call(
        self, type: str, data: Any = None, *, timeout: float | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Send ``{"type": type, "id": n, "data": data}`` and return the frame answering it
        (``reply``, ``ack`` or ``error``), skipping unrelated frames."""
        frame_id = next(self._ids)
        frame: dict[str, Any] = {"type": type, "id": frame_id, **fields}
        if data is not None:
            frame["data"] = data
        await self.send_json(frame)
        return await self.receive_until(lambda f: f.get("id") == frame_id, timeout)

    async def subscribe(self, topic: str, *, since: Any = None, **fields: Any) -> dict[str, Any]:
        """Subscribe and return the ``ack`` (or ``error``) frame.

        ``since`` (a history topic): the last position seen, ``{"offset", "epoch"}`` or an
        event frame that carries one; the ack then says ``recovered`` and the missed events
        follow it (see ``docs/delivery.md``)."""
        if isinstance(since, dict) and "offset" in since and "epoch" in since:
            fields["since"] = {"offset": since["offset"], "epoch": since["epoch"]}
        elif since is not None:
            fields["since"] = since
        return await self.call("subscribe", topic=topic, **fields)

    async def unsubscribe(self, topic: str) -> dict[str, Any]:
        return await self.call("unsubscribe", topic=topic)

    async def receive_event(
        self, topic: str | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """The next frame with a ``topic`` (optionally this one), skipping replies and acks."""
        return await self.receive_until(
            lambda f: "topic" in f and (topic is None or f["topic"] == topic), timeout
        )


class TestClient:
    """Runs an ASGI app's lifespan and opens in-memory websockets on it."""

    __test__ = False

    def __init__(
        self, app: ASGIApp, *, timeout: float = DEFAULT_TIMEOUT, lifespan: bool = True
    ) -> None:
        self.app = app
        self.timeout = timeout
        self._run_lifespan = lifespan
        self._state: dict[str, Any] = {}
        self._lifespan_task: asyncio.Task[None] | None = None
        self._lifespan_in: asyncio.Queue[Message] = asyncio.Queue()
        self._lifespan_out: asyncio.Queue[Message] = asyncio.Queue()

    async def __aenter__(self) -> TestClient:
        if self._run_lifespan:
            await self._startup()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._lifespan_task is not None:
            await self._shutdown()

    async def _startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self._state}

        async def receive() -> Message:
            return await self._lifespan_in.get()

        async def send(message: Message) -> None:
            await self._lifespan_out.put(message)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except BaseException as exc:  # report it to the waiting startup/shutdown
                await self._lifespan_out.put({"type": "asyncws.testing.error", "exc": exc})
                raise

        self._lifespan_task = asyncio.get_running_loop().create_task(run())
        await self._lifespan_in.put({"type": "lifespan.startup"})
        reply = await asyncio.wait_for(self._lifespan_out.get(), self.timeout)
        if reply["type"] == "asyncws.testing.error":
            raise reply["exc"]
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"lifespan startup failed: {reply.get('message', reply)}")

    async def _shutdown(self) -> None:
        task, self._lifespan_task = self._lifespan_task, None
        assert task is not None
        await self._lifespan_in.put({"type": "lifespan.shutdown"})
        try:
            reply = await asyncio.wait_for(self._lifespan_out.get(), self.timeout)
            if reply["type"] == "asyncws.testing.error":
                raise reply["exc"]
            if reply["type"] != "lifespan.shutdown.complete":
                raise RuntimeError(f"lifespan shutdown failed: {reply.get('message', reply)}")
        finally:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, self.timeout)

    async def websocket_connect(
        self,
        url: str,
        *,
        headers: Iterable[tuple[str, str]] | dict[str, str] = (),
        subprotocols: Iterable[str] = (),
    ) -> WebSocketSession:
        """Open a websocket on ``url`` (a path with an optional query string).

        Raises `WebSocketDenied` if the app refuses the handshake.
        """
        parts = urlsplit(url)
        pairs = headers.items() if isinstance(headers, dict) else headers
        raw_headers = [(b"host", b"testserver")] + [
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs
        ]
        protocols = list(subprotocols)
        if protocols:
            raw_headers.append((b"sec-websocket-protocol", ", ".join(protocols).encode()))
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("testserver", 80),
            "client": ("testclient", 50000),
            "root_path": "",
            "path": parts.path or "/",
            "raw_path": (parts.path or "/").encode(),
            "query_string": parts.query.encode(),
            "headers": raw_headers,
            "subprotocols": protocols,
            "state": dict(self._state),
            "extensions": {"websocket.http.response": {}},
        }
        session = WebSocketSession(self.app, scope, self.timeout)
        return await session.connect()

    @contextlib.asynccontextmanager
    async def connect(self, url: str, **kwargs: Any) -> AsyncIterator[WebSocketSession]:
        """``async with client.connect("/ws") as ws:`` — closes the websocket at the end."""
        session = await self.websocket_connect(url, **kwargs)
        try:
            yield session
        finally:
            await session.close()
