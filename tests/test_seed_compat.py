"""The seed's Python API used the seed's way: hand-built connections, ``topics`` mutation,
brokers used directly with dicts, ``async for message in connection``, the bearer's keywords,
``manager.broadcast(dict)`` and every import path of fastapi-distributed-websocket 0.2.0.

Apps are raw ASGI callables or FastAPI apps driven in memory by `asyncws.testing`; the routing
and broker tests run on ``memory://`` and on a real Redis started by the ``redis_url`` fixture.
Frames are awaited with a timeout; "nothing else arrived" is checked with a marker broadcast
after the messages under test (the marker must be the next frame).
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import Depends, FastAPI, WebSocket, WebSocketDisconnect
from starlette.types import Receive, Scope, Send

import asyncws
from asyncws import (
    BrokerInterface,
    BrokerMessage,
    Connection,
    ConnectionState,
    InvalidTopicError,
    Message,
    WebSocketManager,
    create_broker,
    subscribe,
    unsubscribe,
)
from asyncws.testing import TestClient, WebSocketClosed, WebSocketSession

WAIT = 5.0
MIGRATION = Path(__file__).resolve().parent.parent / "docs" / "migration.md"

# Every import path of the seed (0.2.0, its last commit) and the names it exported there.
SEED_PATHS: dict[str, list[str]] = {
    "asyncws": [
        "WebSocketManager",
        "WebSocketProxy",
        "WebSocketOAuth2PasswordBearer",
        "Connection",
        "BrokerInterface",
        "InMemoryBroker",
        "RedisBroker",
        "create_broker",
        "BrokerT",
        "Message",
        "handle",
        "ahandle",
        "WebSocketException",
        "InvalidSubscription",
        "InvalidSubscriptionMessage",
        "matches",
        "subscribe",
        "unsubscribe",
        "handle_subscription_message",
        "is_valid_broker",
    ],
    "asyncws._auth": ["WebSocketOAuth2PasswordBearer"],
    "asyncws._broker": ["BrokerInterface", "InMemoryBroker", "RedisBroker", "create_broker"],
    "asyncws._connection": ["Connection"],
    "asyncws._decorators": ["handle", "ahandle"],
    "asyncws._exception_handlers": ["send_error_message"],
    "asyncws._exceptions": [
        "WebSocketException",
        "InvalidSubscription",
        "InvalidSubscriptionMessage",
    ],
    "asyncws._matching": ["matches"],
    "asyncws._message": [
        "Message",
        "tag_client_message",
        "untag_broker_message",
        "validate_incoming_message",
    ],
    "asyncws._subscriptions": [
        "is_subscription_message",
        "subscribe",
        "unsubscribe",
        "handle_subscription_message",
    ],
    "asyncws._types": ["BrokerT"],
    "asyncws.manager": ["WebSocketManager"],
    "asyncws.proxy": ["WebSocketProxy"],
    "asyncws.utils": [
        "clear_task",
        "is_valid_json",
        "serialize",
        "deserialize",
        "update",
        "is_valid_broker",
    ],
}

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=BACKENDS)
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


# -- import paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SEED_PATHS))
def test_every_seed_import_path_gives_the_asyncws_objects(path: str) -> None:
    module = importlib.import_module(path)
    for name in SEED_PATHS[path]:
        value = getattr(module, name)
        if hasattr(asyncws, name):
            assert value is getattr(asyncws, name), f"{path}.{name}"


def test_migration_guide_maps_every_seed_import_path() -> None:
    text = MIGRATION.read_text()
    for path in SEED_PATHS:
        seed_path = path.replace("asyncws", "distributed_websocket", 1)
        assert re.search(rf"\| `{re.escape(seed_path)}` \|", text), seed_path


# -- hand-built connections -----------------------------------------------------------------


def raw_app(body: Callable[[WebSocket], Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await body(WebSocket(scope, receive=receive, send=send))

    return app


async def test_a_connection_around_an_accepted_websocket_is_open_and_sends() -> None:
    seen: dict[str, Any] = {}

    async def body(websocket: WebSocket) -> None:
        await websocket.accept()
        connection = Connection(websocket, "hand")
        seen["state"] = connection.state
        await connection.send_json({"your_id": connection.id})
        async for data in connection.iter_json():
            await connection.send_json({"echo": data})

    async with TestClient(raw_app(body), lifespan=False) as client, client.connect("/") as ws:
        assert await ws.receive_json(WAIT) == {"your_id": "hand"}
        await ws.send_json({"msg": "hello"})
        assert await ws.receive_json(WAIT) == {"echo": {"msg": "hello"}}
    assert seen["state"] is ConnectionState.OPEN


async def test_a_connection_built_before_accept_opens_when_its_websocket_is_accepted() -> None:
    async def body(websocket: WebSocket) -> None:
        connection = Connection(websocket, "early")
        assert connection.state is ConnectionState.CONNECTING
        await websocket.accept()  # directly, not connection.accept()
        await connection.send_json({"hello": 1})
        assert connection.state is ConnectionState.OPEN

    async with TestClient(raw_app(body), lifespan=False) as client, client.connect("/") as ws:
        assert await ws.receive_json(WAIT) == {"hello": 1}


async def test_sending_on_a_connection_that_is_not_open_raises() -> None:
    errors: list[str] = []

    async def body(websocket: WebSocket) -> None:
        connection = Connection(websocket, "never")
        for send in (connection.send_json({"a": 1}), connection.send_text("x")):
            try:
                await send
            except RuntimeError as exc:
                errors.append(str(exc))
        await websocket.accept()
        await websocket.close()
        try:
            await connection.send_json({"after": "close"})
        except RuntimeError as exc:
            errors.append(str(exc))

    async with TestClient(raw_app(body), lifespan=False) as client:
        ws = await client.websocket_connect("/")
        assert await ws.expect_closed(WAIT) == 1000
        await ws.close()
    assert len(errors) == 3, errors
    assert all("not sent" in e for e in errors)


async def test_async_iteration_yields_messages_and_answers_bad_frames() -> None:
    got: list[Message] = []

    async def body(websocket: WebSocket) -> None:
        await websocket.accept()
        connection = Connection(websocket, "it")
        async for message in connection:
            got.append(message)
            await connection.send_json({"got": message.type, "data": message.data})

    async with TestClient(raw_app(body), lifespan=False) as client, client.connect("/") as ws:
        await ws.send_json({"msg": "no type"})
        error = await ws.receive_json(WAIT)
        assert (error["type"], error["code"]) == ("error", "unknown_type")
        assert error["message"] == "Invalid message type: None"
        await ws.send_json({"type": "send", "msg": "no topic"})
        assert (await ws.receive_json(WAIT))["code"] == "invalid_topic"
        await ws.send_json({"type": "send_by_conn_id", "msg": "no conn_id"})
        assert (await ws.receive_json(WAIT))["code"] == "invalid_frame"
        await ws.send_text("not json")
        assert (await ws.receive_json(WAIT))["code"] == "invalid_json"
        await ws.send_json({"type": "broadcast", "msg": "hello"})
        assert await ws.receive_json(WAIT) == {"got": "broadcast", "data": {"msg": "hello"}}
    assert [(m.type, m.topic, m.data) for m in got] == [("broadcast", None, {"msg": "hello"})]
    assert all(isinstance(m, Message) for m in got)


# -- topics mutation routes -----------------------------------------------------------------


def seed_app(manager: WebSocketManager, *, iterate: bool = True) -> FastAPI:
    """The seed tests' endpoint: subscribe by mutating ``topics``, then relay frames."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager:
            yield

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/ws/{conn_id}")
    async def endpoint(websocket: WebSocket, conn_id: str) -> None:
        connection = await manager.new_connection(websocket, conn_id)
        for topic in websocket.query_params.getlist("topic"):
            connection.topics.add(topic)
        await connection.send_json({"ready": connection.id})
        frames = connection if iterate else connection.iter_json()
        async for message in frames:
            await manager.receive(connection, message)
        manager.remove_connection(connection)

    return app


