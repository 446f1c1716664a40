"""Apps for tests/test_serve.py: a gateway (`WebSocketProxy`, no AsyncWS) and its upstream.

``upstream_app`` (``tests.apps.bomb_apps:upstream_app``):

- ``/count``: accepts, counts the frames and bytes it receives, echoes each frame's size;
- ``/bomb``: accepts and sends one text frame of ``ASYNCWS_TEST_BOMB`` zeros (10 MB by default;
  uvicorn compresses it when the client negotiated permessage-deflate: ~10 KB on the wire);
- ``GET /stats``: ``{"frames": n, "bytes": n}`` received on ``/count``;
- ``GET /slow?seconds=s``: answers after ``s`` seconds (a request slower than a header deadline).

``gateway_app`` relays ``/ws`` to the upstream's ``/count`` and ``/deflate`` to its ``/bomb``
with ``compression="deflate"``; the upstream base URL is in ``ASYNCWS_TEST_UPSTREAM``;
``GET /stats`` says how the last relay ended.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from asyncws.proxy import WebSocketProxy

__all__ = ["gateway_app", "upstream_app"]

upstream_app = FastAPI()
_received = {"frames": 0, "bytes": 0}


@upstream_app.get("/stats")
async def upstream_stats() -> dict[str, int]:
    return dict(_received)


@upstream_app.get("/slow")
async def slow(seconds: float) -> dict[str, float]:
    await asyncio.sleep(min(seconds, 10.0))
    return {"slept": seconds}


@upstream_app.websocket("/count")
async def count(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            _received["frames"] += 1
            _received["bytes"] += len(text)
            await websocket.send_text(str(len(text)))
    except WebSocketDisconnect:
        pass


@upstream_app.websocket("/bomb")
async def bomb(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("0" * int(os.environ.get("ASYNCWS_TEST_BOMB", 10_000_000)))
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass


gateway_app = FastAPI()
UPSTREAM = os.environ.get("ASYNCWS_TEST_UPSTREAM", "ws://127.0.0.1:9")
_last: dict[str, Any] = {}


async def _relay(proxy: WebSocketProxy) -> None:
    await proxy()
    _last.update(closed_by=proxy.closed_by, code=proxy.close_code, reason=proxy.close_reason)


@gateway_app.get("/stats")
async def gateway_stats() -> dict[str, Any]:
    return dict(_last)


@gateway_app.websocket("/ws")
async def gateway_ws(websocket: WebSocket) -> None:
    await _relay(WebSocketProxy(websocket, f"{UPSTREAM}/count"))


@gateway_app.websocket("/deflate")
async def gateway_deflate(websocket: WebSocket) -> None:
    await _relay(WebSocketProxy(websocket, f"{UPSTREAM}/bomb", compression="deflate"))
