"""The asyncws app that benchmarks/bench.py and ci_guard.py run (declarative API, Redis broker).

    ASYNCWS_BENCH_REDIS=redis://127.0.0.1:6379/0 uvicorn benchmarks.bench_app:app

* topic ``bench/{n}`` (a pydantic model ``seq, ts, pad``; clients may publish to it):
  ``{"type":"publish","topic":"bench/t","data":{"seq":1,"ts":2.0,"pad":"x"}}``;
* operation ``direct`` sends one message to a connection id or to a user id, wherever it is
  connected: ``{"type":"direct","data":{"to":"<id>","by":"conn"|"user","msg":{...}}}``; the
  recipient gets the ``msg`` object (encoded once);
* operation ``whoami`` answers the connection's server-assigned id;
* operation ``echo`` replies with its validated payload (request/reply, benchmarks/reqreply.py);
* with ``ASYNCWS_BENCH_HISTORY=1``, also topic ``hist/{n}`` (the same model, clients may publish,
  ``history=HistoryPolicy(size=5000, ttl=600)``: benchmarks/history_fanout.py); off by default,
  so the other scenarios measure an app without history topics;
* with ``ASYNCWS_BENCH_IDLE_TIMEOUT=S``, ``Limits(idle_timeout=S)`` (benchmarks/memprobe.py);
* with ``ASYNCWS_BENCH_FRONT=1``, ``app`` is ``ws.in_front_of(fastapi_app)`` (the endpoint is
  served before FastAPI's middleware and routing; docs/performance.md, idle memory);
* ``GET /_bench/stats``: the manager's counters (``broker_messages`` ...), connections, pid.

The user id comes from the ``user`` query parameter (benchmark only: no authentication).
"""

# No "from __future__ import annotations": pydantic resolves the models' annotations, and the
# declarative layer resolves the handlers' annotations, at declaration time.
import os
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, Connection, HistoryPolicy, Router
from asyncws.limits import Limits


class BenchMsg(BaseModel):
    """One benchmark message; ``seq`` and ``ts`` come first on the wire."""

    seq: int
    ts: float
    pad: str = ""


class Direct(BaseModel):
    to: str
    by: Literal["conn", "user"] = "conn"
    msg: BenchMsg


class WhoAmI(BaseModel):
    conn_id: str
    user_id: str | None


router = Router()
router.topic("bench/{n}", BenchMsg, client_publish=True, description="benchmark topics")
if os.environ.get("ASYNCWS_BENCH_HISTORY") == "1":
    router.topic(
        "hist/{n}",
        BenchMsg,
        client_publish=True,
        history=HistoryPolicy(size=5000, ttl=600),
        description="benchmark topics with history",
    )


def authenticate(conn: Connection) -> dict[str, Any]:
    user = conn.websocket.query_params.get("user") or None
    return {"user": user}


ws = AsyncWS(
    title="asyncws bench",
    broker=os.environ.get("ASYNCWS_BENCH_REDIS", "memory://"),
    broker_channel="asyncws-bench",
    authenticate=authenticate,
    user_id=lambda principal: principal["user"],
    # A benchmark publisher is one trusted connection sending thousands of frames per second,
    # and the scenarios hold more than 10k connections: lift the per-connection rate limit,
    # the connection cap and the publish budget (production defaults: 50 frames/s, 10,000
    # connections, 4 MiB/s of published bytes per connection).
    limits=Limits(
        rate=1e6,
        burst=1_000_000,
        max_connections=100_000,
        fanout_bytes_rate=float(1 << 40),  # the byte-bound scenario floods 20 KB messages
        max_fanout_bytes=1 << 30,
        idle_timeout=float(os.environ.get("ASYNCWS_BENCH_IDLE_TIMEOUT") or 0) or None,
    ),
    asyncapi_url=None,
    asyncapi_yaml_url=None,
    docs_url=None,
)


@router.operation("direct")
async def direct(cmd: Direct) -> None:
    """Send ``msg`` to one connection, or to every connection of one user."""
    text = cmd.msg.model_dump_json()
    if cmd.by == "conn":
        await ws.manager.publish_to_connection(cmd.to, text=text)
    else:
        await ws.manager.publish_to_user(cmd.to, text=text)


@router.operation("echo")
async def echo(msg: BenchMsg) -> BenchMsg:
    """Request/reply (benchmarks/reqreply.py): the validated payload, as the reply."""
    return msg


@router.operation("whoami")
async def whoami(conn: Connection) -> WhoAmI:
    return WhoAmI(conn_id=conn.id, user_id=conn.user_id)


ws.include_router(router)

fastapi_app = FastAPI(lifespan=ws.lifespan)
fastapi_app.include_router(ws.asgi_router)
# ASYNCWS_BENCH_FRONT=1: serve the websocket endpoint in front of FastAPI (`AsyncWS.in_front_of`:
# the app's middleware does not run for /ws); /_bench/stats is still FastAPI's.
app: Any = (
    ws.in_front_of(fastapi_app) if os.environ.get("ASYNCWS_BENCH_FRONT") == "1" else fastapi_app
)


@fastapi_app.get("/_bench/stats")
async def bench_stats() -> dict[str, Any]:
    manager = ws.manager
    return {
        "pid": os.getpid(),
        "connections": len(manager.connections),
        "patterns": len(manager.index),
        **manager.stats,
    }