async def ready(client: TestClient, url: str) -> WebSocketSession:
    ws = await client.websocket_connect(url)
    assert "ready" in await ws.receive_json(WAIT)
    return ws


async def next_is_marker(manager: WebSocketManager, *clients: WebSocketSession) -> None:
    """Nothing else arrived before a broadcast sent now (it comes through the same broker)."""
    await manager.publish_broadcast({"marker": True})
    for ws in clients:
        assert await ws.receive_json(WAIT) == {"marker": True}


async def test_topics_add_on_a_registered_connection_routes(broker_url: str) -> None:
    manager = WebSocketManager("seedcompat", broker_url=broker_url)
    async with TestClient(seed_app(manager), timeout=WAIT) as client:
        sub = await ready(client, "/ws/sub?topic=tests/1&topic=tests/%2B")
        other = await ready(client, "/ws/other")
        sender = await ready(client, "/ws/sender")
        await sender.send_json({"type": "send", "topic": "tests/1", "msg": "hello"})
        assert await sub.receive_json(WAIT) == {"msg": "hello"}  # once, for two patterns
        await next_is_marker(manager, sub, other)
        conn = manager.connections["sub"]
        assert conn.topics == {"tests/1", "tests/+"}
        assert set(manager.index.match("tests/1")) == {conn}
        # local sends (the seed's manager.send) see it too
        manager.send(Message(data={"local": 1}, typ="send", topic="tests/9"))
        assert await sub.receive_json(WAIT) == {"local": 1}
        # discard unsubscribes
        conn.topics.discard("tests/1")
        conn.topics.remove("tests/+")
        assert conn.topics == set()
        await sender.send_json({"type": "send", "topic": "tests/1", "msg": "gone"})
        await next_is_marker(manager, sub)
        for ws in (sub, other, sender):
            await ws.close()
    assert len(manager.index) == 0


