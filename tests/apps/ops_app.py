"""The app of the operations tests (outages, many workers, soak): small, but every delivery kind.

Environment:

- ``ASYNCWS_BROKER_URL``: the broker (default ``memory://``).
- ``ASYNCWS_OPS_HISTORY``: set, ``chat/{room}`` keeps history (positions, gap filling).
- ``ASYNCWS_HEALTH_INTERVAL``, ``ASYNCWS_COMMAND_TIMEOUT``, ``ASYNCWS_CONNECT_TIMEOUT``,
  ``ASYNCWS_RECONNECT_MAX``: seconds, passed to `RedisBroker` (short ones make the outage
  tests quick).

Clients: ``/ws?user=NAME`` (the user is optional). Frames:

- ``subscribe``/``publish`` on ``chat/{room}`` (clients may publish ``Note`` messages);
- ``say`` {room, source, n}: the server publishes a `Note` on ``chat/{room}``;
- ``broadcast`` {data} / ``to_conn`` {conn_id, data} / ``to_user`` {user, data}: the other
  delivery kinds, each arriving as ``{"type": "direct", "kind": ..., "data": ...}``;
- ``whoami``: this process (pid, instance id), the connection id and user;
- ``ping``: answered locally, without the broker.

HTTP: ``/health``, ``/health/live``, ``/metrics`` (asyncws.ops) and ``/debug/state`` (the
numbers the soak watches: memory, tasks, connections, index, queues).
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from asyncws import AsyncWS, Connection, HistoryPolicy, Router, WebSocketManager
from asyncws.ops import ops_router

logging.basicConfig(
    level=logging.WARNING,
    format="%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s",
)

BROKER_URL = os.environ.get("ASYNCWS_BROKER_URL", "memory://")

Room = str


class Note(BaseModel):
    """A chat line; ``source``/``n`` let the tests count what arrived."""

    source: str = Field(max_length=64)
    n: int
    text: str = ""


class Say(BaseModel):
    room: str = Field(pattern=r"^[a-z0-9-]{1,32}$")
    source: str = Field(max_length=64)
    n: int


class Payload(BaseModel):
    data: Any = None


class ToConn(BaseModel):
    conn_id: str = Field(max_length=128)
    data: Any = None


class ToUser(BaseModel):
    user: str = Field(max_length=64)
    data: Any = None


class Sent(BaseModel):
    ok: bool = True


class Who(BaseModel):
    pid: int
    instance: str
    conn_id: str
    user: str | None


router = Router()
chat = router.topic(
    "chat/{room}",
    Note,
    params={"room": Room},
    client_publish=True,
    description="Chat lines; clients publish and subscribe.",
    # ASYNCWS_OPS_HISTORY=1: the outage tests with history (instances fill their gaps)
    history=HistoryPolicy(size=20000, ttl=600) if os.environ.get("ASYNCWS_OPS_HISTORY") else None,
)


def _broker_options() -> dict[str, float]:
    if not BROKER_URL.startswith(("redis://", "rediss://", "unix://")):
        return {}
    options: dict[str, float] = {}
    for env, key in (
        ("ASYNCWS_HEALTH_INTERVAL", "health_interval"),
        ("ASYNCWS_COMMAND_TIMEOUT", "command_timeout"),
        ("ASYNCWS_CONNECT_TIMEOUT", "connect_timeout"),
        ("ASYNCWS_RECONNECT_MAX", "reconnect_max"),
    ):
        if os.environ.get(env):
            options[key] = float(os.environ[env])
    return options


manager = WebSocketManager("asyncws-ops", broker_url=BROKER_URL, **_broker_options())


def authenticate(conn: Connection) -> dict[str, str | None]:
    user = conn.websocket.query_params.get("user") or None
    return {"name": user}


ws = AsyncWS(
    title="asyncws ops test app",
    manager=manager,
    authenticate=authenticate,
    user_id=lambda principal: principal["name"],
)


@router.operation("say")
async def say(msg: Say) -> Sent:
    """Publish a Note on chat/{room} from the server (a handler publishing)."""
    await chat.publish(Note(source=msg.source, n=msg.n), room=msg.room)
    return Sent()


@router.operation("broadcast")
async def broadcast(msg: Payload) -> Sent:
    await manager.publish_broadcast({"type": "direct", "kind": "broadcast", "data": msg.data})
    return Sent()


@router.operation("to_conn")
async def to_conn(msg: ToConn) -> Sent:
    await manager.publish_to_connection(
        msg.conn_id, {"type": "direct", "kind": "conn", "data": msg.data}
    )
    return Sent()


@router.operation("to_user")
async def to_user(msg: ToUser) -> Sent:
    await manager.publish_to_user(msg.user, {"type": "direct", "kind": "user", "data": msg.data})
    return Sent()


@router.operation("whoami")
async def whoami(conn: Connection) -> Who:
    return Who(pid=os.getpid(), instance=manager.instance_id, conn_id=conn.id, user=conn.user_id)


@router.operation("ping")
async def ping() -> str:
    return "pong"


ws.include_router(router)  # after the declarations: it copies them
app = FastAPI(title="asyncws ops test app", lifespan=ws.lifespan)
app.include_router(ws.asgi_router)
app.include_router(ops_router(manager, health_detail=True))  # the tests read the counts


def _rss_bytes() -> int:
    """Resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


@app.get("/debug/state", include_in_schema=False)
async def debug_state() -> dict[str, Any]:
    """What a leak would grow: memory, tasks, connections, subscriptions, queues."""
    conns = list(manager.connections.values())
    broker = manager.broker
    return {
        "pid": os.getpid(),
        "rss": _rss_bytes(),
        "tasks": len(asyncio.all_tasks()),
        "connections": len(conns),
        "users": len(manager.users),
        "index_patterns": len(manager.index),
        "index_nodes": manager.index.node_count(),
        "queued": sum(c.queued for c in conns),
        "queue_max": max((c.queued for c in conns), default=0),
        "background": len(manager._background),
        "broker_channels": len(getattr(broker, "_channels", ())),
        "broker_patterns": len(getattr(broker, "_patterns", ())),
        "broker_state": broker.state.value,
        "stats": dict(manager.stats),
    }
