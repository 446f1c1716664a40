"""`WebSocketManager` and the seed API, in one process.

The app under test is the seed README's endpoint, built here around a manager of the test's
own, and driven through `asyncws.testing.TestClient` (in-memory ASGI, no network). Most tests
use the ``memory://`` broker; the routing test also runs on a real Redis, whose pattern
subscriptions over-approximate and deliver overlapping copies, so the manager's exact
filtering and duplicate dropping are tested there.

"Exactly once" is checked without sleeping: after the messages under test, a marker is sent
to everyone, and each client's frames up to the marker must be exactly the expected ones.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketState

from asyncws import (
    BrokerError,
    CloseCode,
    Connection,
    ConnectionState,
    InMemoryBroker,
    InvalidSubscription,
    InvalidSubscriptionMessage,
    Message,
    WebSocketManager,
    ahandle,
    handle,
    matches,
    subscribe,
    unsubscribe,
)
from asyncws.testing import TestClient, WebSocketClosed, WebSocketDenied, WebSocketSession

WAIT = 5.0

# -- the app: the seed README's endpoint ----------------------------------------------------


def build_app(manager: WebSocketManager) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await manager.startup()
        yield
        await manager.shutdown()

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/ws/{conn_id}")
    async def websocket_endpoint(ws: WebSocket, conn_id: str) -> None:
        connection: Connection = await manager.new_connection(ws, conn_id)
        async for msg in connection.iter_json():
            await manager.receive(connection, msg)
        manager.remove_connection(connection)

    @app.websocket("/ws/{conn_id}/user/{user_id}")
    async def user_endpoint(ws: WebSocket, conn_id: str, user_id: str) -> None:
        connection = await manager.new_connection(ws, conn_id, user_id=user_id)
        async for msg in connection.iter_json():
            await manager.receive(connection, msg)
        await manager.remove_connection(connection)  # the README awaits it: both work

    return app


@asynccontextmanager
async def running(manager: WebSocketManager) -> AsyncIterator[TestClient]:
    async with TestClient(build_app(manager), timeout=WAIT) as client:
        yield client


@asynccontextmanager
async def clients(client: TestClient, *names: str) -> AsyncIterator[list[WebSocketSession]]:
    sessions = [await client.websocket_connect(f"/ws/{name}") for name in names]
    try:
        yield sessions
    finally:
        for session in sessions:
            await session.close()


async def subscribe_ack(ws: WebSocketSession, topic: str) -> None:
    """Subscribe and wait for the ack: from then on the subscription is in effect."""
    frame_id = uuid.uuid4().hex[:8]
    await ws.send_json({"type": "subscribe", "topic": topic, "id": frame_id})
    assert await ws.receive_json() == {"type": "ack", "id": frame_id}


async def frames_until_marker(ws: WebSocketSession, marker: Any) -> list[Any]:
    """Every frame before ``marker`` (which must arrive, within the timeout)."""
    out: list[Any] = []
    async with asyncio.timeout(WAIT):
        while (frame := await ws.receive_json()) != marker:
            out.append(frame)
    return out


async def marker_to_all(
    sender: WebSocketSession, sessions: list[WebSocketSession]
) -> dict[int, list[Any]]:
    """Broadcast a marker; return what each session got before it."""
    marker = {"marker": uuid.uuid4().hex}
    await sender.send_json({"type": "broadcast", **marker})
    return {i: await frames_until_marker(ws, marker) for i, ws in enumerate(sessions)}


class BlockedWebSocket:
    """A stand-in for a server-side starlette ``WebSocket`` whose client stopped reading.

    With the in-memory TestClient a client that "does not read" never blocks the server (its
    frames just pile up in a queue), so a slow consumer cannot be simulated with a session.
    Here ``send`` blocks until `unblock` (like a socket whose peer has a full receive window);
    ``close`` goes through ``send`` like starlette's, so it blocks too.
    """

    def __init__(self) -> None:
        self.application_state = WebSocketState.CONNECTING
        self.client_state = WebSocketState.CONNECTED
        self.sent: list[dict[str, Any]] = []
        self._open = asyncio.Event()
        self._changed = asyncio.Condition()

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        self.application_state = WebSocketState.CONNECTED

    async def send(self, message: dict[str, Any]) -> None:
        await self._open.wait()
        self.sent.append(message)
        async with self._changed:
            self._changed.notify_all()

    async def wait_sent(self, predicate: Callable[[list[dict[str, Any]]], bool]) -> None:
        """Wait (bounded) until ``predicate(self.sent)`` holds."""
        async with asyncio.timeout(WAIT), self._changed:
            await self._changed.wait_for(lambda: predicate(self.sent))

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.application_state = WebSocketState.DISCONNECTED
        await self.send({"type": "websocket.close", "code": code})

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def unblock(self) -> None:
        self._open.set()

    def texts(self) -> list[Any]:
        return [json.loads(m["text"]) for m in self.sent if m["type"] == "websocket.send"]


class FailingBroker(InMemoryBroker):
    """An in-memory broker whose publish fails while ``down`` is set."""

    down = False

    async def publish(self, channel: str, message: Any) -> None:
        if self.down:
            raise BrokerError("the broker is unavailable; the message was not published")
        await super().publish(channel, message)


async def wait_background(manager: WebSocketManager) -> None:
    """Let the manager's background broker (un)subscriptions finish."""
    async with asyncio.timeout(WAIT):
        while manager._background:
            await asyncio.gather(*manager._background, return_exceptions=True)