async def test_topics_changes_are_validated_and_every_set_operation_routes() -> None:
    manager = WebSocketManager("seedcompat", broker_url="memory://", max_subscriptions=3)
    async with TestClient(seed_app(manager), timeout=WAIT) as client:
        ws = await ready(client, "/ws/sets")
        conn = manager.connections["sets"]
        with pytest.raises(InvalidTopicError):
            conn.topics.add("a/#/b")
        conn.topics |= {"a/1", "a/2"}
        conn.topics.update(["a/3"])
        assert set(manager.index.match("a/3")) == {conn}
        with pytest.raises(asyncws.TooManySubscriptionsError):
            conn.topics.add("a/4")
        conn.topics -= {"a/1"}
        conn.topics &= {"a/2", "a/9"}
        assert conn.topics == {"a/2"}
        conn.topics ^= {"a/2", "b/1"}
        assert conn.topics == {"b/1"}
        conn.topics = {"c/1", "c/2"}  # assignment subscribes and unsubscribes too
        assert conn.topics == {"c/1", "c/2"}
        assert not manager.index.match("b/1")
        assert conn.topics.pop() in {"c/1", "c/2"}
        conn.topics.clear()
        assert len(manager.index) == 0
        with pytest.raises(KeyError):
            conn.topics.remove("c/1")
        await ws.close()


async def test_topics_set_before_registration_are_subscribed_on_attach() -> None:
    manager = WebSocketManager("seedcompat", broker_url="memory://")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager:
            yield

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        connection = Connection(websocket, "early", topic="rooms/1")
        connection.topics.add("rooms/2")  # not registered yet: a plain set
        await manager.attach(connection)
        await connection.send_json({"ready": True})
        async for message in connection:
            await manager.receive(connection, message)
        manager.remove_connection(connection)

    async with TestClient(app, timeout=WAIT) as client, client.connect("/ws") as ws:
        assert await ws.receive_json(WAIT) == {"ready": True}
        await manager.publish("rooms/2", {"n": 2})
        await manager.publish("rooms/1", {"n": 1})
        assert await ws.receive_json(WAIT) == {"n": 2}
        assert await ws.receive_json(WAIT) == {"n": 1}


async def test_unmanaged_topics_are_a_plain_set_for_the_seed_helpers() -> None:
    async def body(websocket: WebSocket) -> None:
        await websocket.accept()
        connection = Connection(websocket, "alone")
        async for message in connection:
            if message.type == "subscribe":
                subscribe(connection, message)
            elif message.type == "unsubscribe":
                unsubscribe(connection, message)
            await connection.send_json({"topics": sorted(connection.topics)})

    async with TestClient(raw_app(body), lifespan=False) as client, client.connect("/") as ws:
        await ws.send_json({"type": "subscribe", "topic": "test/1"})
        assert await ws.receive_json(WAIT) == {"topics": ["test/1"]}
        # MQTT allows one-level topics; the seed refused them
        await ws.send_json({"type": "subscribe", "topic": "nolevel"})
        assert await ws.receive_json(WAIT) == {"topics": ["nolevel", "test/1"]}
        await ws.send_json({"type": "unsubscribe", "topic": "test/1"})
        assert await ws.receive_json(WAIT) == {"topics": ["nolevel"]}


