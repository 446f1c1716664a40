"""The app of the presence tests and benchmark: rooms with presence, on any broker.

Environment: ``ASYNCWS_BROKER_URL`` (default ``memory://``), ``ASYNCWS_PRESENCE_TTL``
(seconds, default 30), ``ASYNCWS_HEALTH_INTERVAL`` (the Redis watchdog, seconds; with it,
``ASYNCWS_COMMAND_TIMEOUT``, seconds, default 5).

Clients: ``/ws?user=NAME`` (optional). Topics: ``rooms/{room}`` (presence by user, the info is
``{"name": ..., "pid": ...}``), ``tabs/{room}`` (presence by connection, no events),
``plain/{room}`` (no presence), ``staff/{room}`` (presence; only the user ``admin`` may
subscribe). Operations: ``members`` {room} answers the server API's view
(`Topic.presence` and `Topic.presence_stats`) from this instance; ``held`` {room} the members
of ``rooms/{room}`` this instance holds itself (its tracker, no broker involved: a test knows
from it that a disconnect was handled); ``enter`` / ``exit`` {room}: server code subscribes
the connection to ``rooms/{room}`` (``ws.manager.subscribe``) and unsubscribes it.
``/seed/{user}``: the seed's protocol (``WebSocketManager.receive``) on this app's manager.
HTTP: ``/health``.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, WebSocket
from pydantic import BaseModel, Field

from asyncws import AsyncWS, Connection, Router
from asyncws.presence import PresencePolicy

BROKER_URL = os.environ.get("ASYNCWS_BROKER_URL", "memory://")
TTL = float(os.environ.get("ASYNCWS_PRESENCE_TTL", "30"))


class Line(BaseModel):
    text: str = Field(max_length=200)


class Room(BaseModel):
    room: str = Field(pattern=r"^[a-z0-9-]{1,32}$")


class Members(BaseModel):
    members: list[str]
    count: int
    pid: int


def _info(conn: Connection) -> dict[str, Any]:
    return {"name": conn.user_id, "pid": os.getpid()}


router = Router()
rooms = router.topic(
    "rooms/{room}", Line, presence=PresencePolicy(info=_info, ttl=TTL), client_publish=True
)
tabs = router.topic(
    "tabs/{room}", Line, presence=PresencePolicy(track="connection", events=False, ttl=TTL)
)
plain = router.topic("plain/{room}", Line)


def only_admin(conn: Connection) -> bool:
    return conn.user_id == "admin"


staff = router.topic("staff/{room}", Line, presence=PresencePolicy(ttl=TTL), authorize=only_admin)


def authenticate(conn: Connection) -> dict[str, str | None]:
    return {"name": conn.websocket.query_params.get("user") or None}


options: dict[str, Any] = {}
if BROKER_URL.startswith("redis") and os.environ.get("ASYNCWS_HEALTH_INTERVAL"):
    from asyncws import WebSocketManager

    options["manager"] = WebSocketManager(
        "asyncws-presence",
        broker_url=BROKER_URL,
        health_interval=float(os.environ["ASYNCWS_HEALTH_INTERVAL"]),
        command_timeout=float(os.environ.get("ASYNCWS_COMMAND_TIMEOUT", "5")),
        reconnect_max=0.5,
    )

ws = AsyncWS(
    title="asyncws presence test app",
    broker=BROKER_URL,
    broker_channel="asyncws-presence",
    authenticate=authenticate,
    user_id=lambda principal: principal["name"],
    allowed_origins=["*"],
    **options,
)


@router.operation("members")
async def members(room: Room) -> Members:
    """The members of rooms/{room} as the server API sees them on this instance."""
    found = await rooms.presence(room=room.room)
    stats = await rooms.presence_stats(room=room.room)
    return Members(members=sorted(m.member for m in found), count=stats.count, pid=os.getpid())


class Held(BaseModel):
    members: list[str]


@router.operation("held")
async def held(room: Room) -> Held:
    """The members of rooms/{room} held by this instance's own connections."""
    topic = rooms.topic_for(room=room.room)
    return Held(members=sorted(m for t, m in ws.presence.local if t == topic))


@router.operation("enter")
async def enter(room: Room, conn: Connection) -> None:
    """Server code subscribes the connection to rooms/{room} (it joins presence)."""
    await ws.manager.subscribe(conn, rooms.topic_for(room=room.room))


@router.operation("exit")
async def exit_room(room: Room, conn: Connection) -> None:
    await ws.manager.unsubscribe(conn, rooms.topic_for(room=room.room))


ws.include_router(router)
app = FastAPI(lifespan=ws.lifespan)
app.include_router(ws.asgi_router)


@app.websocket("/seed/{user}")
async def seed(websocket: WebSocket, user: str) -> None:
    """The seed's protocol on the app's manager: its subscribes join presence too."""
    connection = await ws.manager.new_connection(websocket, user_id=user)
    async for msg in connection.iter_json():
        await ws.manager.receive(connection, msg)
    await ws.manager.remove_connection(connection)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
