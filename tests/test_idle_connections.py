"""What an idle connection costs the server, and the opt-in front door (`AsyncWS.in_front_of`).

Against a real uvicorn (and Redis) with real websocket clients: an idle, subscribed
connection holds no asyncio task of asyncws's own (uvicorn's one task per connection is all),
whether the app is served through FastAPI or in front of it; and ``ws.in_front_of(app)``
serves the websocket endpoints (with path parameters) while everything else, HTTP routes and
FastAPI's own websocket routes, is still served by ``app``, whose middleware does not see the
endpoint's path. docs/performance.md has the bytes (benchmarks/memprobe.py).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect

from asyncws.cli import CLIError, find_app
from asyncws.serve import asyncws_apps
from tests.servers import RedisServer, UvicornServer

IDLE = 40
WAIT = 10.0

pytestmark = pytest.mark.redis


async def _call(client: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    await client.send(json.dumps(frame))
    while True:
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(client.recv(), WAIT))
        if answer.get("id") == frame["id"]:
            return answer


async def _tasks(http: httpx.AsyncClient) -> int:
    count: int = (await http.get("/tasks")).json()["tasks"]
    return count


@pytest.mark.parametrize(
    ("front", "idle_timeout"),
    [("0", ""), ("1", ""), ("0", "300")],
    ids=["through-fastapi", "in-front-of-fastapi", "with-idle-timeout"],
)
async def test_an_idle_connection_holds_no_task_of_asyncws(
    redis_server: RedisServer, front: str, idle_timeout: str
) -> None:
    env = {
        "ASYNCWS_BROKER_URL": redis_server.url,
        "ASYNCWS_FRONT": front,
        "ASYNCWS_IDLE_TIMEOUT": idle_timeout,
    }
    with UvicornServer("tests.apps.idle_app:app", env=env, ready_path="/tasks") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            # one warm connection per topic first: the broker subscriptions are made
            warm = [await connect(server.ws_url("/ws"), open_timeout=WAIT) for _ in range(2)]
            for n, client in enumerate(warm):
                ack = await _call(client, {"type": "subscribe", "id": 1, "topic": f"rooms/{n}"})
                assert ack["type"] == "ack"
            before = await _tasks(http)
            clients = [await connect(server.ws_url("/ws"), open_timeout=WAIT) for _ in range(IDLE)]
            try:
                for n, client in enumerate(clients):
                    topic = f"rooms/{n % 2}"
                    ack = await _call(client, {"type": "subscribe", "id": 1, "topic": topic})
                    assert ack == {"type": "ack", "id": 1}
                    assert (await _call(client, {"type": "ping", "id": 2}))["data"] == "pong"
                after = await _tasks(http)
                # uvicorn runs each connection in one task; asyncws adds none while it is idle
                assert after - before == IDLE
                # and the idle connections still work: a publish reaches all of them
                await warm[0].send(
                    json.dumps({"type": "publish", "topic": "rooms/0", "data": {"text": "hi"}})
                )
                for client in clients[::2]:
                    event = json.loads(await asyncio.wait_for(client.recv(), WAIT))
                    assert event["topic"] == "rooms/0" and event["data"] == {"text": "hi"}
            finally:
                for client in clients + warm:
                    await client.close()


async def test_in_front_of_serves_the_endpoint_and_passes_everything_else_on() -> None:
    with UvicornServer(
        "tests.apps.idle_app:app", env={"ASYNCWS_FRONT": "1"}, ready_path="/tasks"
    ) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            assert (await http.get("/hello")).json() == {"hello": "world"}
            async with connect(server.ws_url("/ws"), open_timeout=WAIT) as client:
                assert (await _call(client, {"type": "ping", "id": 1}))["data"] == "pong"
            # the second app, with a path parameter, is in front too
            async with connect(server.ws_url("/t/acme/ws"), open_timeout=WAIT) as client:
                assert (await _call(client, {"type": "whereami", "id": 1}))["data"] == "acme"
            # FastAPI's own websocket route is FastAPI's
            async with connect(server.ws_url("/other"), open_timeout=WAIT) as client:
                await client.send("x")
                assert await asyncio.wait_for(client.recv(), WAIT) == "other:x"
            seen = (await http.get("/seen")).json()
    # the FastAPI app's middleware saw what FastAPI served, never the endpoints in front
    assert "http /hello" in seen and "websocket /other" in seen
    assert "websocket /ws" not in seen and "websocket /t/acme/ws" not in seen


async def test_through_fastapi_the_middleware_sees_the_endpoint() -> None:
    with UvicornServer("tests.apps.idle_app:app", ready_path="/tasks") as server:
        async with connect(server.ws_url("/ws"), open_timeout=WAIT) as client:
            assert (await _call(client, {"type": "ping", "id": 1}))["data"] == "pong"
        async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
            assert "websocket /ws" in (await http.get("/seen")).json()


def test_the_cli_finds_the_app_behind_a_front_door() -> None:
    from tests.apps import idle_app

    front = idle_app.ws.in_front_of(FastAPI())
    assert find_app(front) is idle_app.ws
    both = idle_app.ws2.in_front_of(front)
    assert {id(a) for a in asyncws_apps(both)} == {id(idle_app.ws), id(idle_app.ws2)}
    with pytest.raises(CLIError, match="2 AsyncWS apps"):
        find_app(both)
