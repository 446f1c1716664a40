"""Apps for tests/test_proxy.py: an upstream echo service and a gateway that proxies to it.

``upstream_app`` (run it as ``tests.apps.proxy_apps:upstream_app``):

- ``/ws`` and ``/ws/{conn_id}``: accepts with the first of ``chat.v2``, ``chat.v1`` the client
  offered, then echoes text and binary frames as they are, except these text commands:
  ``info`` (a JSON frame: received headers, offered and accepted subprotocols, path),
  ``close <code> <reason>`` (closes with that code), ``flood <size>`` (sends binary frames of
  ``size`` bytes as fast as the connection takes them), ``big <size>`` (one binary frame).
- ``/silent``: accepts and never sends anything.
- ``/refuse``: refuses every handshake (HTTP 403).
- ``/secure`` (bearer token as a dependency; accepts with a supported subprotocol, never the
  token, and sends the token back) and ``/secure-late`` (accepts, then authenticates).
- ``GET /stats``: open connection ids, how each one ended (``closes``), bytes flooded.

``gateway_app`` proxies to the upstream whose base URL is in ``ASYNCWS_TEST_UPSTREAM``:

- ``/ws`` (accept last), ``/accept-first`` (the seed's style: accept, then proxy),
  ``/rooms/{conn_id}`` (`WebSocketProxy.from_template`), ``/secure``, ``/silent``,
  ``/refused``;
- ``/dead`` and ``/dead-accept-first`` to ``ASYNCWS_TEST_DEAD_UPSTREAM`` (nothing listens),
  ``/blackhole`` to ``ASYNCWS_TEST_BLACKHOLE_UPSTREAM`` (accepts TCP, never answers);
- ``GET /stats``: running proxies, live relay tasks, how the last relays ended.

``ASYNCWS_TEST_CONNECT_TIMEOUT`` sets the proxies' connect timeout (default 5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from fastapi import Depends, FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect

from asyncws.auth import WebSocketOAuth2PasswordBearer
from asyncws.proxy import WebSocketProxy

__all__ = ["gateway_app", "upstream_app"]

SUPPORTED_SUBPROTOCOLS = ("chat.v2", "chat.v1")

bearer = WebSocketOAuth2PasswordBearer(tokenUrl="/token")

# -- upstream -------------------------------------------------------------------------------

upstream_app = FastAPI()

_open: dict[str, int] = {}  # connection id -> number of open connections with it
_closes: dict[str, dict[str, Any]] = {}  # connection id -> how its last connection ended
_flooded: dict[str, int] = {}  # connection id -> bytes sent by "flood"
_counter = 0


@upstream_app.get("/stats")
async def upstream_stats() -> dict[str, Any]:
    return {
        "open": sum(_open.values()),
        "open_ids": sorted(k for k, v in _open.items() if v),
        "closes": _closes,
        "flooded": _flooded,
    }


async def _flood(websocket: WebSocket, conn_id: str, size: int) -> None:
    chunk = os.urandom(size)  # incompressible: compression must not hide the bytes in flight
    with contextlib.suppress(Exception):
        while True:
            await websocket.send_bytes(chunk)
            _flooded[conn_id] = _flooded.get(conn_id, 0) + size


async def _echo(websocket: WebSocket, conn_id: str | None) -> None:
    global _counter
    _counter += 1
    key = conn_id or f"anon-{_counter}"
    offered = list(websocket.scope.get("subprotocols", []))
    chosen = next((p for p in SUPPORTED_SUBPROTOCOLS if p in offered), None)
    await websocket.accept(subprotocol=chosen)
    _open[key] = _open.get(key, 0) + 1
    flood: asyncio.Task[None] | None = None
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                _closes[key] = {
                    "by": "peer",
                    "code": message.get("code"),
                    "reason": message.get("reason") or "",
                }
                return
            text = message.get("text")
            if text is None:
                await websocket.send_bytes(message["bytes"])
            elif text == "info":
                await websocket.send_json(
                    {
                        "headers": {k: v for k, v in websocket.headers.items()},
                        "offered": offered,
                        "subprotocol": chosen,
                        "path": websocket.url.path,
                    }
                )
            elif text.startswith("close "):
                _, code, reason = (text + " ").split(" ", 2)
                _closes[key] = {"by": "self", "code": int(code), "reason": reason.strip()}
                await websocket.close(int(code), reason.strip())
                return
            elif text.startswith("flood ") and flood is None:
                flood = asyncio.create_task(_flood(websocket, key, int(text.split()[1])))
            elif text.startswith("big "):
                await websocket.send_bytes(b"\x01" * int(text.split()[1]))
            else:
                await websocket.send_text(text)
    except WebSocketDisconnect as exc:
        _closes[key] = {"by": "peer", "code": exc.code, "reason": exc.reason}
    finally:
        _open[key] -= 1
        if flood is not None:
            flood.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flood


@upstream_app.websocket("/ws")
async def upstream_ws(websocket: WebSocket) -> None:
    await _echo(websocket, None)


@upstream_app.websocket("/ws/{conn_id}")
async def upstream_ws_id(websocket: WebSocket, conn_id: str) -> None:
    await _echo(websocket, conn_id)


@upstream_app.websocket("/silent")
async def upstream_silent(websocket: WebSocket) -> None:
    await websocket.accept()
    _open["silent"] = _open.get("silent", 0) + 1
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
    finally:
        _open["silent"] -= 1


@upstream_app.websocket("/refuse")
async def upstream_refuse(websocket: WebSocket) -> None:
    await websocket.close(1008)


@upstream_app.websocket("/secure")
async def upstream_secure(websocket: WebSocket, token: str = Depends(bearer)) -> None:
    """Bearer-protected (dependency): accepts with a supported subprotocol, sends the token."""
    await websocket.accept(subprotocol=bearer.select_subprotocol(websocket, SUPPORTED_SUBPROTOCOLS))
    await websocket.send_text(token)
    await websocket.close(1000)


@upstream_app.websocket("/secure-late")
async def upstream_secure_late(websocket: WebSocket) -> None:
    """The seed's style: accept first, then authenticate (a bad token closes with 1008)."""
    await websocket.accept()
    token = await bearer(websocket)
    await websocket.send_text(f"token {token}")
    await websocket.close(1000)