# -- routing ----------------------------------------------------------------------------------

ROUTING_BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=ROUTING_BACKENDS)
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    return url


async def test_topic_routing_wildcards_exactly_once(broker_url: str) -> None:
    manager = WebSocketManager(f"app{uuid.uuid4().hex[:6]}", broker_url=broker_url)
    async with (
        running(manager) as client,
        clients(client, "plus", "hash", "exact", "both", "other", "sender") as sessions,
    ):
        plus, hash_, exact, both, other, sender = sessions
        await subscribe_ack(plus, "chat/+")
        await subscribe_ack(hash_, "chat/#")
        await subscribe_ack(exact, "chat/room1")
        await subscribe_ack(both, "chat/+")
        await subscribe_ack(both, "chat/#")  # overlapping patterns: still one copy
        await subscribe_ack(other, "news/+")

        for n, topic in enumerate(
            ["chat/room1", "chat/room1/deep", "chat", "chatroom/x", "news/1", "nobody"], 1
        ):
            await sender.send_json({"type": "send", "topic": topic, "n": n})
        got = await marker_to_all(sender, sessions)

    assert got[0] == [{"n": 1}]  # chat/+
    assert got[1] == [{"n": 1}, {"n": 2}, {"n": 3}]  # chat/# (also 'chat' itself)
    assert got[2] == [{"n": 1}]  # chat/room1
    assert got[3] == [{"n": 1}, {"n": 2}, {"n": 3}]  # chat/+ and chat/#, once each
    assert got[4] == [{"n": 5}]  # news/+
    assert got[5] == []  # the sender subscribed to nothing
    if broker_url.startswith("redis"):
        # Redis delivered overlapping copies (exact + two globs) and over-matching globs
        # ('chat*' for 'chatroom/x'); the manager dropped and filtered them.
        assert manager.stats["broker_duplicates"] >= 2


async def test_unsubscribe_stops_delivery() -> None:
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "a", "b") as (a, b):
        await subscribe_ack(a, "t/+")
        await a.send_json({"type": "unsubscribe", "topic": "t/+", "id": "u"})
        assert await a.receive_json() == {"type": "ack", "id": "u"}
        await b.send_json({"type": "send", "topic": "t/1", "v": 1})
        got = await marker_to_all(b, [a, b])
        assert got == {0: [], 1: []}
        assert len(manager.index) == 0


async def test_broadcast_reaches_everyone_once() -> None:
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "a", "b", "c") as sessions:
        await subscribe_ack(sessions[0], "#")  # subscriptions do not matter for broadcast
        await sessions[1].send_json({"type": "broadcast", "hello": "all"})
        got = await marker_to_all(sessions[2], sessions)
        assert got == {0: [{"hello": "all"}], 1: [{"hello": "all"}], 2: [{"hello": "all"}]}


async def test_send_by_conn_id_string_and_list() -> None:
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "a", "b", "c") as sessions:
        a, _, _ = sessions
        await a.send_json({"type": "send_by_conn_id", "conn_id": "b", "x": 1})
        await a.send_json({"type": "send_by_conn_id", "conn_id": ["a", "c", "nobody"], "x": 2})
        got = await marker_to_all(a, sessions)
        assert got == {0: [{"x": 2}], 1: [{"x": 1}], 2: [{"x": 2}]}


async def test_publish_to_user_reaches_every_connection_of_that_user() -> None:
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client:
        u1a = await client.websocket_connect("/ws/u1a/user/u1")
        u1b = await client.websocket_connect("/ws/u1b/user/u1")
        u2 = await client.websocket_connect("/ws/u2/user/u2")
        await manager.publish_to_user("u1", {"for": "u1"})
        got = await marker_to_all(u2, [u1a, u1b, u2])
        assert got == {0: [{"for": "u1"}], 1: [{"for": "u1"}], 2: []}
        await u1a.close()
        await manager.publish_to_user("u1", {"for": "u1", "n": 2})
        got = await marker_to_all(u2, [u1b, u2])
        assert got == {0: [{"for": "u1", "n": 2}], 1: []}
        await u1b.close()
        await u2.close()
        assert manager.users == {}
        assert manager.connections == {}


