"""The baseline for ci_guard.py: the least a Redis-backed websocket fan-out can do.

Starlette, one Redis pub/sub connection per process, a local dict topic -> websockets. A
client publish goes to Redis as the ``data`` object's JSON; each Redis message becomes one
ASGI message dict that is sent, in turn, to every local subscriber. Nothing else: no ids,
no queues, no validation, no slow-consumer protection. Same client frames as the asyncws
bench app (``subscribe`` / ``publish``), so one load client drives both.

    ASYNCWS_BENCH_REDIS=redis://127.0.0.1:6379/0 uvicorn benchmarks.raw_app:app

``/echo`` is the request/reply baseline (benchmarks/reqreply.py): each frame
``{"type":"echo","id":N,"data":{...}}`` is parsed, its ``data`` validated by a pydantic model
and answered with ``{"type":"reply","id":N,"data":{...}}``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

REDIS_URL = os.environ.get("ASYNCWS_BENCH_REDIS", "redis://127.0.0.1:6379/0")
_HOLD = "raw-bench:hold"  # subscribed at startup so the listener has something to wait on

subscribers: dict[bytes, set[WebSocket]] = {}
state: dict[str, Any] = {}


async def _fan_out(pubsub: Any) -> None:
    async for item in pubsub.listen():
        if item["type"] != "message":
            continue
        local = subscribers.get(item["channel"])
        if not local:
            continue
        message = {"type": "websocket.send", "text": item["data"].decode()}
        for websocket in list(local):
            try:
                await websocket.send(message)
            except Exception:  # gone: its endpoint removes it
                local.discard(websocket)


@asynccontextmanager
async def lifespan(_app: Any) -> AsyncIterator[None]:
    # redis-py 8's asyncio pool raises MaxConnectionsError past 100 connections in use instead
    # of waiting; one awaited PUBLISH per frame holds one each, so 100 publishers (phase 3)
    # can reach it on a busy machine. The ceiling must not fall over (peerbench's raw does
    # the same).
    client = aioredis.Redis.from_url(REDIS_URL, max_connections=2**31)
    pubsub = client.pubsub()
    await pubsub.subscribe(_HOLD)
    task = asyncio.create_task(_fan_out(pubsub))
    state["redis"], state["pubsub"] = client, pubsub
    try:
        yield
    finally:
        task.cancel()
        await pubsub.aclose()
        await client.aclose()


async def endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    joined: list[bytes] = []
    try:
        while True:
            frame = json.loads(await websocket.receive_text())
            if frame.get("type") == "publish":
                payload = json.dumps(frame["data"], separators=(",", ":"))
                await state["redis"].publish(frame["topic"], payload)
            elif frame.get("type") == "subscribe":
                channel = frame["topic"].encode()
                if channel not in subscribers:
                    subscribers[channel] = set()
                    await state["pubsub"].subscribe(channel)
                subscribers[channel].add(websocket)
                joined.append(channel)
                if "id" in frame:  # acknowledged once the Redis subscription holds
                    await websocket.send_text(f'{{"type":"ack","id":{int(frame["id"])}}}')
    except WebSocketDisconnect:
        pass
    finally:
        for channel in joined:
            subscribers.get(channel, set()).discard(websocket)


class EchoMsg(BaseModel):
    seq: int
    ts: float
    pad: str = ""


async def echo(websocket: WebSocket) -> None:
    """Request/reply, the least a server can do: parse, validate with pydantic, reply."""
    await websocket.accept()
    try:
        while True:
            frame = json.loads(await websocket.receive_text())
            msg = EchoMsg.model_validate(frame["data"])
            reply = f'{{"type":"reply","id":{int(frame["id"])},"data":{msg.model_dump_json()}}}'
            await websocket.send_text(reply)
    except WebSocketDisconnect:
        pass


app = Starlette(
    routes=[WebSocketRoute("/ws", endpoint), WebSocketRoute("/echo", echo)], lifespan=lifespan
)