# -- gateway --------------------------------------------------------------------------------

gateway_app = FastAPI()

UPSTREAM = os.environ.get("ASYNCWS_TEST_UPSTREAM", "ws://127.0.0.1:9")
DEAD_UPSTREAM = os.environ.get("ASYNCWS_TEST_DEAD_UPSTREAM", "ws://127.0.0.1:9")
BLACKHOLE_UPSTREAM = os.environ.get("ASYNCWS_TEST_BLACKHOLE_UPSTREAM", "ws://127.0.0.1:9")
CONNECT_TIMEOUT = float(os.environ.get("ASYNCWS_TEST_CONNECT_TIMEOUT", "5"))

_active = 0
_endings: list[dict[str, Any]] = []


async def _run(proxy: WebSocketProxy) -> None:
    global _active
    _active += 1
    try:
        await proxy()
    finally:
        _active -= 1
        _endings.append(
            {"by": proxy.closed_by, "code": proxy.close_code, "reason": proxy.close_reason}
        )
        del _endings[:-20]


@gateway_app.get("/stats")
async def gateway_stats() -> dict[str, Any]:
    relay_tasks = [
        t for t in asyncio.all_tasks() if t.get_name().startswith("asyncws.proxy.") and not t.done()
    ]
    return {"active": _active, "relay_tasks": len(relay_tasks), "endings": _endings}


@gateway_app.websocket("/ws")
async def gateway_ws(websocket: WebSocket) -> None:
    await _run(WebSocketProxy(websocket, f"{UPSTREAM}/ws", connect_timeout=CONNECT_TIMEOUT))


@gateway_app.websocket("/accept-first")
async def gateway_accept_first(websocket: WebSocket) -> None:
    await websocket.accept()
    await _run(WebSocketProxy(websocket, f"{UPSTREAM}/ws", connect_timeout=CONNECT_TIMEOUT))


@gateway_app.websocket("/rooms/{conn_id}")
async def gateway_room(websocket: WebSocket, conn_id: str) -> None:
    try:
        proxy = WebSocketProxy.from_template(
            websocket, UPSTREAM + "/ws/{conn_id}", conn_id=conn_id, connect_timeout=CONNECT_TIMEOUT
        )
    except ValueError:
        await websocket.close(1008)  # before accept: HTTP 403
        return
    await _run(proxy)


@gateway_app.websocket("/secure")
async def gateway_secure(websocket: WebSocket) -> None:
    await _run(WebSocketProxy(websocket, f"{UPSTREAM}/secure", connect_timeout=CONNECT_TIMEOUT))


@gateway_app.websocket("/silent")
async def gateway_silent(websocket: WebSocket) -> None:
    await _run(WebSocketProxy(websocket, f"{UPSTREAM}/silent", connect_timeout=CONNECT_TIMEOUT))


@gateway_app.websocket("/refused")
async def gateway_refused(websocket: WebSocket) -> None:
    await _run(WebSocketProxy(websocket, f"{UPSTREAM}/refuse", connect_timeout=CONNECT_TIMEOUT))


@gateway_app.websocket("/dead")
async def gateway_dead(websocket: WebSocket) -> None:
    await _run(WebSocketProxy(websocket, f"{DEAD_UPSTREAM}/ws", connect_timeout=CONNECT_TIMEOUT))


@gateway_app.websocket("/dead-accept-first")
async def gateway_dead_accept_first(websocket: WebSocket) -> None:
    await websocket.accept()
    await _run(WebSocketProxy(websocket, f"{DEAD_UPSTREAM}/ws", connect_timeout=CONNECT_TIMEOUT))


@gateway_app.websocket("/blackhole")
async def gateway_blackhole(websocket: WebSocket) -> None:
    await _run(
        WebSocketProxy(websocket, f"{BLACKHOLE_UPSTREAM}/ws", connect_timeout=CONNECT_TIMEOUT)
    )
