"""An app for the idle-connection tests (tests/test_idle_connections.py), on a real uvicorn.

- ``/ws``: `AsyncWS` (Redis broker from ``ASYNCWS_BROKER_URL``, default ``memory://``), topic
  ``rooms/{room}`` and the operation ``ping``; ``/t/{tenant}/ws`` is a second `AsyncWS`
  whose ``whereami`` answers its path parameter;
- ``GET /tasks``: how many asyncio tasks the server's loop holds now;
- ``GET /hello``: a FastAPI route; an ASGI middleware of the FastAPI app records every
  request it saw as ``"{type} {path}"`` (``GET /seen``), so the tests can tell which
  requests went through FastAPI;
- ``/other``: a FastAPI ``@app.websocket`` endpoint (echoes one text frame).

``ASYNCWS_IDLE_TIMEOUT`` (seconds) sets ``Limits(idle_timeout=...)`` on ``/ws``.
``ASYNCWS_FRONT=1`` serves ``ws.in_front_of(ws2.in_front_of(app))`` instead of ``app``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from asyncws import AsyncWS, Router
from asyncws.limits import Limits

seen: list[str] = []


class Note(BaseModel):
    text: str


router = Router()
router.topic("rooms/{room}", Note, client_publish=True)


@router.operation("ping")
async def ping() -> str:
    return "pong"


_idle = os.environ.get("ASYNCWS_IDLE_TIMEOUT")
ws = AsyncWS(
    title="idle",
    broker=os.environ.get("ASYNCWS_BROKER_URL", "memory://"),
    asyncapi_url=None,
    limits=Limits(idle_timeout=float(_idle) if _idle else None),
)
ws.include_router(router)

ws2 = AsyncWS(title="tenants", path="/t/{tenant}/ws", broker="memory://", asyncapi_url=None)


@ws2.operation("whereami")
async def whereami(tenant: str) -> str:
    return tenant


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with ws.lifespan(app), ws2.lifespan(app):
        yield


fastapi_app = FastAPI(lifespan=lifespan)
fastapi_app.include_router(ws.asgi_router)
fastapi_app.include_router(ws2.asgi_router)


class Record:
    """Records each http and websocket request that reaches the FastAPI app's middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            seen.append(f"{scope['type']} {scope['path']}")
        await self.app(scope, receive, send)


fastapi_app.add_middleware(Record)


@fastapi_app.get("/tasks")
async def tasks() -> dict[str, int]:
    return {"tasks": len(asyncio.all_tasks())}


@fastapi_app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


@fastapi_app.get("/seen")
async def seen_paths() -> list[str]:
    return seen


@fastapi_app.websocket("/other")
async def other(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("other:" + await websocket.receive_text())
    await websocket.close()


app: Any = (
    ws.in_front_of(ws2.in_front_of(fastapi_app))
    if os.environ.get("ASYNCWS_FRONT") == "1"
    else fastapi_app
)
