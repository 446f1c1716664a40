"""asyncws through its seed-compatible API, the way a fastapi-distributed-websocket app is written.

    ASYNCWS_BENCH_REDIS=redis://127.0.0.1:6379/0 uvicorn benchmarks.compat_app:app

``/ws/{conn_id}`` is the seed's route with an id the client chose (claimed on the broker;
benchmarks/storm.py's ``ids`` system). Client frames: ``{"type":"subscribe","topic":"bench/t"}`` and
``{"type":"send","topic":"bench/t", <payload fields>}``; recipients get the payload fields.
"""

# No "from __future__ import annotations": FastAPI resolves the endpoint's annotations.
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket

from asyncws import WebSocketManager
from asyncws.limits import Limits

manager = WebSocketManager(
    "asyncws-bench-compat",
    broker_url=os.environ.get("ASYNCWS_BENCH_REDIS", "memory://"),
    # the benchmark publisher floods on purpose: lift its publish budget (4 MiB/s)
    limits=Limits(fanout_bytes_rate=float(1 << 40), max_fanout_bytes=1 << 30),
)


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    await manager.startup()
    yield
    await manager.shutdown()


app = FastAPI(lifespan=lifespan)


@app.websocket("/ws")
async def endpoint(websocket: WebSocket) -> None:
    connection = await manager.new_connection(websocket)
    async for message in connection.iter_json():
        await manager.receive(connection, message)
    manager.remove_connection(connection)


@app.websocket("/ws/{conn_id}")
async def endpoint_with_id(websocket: WebSocket, conn_id: str) -> None:
    connection = await manager.new_connection(websocket, conn_id)
    async for message in connection.iter_json():
        await manager.receive(connection, message)
    manager.remove_connection(connection)