async def test_one_level_topics_route_through_the_manager() -> None:
    manager = WebSocketManager("seedcompat", broker_url="memory://")
    async with TestClient(seed_app(manager), timeout=WAIT) as client:
        ws = await ready(client, "/ws/flat")
        await ws.send_json({"type": "subscribe", "topic": "nolevel", "id": 1})
        assert await ws.receive_json(WAIT) == {"type": "ack", "id": 1}
        await ws.send_json({"type": "send", "topic": "nolevel", "msg": "flat"})
        assert await ws.receive_json(WAIT) == {"msg": "flat"}
        await ws.close()


# -- manager.broadcast(dict) ----------------------------------------------------------------


async def test_readme_broadcast_of_the_received_dict_keeps_the_connection() -> None:
    manager = WebSocketManager("seedcompat", broker_url="memory://")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager:
            yield

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/ws/{conn_id}")
    async def endpoint(ws: WebSocket, conn_id: str) -> None:  # the seed README's loop
        connection = await manager.new_connection(ws, conn_id)
        await connection.send_json({"ready": True})
        try:
            while True:
                msg = await connection.receive_json()
                await manager.broadcast(msg)
        except WebSocketDisconnect:
            await manager.remove_connection(connection)

    async with TestClient(app, timeout=WAIT) as client:
        a = await ready(client, "/ws/a")
        b = await ready(client, "/ws/b")
        for n in (1, 2):
            await a.send_json({"msg": n})
            assert await a.receive_json(WAIT) == {"msg": n}
            assert await b.receive_json(WAIT) == {"msg": n}
        await a.close()
        await b.close()


def test_seed_senders_name_the_expected_type() -> None:
    manager = WebSocketManager("seedcompat", broker_url="memory://")
    with pytest.raises(TypeError, match=r"broadcast\(\) expects a Message or a dict, got list"):
        manager.broadcast([1])  # type: ignore[arg-type]
    for method in (manager.send, manager.send_by_conn_id, manager.send_msg):
        with pytest.raises(TypeError, match=r"expects a Message, got dict"):
            method({"type": "send", "topic": "a/b"})  # type: ignore[arg-type]
    assert tuple(manager._send_tasks) == ()  # the seed's tests cancel these: there are none


# -- brokers used directly ------------------------------------------------------------------


async def test_broker_publish_of_a_dict_gives_the_seed_message(broker_url: str) -> None:
    async with create_broker(broker_url) as broker:
        await broker.subscribe("seedcompat/test")
        await broker.publish(
            "seedcompat/test",
            {"type": "broadcast", "topic": None, "conn_id": None, "msg": "hello"},
        )
        got = await broker.get_message(timeout=WAIT)
        assert isinstance(got, Message)
        assert (got.type, got.topic, got.conn_id, got.data) == (
            "broadcast",
            None,
            None,
            {"msg": "hello"},
        )
        await broker.publish(
            "seedcompat/test", Message(data={"x": 1}, typ="send", topic="a/b", conn_id="c")
        )
        got = await broker.get_message(timeout=WAIT)
        assert isinstance(got, Message)
        assert (got.type, got.topic, got.conn_id, got.data) == ("send", "a/b", "c", {"x": 1})
        await broker.publish("seedcompat/test", b'{"no": "type"}')  # not the seed's shape
        assert await broker.get_message(timeout=WAIT) == BrokerMessage(
            "seedcompat/test", b'{"no": "type"}'
        )
        with pytest.raises(TypeError, match="bytes, str, a dict or a Message"):
            await broker.publish("seedcompat/test", 42)


async def test_the_manager_delivers_beside_dict_publishes(broker_url: str) -> None:
    """A seed-style publish on the manager's namespace does not disturb its listener."""
    manager = WebSocketManager("seedcompat", broker_url=broker_url)
    async with TestClient(seed_app(manager), timeout=WAIT) as client:
        ws = await ready(client, "/ws/x?topic=t/1")
        await manager.broker.publish("seedcompat/t/t/1", {"type": "send", "msg": "raw"})
        await manager.publish("t/1", {"msg": "framed"})
        assert await ws.receive_json(WAIT) == {"msg": "framed"}
        assert manager.stats["broker_malformed"] == 1
        await ws.close()


