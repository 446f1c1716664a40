"""An app with history topics, for the multi-process recovery tests (tests/test_history_*).

``ASYNCWS_BROKER_URL`` picks the broker. ``POST /publish/{room}?n=N&start=S`` publishes N
numbered events (``n = S .. S+N-1``) and answers with the position of the last one, after
Redis accepted every one of them: what a publisher was acknowledged.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, HistoryPolicy


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
    for i in range(start, start + n):
        last = await rooms.publish(Posted(n=i), room=room)
    return {"position": None if last is None else last.as_json()}


@app.post("/price/{sym}")
async def price(sym: str, value: float) -> dict[str, object]:
    position = await prices.publish(Price(value=value), sym=sym)
    return {"position": None if position is None else position.as_json()}


@app.get("/health")
async def health() -> dict[str, object]:
    return {**ws.manager.health(), "history": ws.manager.history.stats}
