"""An app with history topics, for the multi-process recovery tests (tests/test_history_*).

``ASYNCWS_BROKER_URL`` picks the broker. ``POST /publish/{room}?n=N&start=S`` publishes N
numbered events (``n = S .. S+N-1``) and answers with the position of the last one, after
Redis accepted every one of them: what a publisher was acknowledged (503 when the broker
refused one: the ones before it were published).
"""

from __future__ import annotations

import os

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from asyncws import AsyncWS, BrokerError, HistoryPolicy


class Posted(BaseModel):
    n: int


class Price(BaseModel):
    value: float


ws = AsyncWS(
    title="history",
    broker=os.environ.get("ASYNCWS_BROKER_URL", "memory://"),
    broker_channel="hist",
    allowed_origins=["*"],
)
rooms = ws.topic("rooms/{room}", Posted, history=HistoryPolicy(size=5000, ttl=600))
prices = ws.topic("prices/{sym}", Price, history=HistoryPolicy(size=1, ttl=600, cache=True))
plain = ws.topic("plain/{room}", Posted)

app = FastAPI(lifespan=ws.lifespan)
app.include_router(ws.asgi_router)


@app.post("/publish/{room}")
async def publish(room: str, n: int = 1, start: int = 0) -> dict[str, object]:
    last = None
    try:
        for i in range(start, start + n):
            last = await rooms.publish(Posted(n=i), room=room)
    except BrokerError as exc:  # not stored, not sent: what a publisher is told
        raise HTTPException(503, "broker unavailable") from exc
    return {"position": None if last is None else last.as_json()}


@app.post("/price/{sym}")
async def price(sym: str, value: float) -> dict[str, object]:
    position = await prices.publish(Price(value=value), sym=sym)
    return {"position": None if position is None else position.as_json()}


@app.get("/health")
async def health() -> dict[str, object]:
    return {**ws.manager.health(), "history": ws.manager.history.stats}