async def test_seed_local_sends() -> None:
    """`send`, `broadcast`, `send_by_conn_id` and `send_msg` deliver on this instance only."""
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "a", "b", "c") as sessions:
        a, b, c = sessions
        await subscribe_ack(a, "chat/+")
        await subscribe_ack(b, "chat/#")
        manager.send(Message(typ="send", topic="chat/1", data={"t": 1}))
        manager.send(Message(typ="send", topic="chat/1/2", data={"t": 2}))
        manager.send(Message(typ="send", topic=None, data={"t": "none"}))  # no topic: nothing
        manager.broadcast(Message(typ="broadcast", data={"t": 3}))
        manager.send_by_conn_id(Message(typ="send_by_conn_id", conn_id="c", data={"t": 4}))
        manager.send_by_conn_id(Message(typ="send_by_conn_id", conn_id=["a", "b"], data={"t": 5}))
        manager.send_msg(Message(typ="broadcast", data={"t": 6}))
        manager.send_msg(Message(typ="send_by_conn_id", conn_id="a", data={"t": 7}))
        manager.send_msg(Message(typ="send", topic="chat/9", data={"t": 8}))
        got = await marker_to_all(c, sessions)
        assert got[0] == [{"t": 1}, {"t": 3}, {"t": 5}, {"t": 6}, {"t": 7}, {"t": 8}]
        assert got[1] == [{"t": 1}, {"t": 2}, {"t": 3}, {"t": 5}, {"t": 6}, {"t": 8}]
        assert got[2] == [{"t": 3}, {"t": 4}, {"t": 6}]
        assert [c.id for c in manager.active_connections] == ["a", "b", "c"]
        assert len(manager) == 3 and {c.id for c in manager} == {"a", "b", "c"}


# -- connection ids ----------------------------------------------------------------------------


async def test_duplicate_conn_id_does_not_take_over() -> None:
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "alice", "alice", "bob") as sessions:
        _first, second, bob = sessions
        assigned = await second.receive_json()
        assert assigned["type"] == "set_conn_id"
        new_id = assigned["conn_id"]
        assert isinstance(new_id, str) and new_id != "alice"
        assert manager.connections["alice"].websocket is not manager.connections[new_id].websocket

        await bob.send_json({"type": "send_by_conn_id", "conn_id": "alice", "to": "alice"})
        await bob.send_json({"type": "send_by_conn_id", "conn_id": new_id, "to": "new"})
        got = await marker_to_all(bob, sessions)
        # The first client never got a set_conn_id frame and still owns its id.
        assert got == {0: [{"to": "alice"}], 1: [{"to": "new"}], 2: []}


async def test_malformed_conn_id_gets_a_server_id() -> None:
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "bad%20id!", "x" * 200) as sessions:
        for ws in sessions:
            frame = await ws.receive_json()
            assert frame["type"] == "set_conn_id"
            assert frame["conn_id"] in manager.connections


async def test_set_conn_id() -> None:
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "a", "b") as (a, b):
        conn = manager.connections["a"]
        manager.set_conn_id(conn, "renamed")
        assert await a.receive_json() == {"type": "set_conn_id", "conn_id": "renamed"}
        assert conn.id == "renamed" and "a" not in manager.connections
        with pytest.raises(ValueError):
            manager.set_conn_id(conn, "b")  # another live connection's id
        with pytest.raises(ValueError):
            manager.set_conn_id(conn, "no spaces")
        await wait_background(manager)
        await b.send_json({"type": "send_by_conn_id", "conn_id": "a", "v": "old"})
        await b.send_json({"type": "send_by_conn_id", "conn_id": "renamed", "v": "new"})
        got = await marker_to_all(b, [a, b])
        assert got == {0: [{"v": "new"}], 1: []}


# -- bad input -------------------------------------------------------------------------------

