"""asyncws under Granian (the Rust ASGI server) instead of uvicorn: the server tests' core.

Two Granian instances of the operations app (declarative API) and of the seed app on one real
Redis, real websocket clients: handshakes, subscribe acks, client and server publishes across
instances, replies, direct messages to server-assigned connection ids (routed through the
instance channel) and to users, broadcasts, and a clean stop. Granian runs as peerbench runs
it (``--interface asgi --workers 1 --http 1 --ws``); its main process forks one worker, both
stopped through the main process's PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.opstools import APP as OPS_APP
from tests.opstools import FAST_BROKER_ENV
from tests.servers import RedisServer, UvicornServer
from tests.wsclient import WsClient

pytestmark = [pytest.mark.granian, pytest.mark.redis, pytest.mark.slow]

SEED_APP = "tests.apps.seed_app:app"
WAIT = 5.0


class GranianServer(UvicornServer):
    """`UvicornServer`'s process handling (free port, readiness, stop by PID), Granian's argv."""

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--workers",
            "1",
            "--http",
            "1",
            "--ws",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--workers-kill-timeout",
            "2",
            *self.extra_args,
            self.app,
        ]


@contextlib.contextmanager
def granians(app: str, redis: RedisServer, count: int) -> Iterator[list[GranianServer]]:
    servers = [
        GranianServer(
            app,
            env={"ASYNCWS_BROKER_URL": redis.url, **FAST_BROKER_ENV},
            ready_path="/health",
        )
        for _ in range(count)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.close()


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


async def test_declarative_app_across_granian_instances(redis: RedisServer) -> None:
    with granians(OPS_APP, redis, 2) as (a, b):
        async with (
            WsClient(a.ws_url("/ws?user=ann")) as ann,
            WsClient(b.ws_url("/ws?user=bob")) as bob,
        ):
            await bob.subscribe("chat/lobby")
            # a client publish on A reaches B's subscriber, and is acknowledged
            answer = await ann.publish("chat/lobby", {"source": "ann", "n": 1})
            assert answer["type"] == "ack", answer
            # a handler on A publishing
            assert (await ann.call("say", {"room": "lobby", "source": "ann", "n": 2}))[
                "type"
            ] == "reply"
            events = await bob.wait_for(lambda evs: len(evs) >= 2)
            assert [(e["type"], e["data"]["n"]) for e in events] == [("Note", 1), ("Note", 2)]
            # direct messages across instances: a server-assigned id, then a user
            who = await bob.whoami()
            assert who["conn_id"].startswith(who["instance"] + ".")
            await ann.call("to_conn", {"conn_id": who["conn_id"], "data": "to-id"})
            await ann.call("to_user", {"user": "bob", "data": "to-user"})
            await ann.call("broadcast", {"data": "everyone"})
            events = await bob.wait_for(lambda evs: len(evs) >= 5)
            assert [e["data"] for e in events[2:5]] == ["to-id", "to-user", "everyone"]
            # an invalid frame is answered, the connection survives
            await ann.send({"type": "publish", "topic": "chat/lobby", "data": {"n": "x"}})
            assert (await ann.call("ping"))["type"] == "reply"
        for server in (a, b):
            assert server.running()


async def test_seed_app_under_granian(redis: RedisServer) -> None:
    with granians(SEED_APP, redis, 2) as (a, b):
        async with (
            connect(a.ws_url("/ws/not%20valid"), open_timeout=WAIT) as x,
            connect(b.ws_url("/ws/y-granian"), open_timeout=WAIT) as y,
        ):

            async def recv(ws: Any) -> Any:
                async with asyncio.timeout(WAIT):
                    return json.loads(await ws.recv())

            assigned = (await recv(x))["conn_id"]  # the server assigned an id
            await y.send(json.dumps({"type": "subscribe", "topic": "room/1", "id": "s"}))
            assert await recv(y) == {"type": "ack", "id": "s"}
            await x.send(json.dumps({"type": "send", "topic": "room/1", "text": "hi"}))
            assert await recv(y) == {"text": "hi"}
            await y.send(
                json.dumps({"type": "send_by_conn_id", "conn_id": assigned, "text": "back"})
            )
            assert await recv(x) == {"text": "back"}
            await x.send(json.dumps({"type": "send_by_conn_id", "conn_id": "y-granian", "n": 1}))
            assert await recv(y) == {"n": 1}
