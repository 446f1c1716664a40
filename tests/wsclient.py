"""A small asyncws protocol client over real sockets (websockets), for multi-process tests.

    async with WsClient(server.ws_url("/ws?user=ann")) as c:
        await c.subscribe("chat/lobby")
        answer = await c.call("say", {"room": "lobby", "source": "a", "n": 1})
        events = await c.wait_for(lambda evs: len(evs) >= 1)

A reader task files every frame: answers (``ack``/``reply``/``error`` with an ``id``) resolve
the matching `call`; everything else is appended to `events`. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["WsClient", "http_get_json"]


class WsClient:
    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self.closed_code: int | None = None
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()

    async def open(self) -> Self:
        self._ws = await connect(self.url, open_timeout=self.timeout, max_size=1 << 22)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                frame = json.loads(raw)
                fid = frame.get("id") if isinstance(frame, dict) else None
                future = self._pending.pop(fid, None) if isinstance(fid, int) else None
                if future is not None and frame.get("type") in ("ack", "reply", "error"):
                    if not future.done():
                        future.set_result(frame)
                    continue
                self.events.append(frame)
                self._changed.set()
        except ConnectionClosed:
            pass
        finally:
            if self._ws.close_code is not None:
                self.closed_code = self._ws.close_code
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("websocket closed"))
            self._pending.clear()
            self._changed.set()

    async def send(self, frame: dict[str, Any]) -> None:
        assert self._ws is not None
        await self._ws.send(json.dumps(frame))

    async def call(
        self, type: str, data: Any = None, *, timeout: float | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Send a frame with a fresh id; return the ack/reply/error frame that answers it."""
        fid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[fid] = future
        frame: dict[str, Any] = {"type": type, "id": fid, **fields}
        if data is not None:
            frame["data"] = data
        try:
            await self.send(frame)
            return await asyncio.wait_for(future, timeout or self.timeout)
        finally:
            self._pending.pop(fid, None)

    async def subscribe(self, topic: str) -> dict[str, Any]:
        answer = await self.call("subscribe", topic=topic)
        assert answer["type"] == "ack", answer
        return answer

    async def publish(
        self, topic: str, data: Any, *, timeout: float | None = None
    ) -> dict[str, Any]:
        return await self.call("publish", data, topic=topic, timeout=timeout)

    async def whoami(self) -> dict[str, Any]:
        answer = await self.call("whoami")
        assert answer["type"] == "reply", answer
        data: dict[str, Any] = answer["data"]
        return data

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float | None = None
    ) -> list[dict[str, Any]]:
        """Wait (bounded) until ``predicate(events)`` holds; return the events."""
        async with asyncio.timeout(timeout or self.timeout):
            while not predicate(self.events):
                self._changed.clear()
                if self._reader is not None and self._reader.done():
                    raise ConnectionError(f"websocket closed ({self.closed_code})")
                await self._changed.wait()
        return self.events

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 3.0)
            self._ws = ws  # the reader reads close_code from it
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._reader, 3.0)

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake (a client that vanished)."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def http_get_json(url: str, timeout: float = 3.0) -> tuple[int, Any]:
    """GET ``url`` (http://127.0.0.1:...); (status, decoded JSON or text)."""
    import httpx

    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        response = await client.get(url)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text