DEEP_TOPIC = "/".join("a" * 20)
BAD_FRAMES: list[tuple[str, Any, str, Any]] = [
    # (how, payload, expected code, expected id)
    ("text", "{not json", "invalid_json", None),
    ("text", "[1, 2, 3]", "invalid_frame", None),
    ("text", '"just a string"', "invalid_frame", None),
    ("bytes", b"\x00\x01", "unsupported_data", None),
    ("json", {"type": "nope", "id": 7}, "unknown_type", 7),
    ("json", {"id": 8}, "unknown_type", 8),
    ("json", {"type": 5, "id": 9}, "unknown_type", 9),
    ("json", {"type": "subscribe", "id": 10}, "invalid_topic", 10),
    ("json", {"type": "subscribe", "topic": 5, "id": 11}, "invalid_topic", 11),
    ("json", {"type": "subscribe", "topic": "a/#/b", "id": 12}, "invalid_topic", 12),
    ("json", {"type": "subscribe", "topic": "+x", "id": "s13"}, "invalid_topic", "s13"),
    ("json", {"type": "subscribe", "topic": "", "id": 14}, "invalid_topic", 14),
    ("json", {"type": "subscribe", "topic": "a" * 300, "id": 15}, "invalid_topic", 15),
    ("json", {"type": "subscribe", "topic": DEEP_TOPIC, "id": 16}, "invalid_topic", 16),
    ("json", {"type": "unsubscribe", "topic": "#/a", "id": 17}, "invalid_topic", 17),
    ("json", {"type": "send", "topic": "a/+", "id": 18}, "invalid_topic", 18),
    ("json", {"type": "send", "id": 19}, "invalid_topic", 19),
    ("json", {"type": "send", "topic": "a\x00b", "id": 20}, "invalid_topic", 20),
    ("json", {"type": "send_by_conn_id", "conn_id": 5, "id": 21}, "invalid_frame", 21),
    ("json", {"type": "send_by_conn_id", "id": 22}, "invalid_frame", 22),
    ("json", {"type": "send_by_conn_id", "conn_id": [], "id": 23}, "invalid_frame", 23),
    ("json", {"type": "nope", "id": "x" * 65}, "unknown_type", None),  # unusable id
]


async def send_raw(ws: WebSocketSession, how: str, payload: Any) -> None:
    if how == "text":
        await ws.send_text(payload)
    elif how == "bytes":
        await ws.send_bytes(payload)
    else:
        await ws.send_json(payload)


async def test_every_bad_frame_gets_an_error_and_the_connection_keeps_working() -> None:
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "a", "b") as (a, b):
        for how, payload, code, frame_id in BAD_FRAMES:
            await send_raw(a, how, payload)
            error = await a.receive_json()
            assert error["type"] == "error", (payload, error)
            assert error["code"] == code, (payload, error)
            assert error.get("id") == frame_id, (payload, error)
            assert isinstance(error["message"], str) and error["message"]
            # Still working: a good frame is answered.
            await subscribe_ack(a, "ok/1")
        await b.send_json({"type": "send", "topic": "ok/1", "still": "here"})
        got = await marker_to_all(b, [a, b])
        assert got == {0: [{"still": "here"}], 1: []}
        assert manager.connections["a"].state is ConnectionState.OPEN


async def test_too_many_subscriptions() -> None:
    manager = WebSocketManager(broker_url="memory://", max_subscriptions=3)
    async with running(manager) as client, clients(client, "a") as (a,):
        for i in range(3):
            await subscribe_ack(a, f"t/{i}")
        await subscribe_ack(a, "t/0")  # already held: not a new one
        await a.send_json({"type": "subscribe", "topic": "t/3", "id": 4})
        error = await a.receive_json()
        assert (error["code"], error["id"]) == ("too_many_subscriptions", 4)
        await subscribe_ack(a, "t/2")


async def test_too_many_wildcards_seed_protocol() -> None:
    manager = WebSocketManager(broker_url="memory://", max_wildcards=2)
    async with running(manager) as client, clients(client, "a") as (a,):
        await subscribe_ack(a, "t/+")
        await subscribe_ack(a, "u/#")
        await a.send_json({"type": "subscribe", "topic": "v/+", "id": 3})
        error = await a.receive_json()
        assert (error["code"], error["id"]) == ("too_many_subscriptions", 3)
        assert "2 wildcard subscriptions per connection" in error["message"]
        await subscribe_ack(a, "v/1")  # exact topics are not capped


async def test_broker_failure_is_reported_to_the_sender() -> None:
    broker = FailingBroker()
    manager = WebSocketManager(broker=broker)
    async with running(manager) as client, clients(client, "a", "b") as (a, b):
        await subscribe_ack(b, "t/1")
        broker.down = True
        await a.send_json({"type": "send", "topic": "t/1", "id": "p1", "v": 1})
        error = await a.receive_json()
        assert (error["type"], error["code"], error["id"]) == ("error", "broker_unavailable", "p1")
        with pytest.raises(BrokerError):
            await manager.publish("t/1", {"v": 2})
        assert manager.stats["publish_errors"] == 2
        broker.down = False
        await a.send_json({"type": "send", "topic": "t/1", "v": 3})
        got = await marker_to_all(a, [a, b])
        assert got == {0: [], 1: [{"v": 3}]}