# -- the bearer's keywords ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"token_url": "/token"},
        {"tokenUrl": "/token"},
        {"token_url": "/token", "tokenUrl": "/token"},
    ],
)
async def test_bearer_takes_the_seed_and_fastapi_keywords(kwargs: dict[str, str]) -> None:
    bearer = asyncws.WebSocketOAuth2PasswordBearer(**kwargs)  # type: ignore[arg-type]
    assert bearer.model.flows.password is not None
    assert bearer.model.flows.password.tokenUrl == "/token"
    app = FastAPI()

    @app.websocket("/ws/{conn_id}")
    async def endpoint(websocket: WebSocket, token: str = Depends(bearer)) -> None:
        await websocket.accept()
        await websocket.send_json({"token": token})

    async with TestClient(app, timeout=WAIT) as client:
        async with client.connect("/ws/me", headers={"Authorization": "Bearer abc"}) as ws:
            assert await ws.receive_json(WAIT) == {"token": "abc"}
        with pytest.raises(asyncws.testing.WebSocketDenied) as denied:
            await client.websocket_connect("/ws/me")
        assert denied.value.status == 403


def test_bearer_keyword_mistakes_are_type_errors() -> None:
    bearer = asyncws.WebSocketOAuth2PasswordBearer("/token", refresh_url="/refresh")
    assert bearer.model.flows.password is not None
    assert bearer.model.flows.password.refreshUrl == "/refresh"
    with pytest.raises(TypeError, match="tokenUrl and token_url differ"):
        asyncws.WebSocketOAuth2PasswordBearer(tokenUrl="/a", token_url="/b")
    with pytest.raises(TypeError, match=r"needs tokenUrl \(or token_url\)"):
        asyncws.WebSocketOAuth2PasswordBearer()


# -- the seed's private helpers -------------------------------------------------------------


async def test_the_seed_helpers() -> None:
    from asyncws._exception_handlers import send_error_message
    from asyncws._message import tag_client_message, untag_broker_message
    from asyncws._message import validate_incoming_message as validate
    from asyncws.utils import clear_task, deserialize, is_valid_json, serialize, update

    frame = {"msg": "hello", "type": "send", "topic": "t", "conn_id": "c"}
    assert untag_broker_message(frame) == ("send", "t", "c", {"msg": "hello"})
    assert frame["type"] == "send"  # not mutated
    assert untag_broker_message(b'{"type": "broadcast"}') == ("broadcast", None, None, {})
    assert tag_client_message({"msg": 1}) == {"msg": 1, "type": "broadcast"}
    assert tag_client_message(frame) == frame
    validate(frame)
    for bad, text in [
        ({"type": "nope"}, "Invalid message type: nope"),
        ({"type": "subscribe"}, 'Invalid message type "subscribe" with no topic'),
        ({"type": "send_by_conn_id"}, 'Invalid message type "send_by_conn_id" with no conn_id'),
    ]:
        with pytest.raises(ValueError, match=re.escape(text)):
            validate(bad)
    assert asyncws.is_valid_broker(asyncws.InMemoryBroker())
    assert not asyncws.is_valid_broker(object())
    assert asyncws.BrokerT is BrokerInterface
    assert update({"a": 1}, b=2) == {"a": 1, "b": 2}
    assert is_valid_json("[1]") and not is_valid_json("{") and not is_valid_json(None)
    assert serialize(Message(data={"d": 1}, typ="broadcast"))["type"] == "broadcast"
    with pytest.raises(TypeError):
        deserialize(object())
    task = asyncio.get_running_loop().create_task(asyncio.sleep(10))
    clear_task(task)
    with pytest.raises(asyncio.CancelledError):
        await task

    errors: list[Any] = []

    async def body(websocket: WebSocket) -> None:
        await websocket.accept()
        connection = Connection(websocket, "err")
        await send_error_message(asyncws.InvalidSubscription("bad", connection=connection))
        await websocket.receive()

    async with TestClient(raw_app(body), lifespan=False) as client, client.connect("/") as ws:
        errors.append(await ws.receive_json(WAIT))
    assert errors == [{"type": "error", "code": "invalid_topic", "message": "bad"}]


async def test_a_client_closing_ends_the_async_iteration() -> None:
    ended = asyncio.Event()

    async def body(websocket: WebSocket) -> None:
        await websocket.accept()
        async for _ in Connection(websocket, "bye"):
            pass
        ended.set()

    async with TestClient(raw_app(body), lifespan=False) as client:
        ws = await client.websocket_connect("/")
        await ws.close()
        await asyncio.wait_for(ended.wait(), WAIT)
        with pytest.raises(WebSocketClosed):
            await ws.receive_json(0.1)
