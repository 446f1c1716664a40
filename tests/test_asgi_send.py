"""`asyncws.asgi_send`: deliveries skip Starlette's own send layers, and nothing else.

Real apps (Starlette and FastAPI routes, an AsyncWS app) driven through their ASGI interface:
the send a connection uses for deliveries is the server's (beneath ``WebSocket.send`` and the
exception middleware's ``sender``), a user's middleware that wraps ``send`` stays in the path
and sees every frame, and one message shared by a fan-out reaches every recipient unchanged
even when one of them goes away in the middle of it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState

from asyncws import AsyncWS, Router, WebSocketManager
from asyncws.asgi_send import direct_send
from asyncws.connection import Connection, ConnectionState
from asyncws.testing import TestClient

WAIT = 5.0


class Server:
    """The server side of one websocket, for driving an ASGI app by hand."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return await self.inbox.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def scope() -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "headers": [],
        "root_path": "",
        "scheme": "ws",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "subprotocols": [],
        "asgi": {"version": "3.0"},
    }


class CountingMiddleware:
    """A user's middleware that wraps ``send``: it must see every frame."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.frames: list[str] = []
        self.wrappers: list[Send] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counting(message: Any) -> None:
            if message["type"] == "websocket.send":
                self.frames.append(message.get("text") or "")
            await send(message)

        self.wrappers.append(counting)
        await self.app(scope, receive, counting)


async def resolve(build: Callable[[Any], ASGIApp], server: Server) -> tuple[Any, WebSocket]:
    """Run the app ``build`` makes around an endpoint until that endpoint has the websocket;
    what `direct_send` finds for it."""
    found: asyncio.Future[tuple[Any, WebSocket]] = asyncio.get_running_loop().create_future()

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        found.set_result((direct_send(websocket), websocket))
        await websocket.receive()  # until the test disconnects

    app = build(endpoint)
    task = asyncio.ensure_future(app(scope(), server.receive, server.send))
    try:
        return await asyncio.wait_for(found, WAIT)
    finally:
        server.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, WAIT)


def starlette_app(endpoint: Any) -> ASGIApp:
    return Starlette(routes=[WebSocketRoute("/ws", endpoint)])


def fastapi_app(endpoint: Any) -> ASGIApp:
    app = FastAPI()
    app.add_api_websocket_route("/ws", endpoint)
    return app


def starlette_with_middleware(endpoint: Any) -> ASGIApp:
    app = Starlette(routes=[WebSocketRoute("/ws", endpoint)])
    app.add_middleware(CountingMiddleware)
    return app


async def test_under_a_starlette_route_the_send_is_the_servers() -> None:
    server = Server()
    send, websocket = await resolve(starlette_app, server)
    assert send == server.send  # beneath WebSocket.send and ExceptionMiddleware's sender
    assert websocket._send != server.send


async def test_under_a_fastapi_route_the_send_is_the_servers() -> None:
    server = Server()
    send, _ = await resolve(fastapi_app, server)
    assert send == server.send  # FastAPI's route and Starlette's middleware skipped alike


async def test_a_users_middleware_stays_in_the_path() -> None:
    server = Server()
    send, _ = await resolve(starlette_with_middleware, server)
    assert send != server.send
    assert getattr(send, "__qualname__", "").startswith("CountingMiddleware")


async def test_no_direct_send_for_what_is_not_a_plain_starlette_websocket() -> None:
    class Own(WebSocket):
        async def send(self, message: Any) -> None:  # sends its own way
            await super().send(message)

    server = Server()
    assert direct_send(Own(scope(), server.receive, server.send)) is None
    assert direct_send(object()) is None
    assert direct_send(WebSocket(scope(), server.receive, server.send)) == server.send


async def test_a_server_send_that_is_not_a_coroutine_function_is_not_stepped() -> None:
    """Granian's ``send`` returns a future its Rust side resolves: the layer above it is used."""
    server = Server()
    sent: list[Any] = []

    def future_send(message: Any) -> asyncio.Future[None]:
        sent.append(message)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    server.send = future_send  # type: ignore[assignment,method-assign]
    send, websocket = await resolve(starlette_app, server)
    assert send is not None and send != future_send
    assert inspect.iscoroutinefunction(send)
    conn = Connection(websocket, "g")
    websocket.application_state = WebSocketState.CONNECTED
    conn.mark_open()
    assert conn.push({"type": "websocket.send", "text": "x"})
    await conn.drain(WAIT)
    assert sent[-1] == {"type": "websocket.send", "text": "x"}
    assert conn.state is ConnectionState.OPEN


class Note(BaseModel):
    text: str


async def test_a_users_middleware_sees_every_delivered_frame() -> None:
    router = Router()
    router.topic("notes/{n}", Note, client_publish=True)
    ws = AsyncWS(asyncapi_url=None, asyncapi_yaml_url=None, docs_url=None)
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    counting = CountingMiddleware(app)
    async with (
        TestClient(counting, timeout=WAIT) as client,
        client.connect("/ws") as a,
        client.connect("/ws") as b,
    ):
        for session in (a, b):
            assert (await session.subscribe("notes/1"))["type"] == "ack"
        await a.send_json({"type": "publish", "topic": "notes/1", "data": {"text": "hi"}})
        for session in (a, b):
            event = await session.receive_event("notes/1")
            assert event["data"] == {"text": "hi"}
    events = [text for text in counting.frames if '"topic":"notes/1"' in text]
    assert len(events) == 2  # both deliveries went through the user's middleware


async def test_a_recipient_gone_in_the_middle_of_a_fan_out_does_not_affect_the_others() -> None:
    manager = WebSocketManager("fanout", broker_url="memory://")
    servers = [Server() for _ in range(5)]
    conns = []
    for i, server in enumerate(servers):
        websocket = WebSocket(scope(), server.receive, server.send)
        websocket.client_state = WebSocketState.CONNECTED
        websocket.application_state = WebSocketState.CONNECTED
        conns.append(Connection(websocket, f"c{i}"))

    async def gone(message: Any) -> None:
        raise OSError("connection reset")

    conns[2]._asgi_send = gone  # the third recipient's transport is gone
    for conn in conns:
        manager.bridge._index.add("t", conn)
    text = '{"type":"t","data":1}'
    assert manager.bridge.deliver(list(conns), text) == 4
    for i, server in enumerate(servers):
        assert server.sent == ([] if i == 2 else [{"type": "websocket.send", "text": text}])
    shared = [server.sent[0] for i, server in enumerate(servers) if i != 2]
    assert all(m is shared[0] for m in shared)  # one message object for every recipient
    assert conns[2].state is ConnectionState.CLOSING
    assert conns[2].websocket.application_state is WebSocketState.DISCONNECTED
    assert all(c.state is ConnectionState.OPEN for i, c in enumerate(conns) if i != 2)