async def test_consecutive_bad_frames_close_with_1008() -> None:
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "a") as (a,):
        for _ in range(25):
            await a.send_text("{not json")
        errors = 0
        with pytest.raises(WebSocketClosed) as closed:
            async with asyncio.timeout(WAIT):
                while True:
                    frame = await a.receive_json()
                    assert frame["code"] == "invalid_json"
                    errors += 1
        assert closed.value.code == CloseCode.POLICY_VIOLATION
        assert 15 <= errors <= 25
        await a.close()
        assert manager.connections == {}


async def test_bad_frames_handled_by_the_manager_also_close_with_1008() -> None:
    """Well-formed JSON objects the manager rejects count too; once closed, the connection's
    further frames are ignored (not published)."""
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "bad", "sub") as (bad, sub):
        await subscribe_ack(sub, "t/1")
        for _ in range(25):
            await bad.send_json({"type": "nope"})
        assert await bad.expect_closed(WAIT) == CloseCode.POLICY_VIOLATION
        await bad.send_json({"type": "send", "topic": "t/1", "after": "close"})
        await bad.close()  # returns once the server handler has ended
        got = await marker_to_all(sub, [sub])
        assert got == {0: []}
        assert list(manager.connections) == ["sub"]


async def test_good_frames_pay_back_strikes() -> None:
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "a") as (a,):
        for _ in range(60):  # one bad, one good: never closed
            await a.send_json({"type": "nope"})
            assert (await a.receive_json())["code"] == "unknown_type"
            await subscribe_ack(a, "t/1")
            await subscribe_ack(a, "t/2")
        assert manager.connections["a"].state is ConnectionState.OPEN


async def test_frame_over_max_frame_size_closes_with_1009() -> None:
    manager = WebSocketManager(broker_url="memory://", max_frame_size=1000)
    async with running(manager) as client, clients(client, "a", "b") as (a, b):
        await a.send_json({"type": "broadcast", "pad": "x" * 900})  # under the limit
        assert (await a.receive_json())["pad"] == "x" * 900
        await a.send_text(json.dumps({"type": "broadcast", "pad": "x" * 2000}))
        assert await a.expect_closed(WAIT) == CloseCode.MESSAGE_TOO_BIG
        await a.close()
        assert list(manager.connections) == ["b"]
        got = await marker_to_all(b, [b])
        assert got == {0: [{"pad": "x" * 900}]}  # the big frame was not published


# -- slow consumers --------------------------------------------------------------------------


async def test_slow_consumer_is_closed_with_1013_and_others_keep_receiving() -> None:
    manager = WebSocketManager(broker_url="memory://", max_queue=8)
    async with running(manager) as client, clients(client, "fast") as (fast,):
        blocked = BlockedWebSocket()
        slow = await manager.new_connection(blocked, "slow")  # type: ignore[arg-type]
        await manager.subscribe(slow, "t/+")
        await subscribe_ack(fast, "t/+")

        for i in range(100):
            await manager.publish("t/1", {"i": i})
        got = [await fast.receive_json() for _ in range(100)]
        assert got == [{"i": i} for i in range(100)]  # the fast one got everything

        assert slow.state is ConnectionState.CLOSED or slow.state is ConnectionState.CLOSING
        assert slow.close_code == CloseCode.TRY_AGAIN_LATER
        # Forgotten at once: no more routing to it, its subscriptions are gone.
        assert "slow" not in manager.connections
        assert manager.index.subscribers("t/+") == frozenset({manager.connections["fast"]})
        # When the peer reads again, it gets what was in flight, then the 1013 close frame.
        blocked.unblock()
        async with asyncio.timeout(WAIT):
            await slow.wait_closed()
        await blocked.wait_sent(lambda sent: bool(sent) and sent[-1]["type"] == "websocket.close")
        assert blocked.sent[-1] == {"type": "websocket.close", "code": 1013}
        assert len(blocked.texts()) <= 1  # at most the frame the writer was sending
        # The fast one is unaffected.
        await manager.publish("t/2", {"after": True})
        assert await fast.receive_json() == {"after": True}


async def test_drop_oldest_policy_counts_dropped() -> None:
    manager = WebSocketManager(broker_url="memory://", max_queue=4, slow_consumer="drop_oldest")
    async with running(manager) as client, clients(client, "fast") as (fast,):
        blocked = BlockedWebSocket()
        slow = await manager.new_connection(blocked, "slow")  # type: ignore[arg-type]
        await manager.subscribe(slow, "t/1")
        await subscribe_ack(fast, "t/1")
        for i in range(20):
            await manager.publish("t/1", {"i": i})
        assert [await fast.receive_json() for _ in range(20)] == [{"i": i} for i in range(20)]
        # One message is stuck in the writer's send, 4 wait in the queue, the rest dropped.
        assert slow.state is ConnectionState.OPEN
        assert slow.dropped == 15
        blocked.unblock()
        await blocked.wait_sent(lambda sent: len(sent) >= 5)
        texts = blocked.texts()
        assert texts[1:] == [{"i": i} for i in range(16, 20)]  # the newest survive, in order
        assert slow.dropped == 15


