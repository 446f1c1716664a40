"""End to end: two uvicorn instances of the chat example on one Redis, real websocket clients.

Each instance is a separate process (``examples.chat.app:app`` with ``ASYNCWS_BROKER_URL``
pointing at a private Redis started by the tests). Every wait is bounded; nothing sleeps to
synchronize: a subscription's ``ack`` means Redis confirmed it, and "exactly once" is checked
by sending a marker message after the one under test (per-publisher order means a duplicate
would arrive before the marker).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.servers import RedisServer, UvicornServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]

WAIT = 10.0  # seconds: the bound on every single wait


class Client:
    """A minimal asyncws protocol client over a real websocket."""

    def __init__(self, ws: ClientConnection, name: str) -> None:
        self.ws = ws
        self.name = name
        self._ids = itertools.count(1)
        self._held: list[dict[str, Any]] = []

    async def _next(self) -> dict[str, Any]:
        async with asyncio.timeout(WAIT):
            frame: dict[str, Any] = json.loads(await self.ws.recv())
            return frame

    async def receive(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        for i, frame in enumerate(self._held):
            if predicate(frame):
                return self._held.pop(i)
        while True:
            frame = await self._next()
            if predicate(frame):
                return frame
            self._held.append(frame)

    async def call(self, type: str, data: Any = None, **fields: Any) -> dict[str, Any]:
        id = next(self._ids)
        frame = {"type": type, "id": id, **fields}
        if data is not None:
            frame["data"] = data
        await self.ws.send(json.dumps(frame))
        return await self.receive(lambda f: f.get("id") == id)

    async def subscribe(self, topic: str) -> dict[str, Any]:
        return await self.call("subscribe", topic=topic)

    async def event(self) -> dict[str, Any]:
        return await self.receive(lambda f: "topic" in f)


@pytest.fixture(scope="module")
def instances(redis_server: RedisServer) -> Iterator[tuple[UvicornServer, UvicornServer]]:
    env = {"ASYNCWS_BROKER_URL": redis_server.url}
    with (
        UvicornServer("examples.chat.app:app", env=env, ready_path="/") as a,
        UvicornServer("examples.chat.app:app", env=env, ready_path="/") as b,
    ):
        yield a, b


@pytest.fixture
def open_client() -> Callable[..., Any]:
    @asynccontextmanager
    async def opener(server: UvicornServer, user: str) -> AsyncIterator[Client]:
        async with asyncio.timeout(WAIT):
            ws = await connect(server.ws_url(f"/ws?user={user}"), open_timeout=WAIT)
        try:
            yield Client(ws, f"{user}@{server.port}")
        finally:
            async with asyncio.timeout(WAIT):
                await ws.close()

    return opener


async def test_a_post_on_one_instance_reaches_room_subscribers_on_both_exactly_once(
    instances: tuple[UvicornServer, UvicornServer], open_client: Callable[..., Any]
) -> None:
    a, b = instances
    async with (
        open_client(a, "ann") as ann,
        open_client(a, "amy") as amy,
        open_client(b, "bob") as bob,
        open_client(b, "ben") as ben,
    ):
        for who in (amy, bob):
            assert (await who.subscribe("rooms/lobby"))["type"] == "ack"
        # overlapping subscriptions on one connection still deliver once
        assert (await ben.subscribe("rooms/lobby"))["type"] == "ack"
        assert (await ben.subscribe("rooms/+"))["type"] == "ack"
        receipt = await ann.call("post", {"room": "lobby", "text": "hello from A"})
        assert receipt["type"] == "reply" and receipt["data"]["room"] == "lobby"
        await ann.call("post", {"room": "lobby", "text": "marker"})
        for who in (amy, bob, ben):
            first = await who.event()
            assert first["type"] == "posted" and first["topic"] == "rooms/lobby", who.name
            assert first["data"]["user"] == "ann"
            assert first["data"]["text"] == "hello from A", who.name
            second = await who.event()
            assert second["data"]["text"] == "marker", f"{who.name} got a duplicate"
        # the poster was not subscribed: it got its receipts and nothing else
        assert ann._held == []


async def test_a_direct_message_reaches_the_recipients_connections_on_the_other_instance(
    instances: tuple[UvicornServer, UvicornServer], open_client: Callable[..., Any]
) -> None:
    a, b = instances
    async with (
        open_client(a, "cat") as cat,
        open_client(b, "dan") as dan_laptop,
        open_client(b, "dan") as dan_phone,
        open_client(a, "dan") as dan_on_a,
        open_client(b, "eve") as eve,
    ):
        for device in (dan_laptop, dan_phone, dan_on_a):
            assert (await device.subscribe("users/dan/inbox"))["type"] == "ack"
        assert (await eve.subscribe("users/eve/inbox"))["type"] == "ack"
        assert await cat.call("direct", {"to": "dan", "text": "psst"}) == {"type": "ack", "id": 1}
        await cat.call("direct", {"to": "dan", "text": "marker"})
        await cat.call("direct", {"to": "eve", "text": "for eve"})
        for device in (dan_laptop, dan_phone, dan_on_a):
            dm = await device.event()
            assert dm["type"] == "DirectMessage" and dm["topic"] == "users/dan/inbox"
            assert dm["data"]["from"] == "cat" and dm["data"]["text"] == "psst"
            assert (await device.event())["data"]["text"] == "marker"
        # eve's inbox got eve's message only
        assert (await eve.event())["data"]["text"] == "for eve"


async def test_the_inbox_of_another_user_is_forbidden_on_every_instance(
    instances: tuple[UvicornServer, UvicornServer], open_client: Callable[..., Any]
) -> None:
    a, b = instances
    async with open_client(a, "fay") as fay_a, open_client(b, "fay") as fay_b:
        for client in (fay_a, fay_b):
            for topic in ("users/gus/inbox", "users/+/inbox"):
                answer = await client.subscribe(topic)
                assert answer["type"] == "error" and answer["code"] == "forbidden", topic
            assert (await client.subscribe("users/fay/inbox"))["type"] == "ack"


async def test_a_handshake_without_a_user_is_refused_with_403(
    instances: tuple[UvicornServer, UvicornServer],
) -> None:
    a, _ = instances
    with pytest.raises(InvalidStatus) as refused:
        async with asyncio.timeout(WAIT):
            await connect(a.ws_url("/ws"), open_timeout=WAIT)
    assert refused.value.response.status_code == 403
