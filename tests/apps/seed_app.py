"""The seed README's app, written against asyncws, for tests with real servers.

The websocket endpoint is the README's (``new_connection`` / ``iter_json`` / ``receive`` /
``await remove_connection``); only the imports differ, and startup/shutdown use a lifespan
(FastAPI deprecated ``on_event``). The HTTP routes exist for the tests:

- ``GET /health``: ``manager.health()`` (poll it to see the broker reconnect);
- ``POST /publish/{topic}``: publish the JSON body on a topic; 503 with the error when the
  broker cannot take it (a publish while Redis is down must fail loudly);
- ``POST /send_user/{user_id}``: publish the JSON body to every connection of a user.

Configuration comes from the environment: ``ASYNCWS_BROKER_URL`` (default ``memory://``),
``ASYNCWS_BROKER_CHANNEL`` (default ``asyncws``), ``ASYNCWS_MAX_QUEUE``,
``ASYNCWS_MAX_QUEUE_BYTES``, ``ASYNCWS_FANOUT_BYTES_RATE`` (bytes a client's frames may
make the server publish per second) and ``ASYNCWS_SLOW_CONSUMER`` (``close`` or
``drop_oldest``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Body, FastAPI, WebSocket
from fastapi.responses import JSONResponse

from asyncws import BrokerError, Connection, InvalidTopicError, WebSocketManager
from asyncws.limits import Limits

BROKER_URL = os.environ.get("ASYNCWS_BROKER_URL", "memory://")
BROKER_CHANNEL = os.environ.get("ASYNCWS_BROKER_CHANNEL", "asyncws")

manager = WebSocketManager(
    BROKER_CHANNEL,
    broker_url=BROKER_URL,
    max_queue=int(os.environ.get("ASYNCWS_MAX_QUEUE", "2048")),
    max_queue_bytes=int(os.environ.get("ASYNCWS_MAX_QUEUE_BYTES", str(1 << 20))),
    slow_consumer="drop_oldest"
    if os.environ.get("ASYNCWS_SLOW_CONSUMER") == "drop_oldest"
    else "close",
    # A flood test raises the per-connection publish budget (its subject is slow readers).
    limits=Limits(fanout_bytes_rate=float(os.environ.get("ASYNCWS_FANOUT_BYTES_RATE", 4 << 20))),
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await manager.startup()
    yield
    await manager.shutdown()


app = FastAPI(lifespan=lifespan)


@app.websocket("/ws/{conn_id}")
async def websocket_endpoint(ws: WebSocket, conn_id: str) -> None:
    connection: Connection = await manager.new_connection(ws, conn_id)
    # This is the preferred way of handling WebSocketDisconnect
    async for msg in connection.iter_json():
        await manager.receive(connection, msg)
    await manager.remove_connection(connection)


@app.websocket("/ws/{conn_id}/user/{user_id}")
async def user_websocket_endpoint(ws: WebSocket, conn_id: str, user_id: str) -> None:
    connection: Connection = await manager.new_connection(ws, conn_id, user_id=user_id)
    async for msg in connection.iter_json():
        await manager.receive(connection, msg)
    await manager.remove_connection(connection)


@app.get("/health")
async def health() -> dict[str, Any]:
    return manager.health()


@app.post("/publish/{topic:path}")
async def publish(topic: str, body: Annotated[Any, Body()] = None) -> JSONResponse:
    try:
        await manager.publish(topic, body)
    except InvalidTopicError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except BrokerError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    return JSONResponse({"published": topic})


@app.post("/send_user/{user_id}")
async def send_user(user_id: str, body: Annotated[Any, Body()] = None) -> JSONResponse:
    try:
        await manager.publish_to_user(user_id, body)
    except BrokerError as exc:
        return JSONResponse({"error": str(exc)}, status_code=503)
    return JSONResponse({"sent": user_id})