async def test_queue_is_bounded_in_bytes_too() -> None:
    """1 KB frames against a 4 KB byte bound: the frame bound (2048) is far away."""
    manager = WebSocketManager(broker_url="memory://", max_queue_bytes=4096)
    async with running(manager) as client, clients(client, "fast") as (fast,):
        blocked = BlockedWebSocket()
        slow = await manager.new_connection(blocked, "slow")  # type: ignore[arg-type]
        await manager.subscribe(slow, "t/1")
        await subscribe_ack(fast, "t/1")
        pad = "x" * 1000
        for i in range(3):  # one in the writer's send + 2 queued: 3 KB held
            await manager.publish("t/1", {"i": i, "p": pad})
        assert [(await fast.receive_json())["i"] for _ in range(3)] == list(range(3))
        assert slow.state is ConnectionState.OPEN
        assert 3000 < slow.queued_bytes <= 4096
        for i in range(3, 6):
            await manager.publish("t/1", {"i": i, "p": pad})
        assert [(await fast.receive_json())["i"] for _ in range(3)] == list(range(3, 6))
        assert slow.close_code == CloseCode.TRY_AGAIN_LATER  # closed at the 5th KB
        assert slow.queued_bytes == 0
        assert "slow" not in manager.connections
        assert manager.stats["slow_consumer_closes"] == 1


async def test_drop_oldest_keeps_the_byte_bound() -> None:
    manager = WebSocketManager(
        broker_url="memory://", max_queue_bytes=4096, slow_consumer="drop_oldest"
    )
    async with running(manager) as client, clients(client, "fast") as (fast,):
        blocked = BlockedWebSocket()
        slow = await manager.new_connection(blocked, "slow")  # type: ignore[arg-type]
        await manager.subscribe(slow, "t/1")
        await subscribe_ack(fast, "t/1")
        for i in range(10):
            await manager.publish("t/1", {"i": i, "p": "é" * 500})  # 1 KB of UTF-8 each
            assert (await fast.receive_json())["i"] == i
            assert slow.queued_bytes <= 4096
        assert slow.state is ConnectionState.OPEN
        # 1,020 bytes each: 1 in the writer's send + 3 queued fit in 4,096; 6 dropped
        assert slow.dropped == 6
        blocked.unblock()
        await blocked.wait_sent(lambda sent: len(sent) >= 4)
        assert [t["i"] for t in blocked.texts()] == [0, 7, 8, 9]  # the newest survive, in order
        assert slow.queued_bytes == 0


# -- lifecycle ---------------------------------------------------------------------------------


async def test_shutdown_drains_then_closes_with_1001() -> None:
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "a", "b") as (a, b):
        await subscribe_ack(a, "t/1")
        for i in range(5):
            manager.send(Message(typ="send", topic="t/1", data={"i": i}))
        await manager.shutdown()
        assert [await a.receive_json() for _ in range(5)] == [{"i": i} for i in range(5)]
        assert await a.expect_closed(WAIT) == CloseCode.GOING_AWAY
        assert await b.expect_closed(WAIT) == CloseCode.GOING_AWAY
        assert manager.connections == {}
        assert manager.broker.is_closed()
        # New connections are refused while shutting down.
        with pytest.raises(WebSocketDenied):
            await client.websocket_connect("/ws/late")
        await manager.shutdown()  # twice is fine (the lifespan calls it again)


async def test_shutdown_without_startup() -> None:
    manager = WebSocketManager(broker_url="memory://")
    await manager.shutdown()
    manager = WebSocketManager(broker_url="memory://")
    blocked = BlockedWebSocket()
    blocked.unblock()
    conn = await manager.new_connection(blocked, "x")  # type: ignore[arg-type]
    async with asyncio.timeout(WAIT):
        await manager.shutdown()
    assert conn.state is ConnectionState.CLOSED
    assert conn.close_code == CloseCode.GOING_AWAY
    assert blocked.sent[-1] == {"type": "websocket.close", "code": 1001}
    assert manager.connections == {}


async def test_shutdown_is_bounded_with_a_stuck_connection() -> None:
    manager = WebSocketManager(broker_url="memory://", drain_timeout=0.2)
    await manager.startup()
    blocked = BlockedWebSocket()
    conn = await manager.new_connection(blocked, "stuck")  # type: ignore[arg-type]
    conn.send_text_nowait('"queued"')
    async with asyncio.timeout(WAIT):
        await manager.shutdown()
    assert conn.close_code == CloseCode.GOING_AWAY
    assert manager.connections == {} and manager.broker.is_closed()
    blocked.unblock()


async def test_async_with() -> None:
    async with WebSocketManager(broker_url="memory://") as manager:
        assert manager.started
        assert manager.broker.state.value == "connected"
        assert manager.health()["broker"] == "connected"
        await manager.startup()  # idempotent
    assert not manager.started
    assert manager.broker.is_closed()
    assert manager.health()["broker"] == "closed"


async def test_disconnect_cleans_every_table_and_broker_subscription() -> None:
    broker = InMemoryBroker()
    manager = WebSocketManager("ns", broker=broker)
    async with running(manager) as client:
        a = await client.websocket_connect("/ws/a/user/u")
        await subscribe_ack(a, "x/+")
        await subscribe_ack(a, "y")
        own = f"ns/i/{manager.instance_id}"  # server-assigned ids: subscribed at startup
        assert broker._channels == {"ns/b", own, "ns/c/a", "ns/u/u", "ns/t/x/+", "ns/t/y"}
        await a.close()
        await wait_background(manager)
        assert manager.connections == {} and manager.users == {} and len(manager.index) == 0
        assert broker._channels == {"ns/b", own}


async def test_server_assigned_ids_are_routed_by_their_instance_channel() -> None:
    hub = f"memory://ids-{uuid.uuid4().hex}"
    a, b = WebSocketManager("ns", broker_url=hub), WebSocketManager("ns", broker_url=hub)
    async with running(a) as on_a, running(b) as on_b:
        x = await on_a.websocket_connect("/ws/not%20valid")  # refused: the server assigns one
        assigned = (await x.receive_json())["conn_id"]
        assert assigned.startswith(a.instance_id + ".") and len(assigned) == 31
        # no broker channel of its own: a connect costs no subscribe round trip
        assert not any(assigned in c for c in a.broker._channels)  # type: ignore[attr-defined]
        await b.publish_to_connection(assigned, {"to": "x"})  # from the other instance
        assert await x.receive_json() == {"to": "x"}
        # another instance's id format cannot be taken over (it would be routed there)...
        y = await on_b.websocket_connect(f"/ws/{assigned}")
        other = (await y.receive_json())["conn_id"]
        assert other != assigned and other.startswith(b.instance_id + ".")
        # ... while the instance that assigned an id gives it back once it is free
        await x.close()
        await wait_background(a)
        again = await on_a.websocket_connect(f"/ws/{assigned}")
        await subscribe_ack(again, "t")  # no set_conn_id frame first: the id was kept
        assert assigned in a.connections
        await b.publish_to_connection(assigned, {"to": "again"})
        assert await again.receive_json() == {"to": "again"}
        with pytest.raises(ValueError, match="another instance"):
            a.set_conn_id(a.connections[assigned], other)
        await again.close()
        await y.close()


class GatedBroker(InMemoryBroker):
    """Unsubscribing a connection channel waits for ``gate``: the manager's background
    unsubscriptions run late, as when the broker is slow."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def unsubscribe(self, channel: str) -> None:
        if "/c/" in channel:
            await self.gate.wait()
        await super().unsubscribe(channel)


async def test_late_unsubscribe_does_not_cut_off_a_returning_user_or_id() -> None:
    """A user's last connection leaves and another one arrives before the background
    unsubscriptions ran: the user's broker channel must stay. Same for a connection id that
    is reused while the old connection's unsubscription is still pending."""
    broker = GatedBroker()
    manager = WebSocketManager("ns", broker=broker)
    async with running(manager) as client:
        first = await client.websocket_connect("/ws/one/user/u")
        await first.close()  # its unsubscriptions start, and wait at the gate ('ns/c/one')
        assert manager.users == {}
        again = await client.websocket_connect("/ws/two/user/u")
        broker.gate.set()
        await wait_background(manager)
        assert {"ns/u/u", "ns/c/two"} <= broker._channels
        await manager.publish_to_user("u", {"to": "user"})
        assert await again.receive_json() == {"to": "user"}

        # A late unsubscription of an id that is live again is skipped.
        same_id = await client.websocket_connect("/ws/one")
        await manager.bridge.unsubscribe_many(["ns/c/one", "ns/u/u"])
        assert {"ns/c/one", "ns/u/u"} <= broker._channels
        await manager.publish_to_connection("one", {"to": "one"})
        assert await same_id.receive_json() == {"to": "one"}
        await again.close()
        await same_id.close()
        await wait_background(manager)
        assert broker._channels == {"ns/b", f"ns/i/{manager.instance_id}"}


# -- the seed's helpers ------------------------------------------------------------------------


def test_message_from_client_message_and_serialize() -> None:
    frame = {"type": "send", "topic": "t/1", "conn_id": "c", "x": 1, "y": [1, 2]}
    msg = Message.from_client_message(data=frame)
    assert (msg.type, msg.typ, msg.topic, msg.conn_id) == ("send", "send", "t/1", "c")
    assert msg.data == {"x": 1, "y": [1, 2]}
    assert frame == {"type": "send", "topic": "t/1", "conn_id": "c", "x": 1, "y": [1, 2]}
    assert msg.__serialize__() == frame
    assert Message.from_client_message(data=msg.__serialize__()).data == msg.data

    bare = Message.from_client_message(data={"type": "broadcast"})
    assert (bare.topic, bare.conn_id, bare.data) == (None, None, {})
    assert Message(data=5, typ="broadcast").__serialize__() == {
        "data": 5,
        "type": "broadcast",
        "topic": None,
        "conn_id": None,
    }
    assert Message(data={}, type="send", topic="x").typ == "send"


def test_matches() -> None:
    assert matches("chat/1", {"chat/+"})
    assert matches("chat/1/2", ["chat/#"])
    assert matches("chat", ["chat/#"])
    assert not matches("chat/1/2", {"chat/+"})
    assert not matches("news/1", {"chat/+", "chat/#"})
    assert not matches("chat/1", {"a/#/b", "+x", "chat/1#"})  # invalid patterns match nothing
    assert not matches(5, {"#"})  # type: ignore[arg-type]
    assert matches("anything/at/all", {"#"})


def test_handle_decorator() -> None:
    seen: list[BaseException] = []

    def on_error(exc: ValueError) -> str:
        seen.append(exc)
        return "handled"

    @handle(ValueError, on_error)
    def risky(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x * 2

    assert risky(2) == 4
    assert risky(-1) == "handled"
    assert [str(e) for e in seen] == ["negative"]

    @handle(ValueError, on_error)
    def other() -> None:
        raise KeyError("not handled")

    with pytest.raises(KeyError):
        other()


async def test_ahandle_decorator() -> None:
    seen: list[BaseException] = []

    async def on_error(exc: InvalidSubscription) -> str:
        seen.append(exc)
        return "handled"

    @ahandle(InvalidSubscription, on_error)
    async def async_risky(fail: bool) -> str:
        if fail:
            raise InvalidSubscription("bad", connection=None)
        return "ok"

    @ahandle(InvalidSubscription, on_error)
    def sync_risky() -> str:
        raise InvalidSubscription("bad sync")

    assert await async_risky(False) == "ok"
    assert await async_risky(True) == "handled"
    assert await sync_risky() == "handled"
    assert len(seen) == 2

    @ahandle(InvalidSubscription, on_error)
    async def other() -> None:
        raise RuntimeError("not handled")

    with pytest.raises(RuntimeError):
        await other()


async def test_seed_subscribe_helpers_route_through_the_manager() -> None:
    manager = WebSocketManager(broker_url="memory://")
    async with running(manager) as client, clients(client, "a", "b") as (a, b):
        conn = manager.connections["a"]
        subscribe(conn, Message(typ="subscribe", topic="s/+", data=None))
        assert conn.topics == {"s/+"}
        await wait_background(manager)
        await b.send_json({"type": "send", "topic": "s/1", "v": 1})
        assert (await marker_to_all(b, [a, b])) == {0: [{"v": 1}], 1: []}
        with pytest.raises(InvalidSubscription) as bad:
            subscribe(conn, Message(typ="subscribe", topic="s/#/x", data=None))
        assert bad.value.connection is conn
        with pytest.raises(InvalidSubscriptionMessage):
            subscribe(conn, Message(typ="send", topic="s/1", data=None))
        unsubscribe(conn, Message(typ="unsubscribe", topic="s/+", data=None))
        assert conn.topics == set()
        await wait_background(manager)
        await b.send_json({"type": "send", "topic": "s/1", "v": 2})
        assert (await marker_to_all(b, [a, b])) == {0: [], 1: []}


def test_broker_channel_must_not_hold_wildcards() -> None:
    with pytest.raises(ValueError):
        WebSocketManager("a/+/b")
    with pytest.raises(ValueError):
        WebSocketManager("#")


async def test_garbage_on_the_broker_is_skipped() -> None:
    broker = InMemoryBroker()
    manager = WebSocketManager("ns", broker=broker)
    async with running(manager) as client, clients(client, "a") as (a,):
        await subscribe_ack(a, "t/1")
        await broker.publish("ns/t/t/1", b"no header at all")
        await broker.publish("ns/t/t/1", b"aws1:x:1\n\xff\xfe not utf-8")
        await broker.publish("ns/b", b"")
        await manager.publish("t/1", {"ok": 1})
        assert await a.receive_json() == {"ok": 1}
        assert manager.stats["broker_malformed"] == 3
        assert manager._listener is not None and not manager._listener.done()
