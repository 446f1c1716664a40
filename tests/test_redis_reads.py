"""The listener's reads of the pub/sub connection (`asyncws.brokers.redis_watchdog`).

`next_reply` takes a published message from hiredis' reader itself and `buffered_reply` takes
the rest of a burst without awaiting; everything else still goes through redis-py. These
tests run a real Redis and check what a user sees — every message, in order, bytes intact,
subscriptions confirmed mid-burst, a killed connection reconnected — on each path the read
can take: hiredis on RESP3 (redis-py 8's default), hiredis on RESP2, and redis-py's own
read (``Connection.read_response``, the path without hiredis's parser).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from asyncws import BrokerMessage, BrokerState, create_broker
from asyncws.brokers import redis_watchdog
from asyncws.brokers.redis import RedisBroker
from tests.test_brokers import poll_until

pytestmark = pytest.mark.redis

WAIT = 10.0
BURST = 3000  # more than one socket read's worth (redis-py reads 64 KiB at a time)


@pytest.fixture(params=["resp3", "resp2", "no-hiredis-parser"])
def read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "no-hiredis-parser":
        monkeypatch.setattr(redis_watchdog, "_HIREDIS", None)
    yield str(request.param)


@pytest.fixture
def url(redis_url: str, read_path: str) -> str:
    if read_path == "resp2":
        return f"{redis_url}{'&' if '?' in redis_url else '?'}protocol=2"
    return redis_url


@pytest.fixture
def ns() -> str:
    return f"rd{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def broker(url: str) -> AsyncIterator[RedisBroker]:
    broker = create_broker(url)
    assert isinstance(broker, RedisBroker)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.disconnect()


@contextlib.asynccontextmanager
async def collected(broker: RedisBroker) -> AsyncIterator[asyncio.Queue[BrokerMessage]]:
    queue: asyncio.Queue[BrokerMessage] = asyncio.Queue()

    async def run() -> None:
        async for message in broker.listen():
            queue.put_nowait(message)

    task = asyncio.get_running_loop().create_task(run())
    try:
        yield queue
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def take(queue: asyncio.Queue[BrokerMessage], count: int) -> list[BrokerMessage]:
    async with asyncio.timeout(WAIT):
        return [await queue.get() for _ in range(count)]


async def publish_burst(url: str, items: list[tuple[str, bytes]]) -> None:
    """Publish every item in one pipelined write: Redis sends the messages back to back."""
    client = aioredis.Redis.from_url(url)
    try:
        async with client.pipeline(transaction=False) as pipe:
            for channel, data in items:
                pipe.publish(channel, data)
            await pipe.execute()
    finally:
        await client.aclose()


def count_buffered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the replies the listener took without a read (a spy on `buffered_reply`)."""
    taken = [0]
    real = redis_watchdog.buffered_reply

    def spy(pubsub: Any) -> Any:
        reply = real(pubsub)
        if reply is not None:
            taken[0] += 1
        return reply

    monkeypatch.setattr(redis_watchdog, "buffered_reply", spy)
    return taken


async def test_a_burst_arrives_whole_and_in_order(
    broker: RedisBroker, url: str, ns: str, read_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = count_buffered(monkeypatch)
    await broker.subscribe(f"{ns}/a")
    conn: Any = broker._pubsub.connection if broker._pubsub is not None else None
    assert conn is not None and conn.protocol == (2 if read_path == "resp2" else 3)
    await broker.subscribe(f"{ns}/p/+")
    items = [
        (f"{ns}/a" if i % 2 else f"{ns}/p/{i % 7}", b"%d:" % i + bytes(range(256)) * (i % 3))
        for i in range(BURST)
    ]
    async with collected(broker) as queue:
        await publish_burst(url, items)
        got = await take(queue, BURST)
    assert got == [BrokerMessage(channel, data) for channel, data in items]
    if read_path == "no-hiredis-parser":
        assert taken[0] == 0  # redis-py's own read takes every reply
    else:
        assert taken[0] > BURST // 2  # most of a burst needs no read of its own


async def test_subscriptions_confirmed_in_the_middle_of_a_burst(
    broker: RedisBroker, url: str, ns: str
) -> None:
    """SUBSCRIBE confirmations that arrive between published messages go through redis-py
    (its bookkeeping) and wake the subscriber, while the messages around them keep flowing."""
    await broker.subscribe(f"{ns}/flow")
    async with collected(broker) as queue:
        burst = asyncio.create_task(publish_burst(url, [(f"{ns}/flow", b"x")] * BURST))
        late = [f"{ns}/late/{i}" for i in range(20)]
        for channel in late:
            await broker.subscribe(channel)  # returns once Redis confirmed it
        await burst
        for i, channel in enumerate(late):
            await broker.publish(channel, b"%d" % i)
        got = await take(queue, BURST + len(late))
    assert [m for m in got if m.channel == f"{ns}/flow"] == [
        BrokerMessage(f"{ns}/flow", b"x")
    ] * BURST
    assert [m for m in got if m.channel != f"{ns}/flow"] == [
        BrokerMessage(channel, b"%d" % i) for i, channel in enumerate(late)
    ]
    pubsub: Any = broker._pubsub
    assert pubsub is not None and set(late) <= {
        c.decode() if isinstance(c, bytes) else c for c in pubsub.channels
    }


async def test_a_killed_pubsub_connection_mid_burst_reconnects(
    broker: RedisBroker, url: str, ns: str
) -> None:
    """Redis drops the pub/sub connection while a burst is being read: the listener notices
    (on a read or on what was buffered), reconnects, resubscribes, and later messages arrive."""
    await broker.subscribe(f"{ns}/k")
    admin = aioredis.Redis.from_url(url)
    try:
        async with collected(broker) as queue:
            await publish_burst(url, [(f"{ns}/k", b"before")] * BURST)
            await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            await poll_until(
                lambda: broker.reconnects > 0 and broker.state is BrokerState.CONNECTED, WAIT
            )
            await broker.publish(f"{ns}/k", b"after")
            async with asyncio.timeout(WAIT):
                while (await queue.get()).data != b"after":
                    pass
    finally:
        await admin.aclose()


def test_is_published_tells_messages_from_other_replies() -> None:
    assert redis_watchdog.is_published([b"message", b"c", b"d"])
    assert redis_watchdog.is_published([b"pmessage", b"c*", b"c", b"d"])
    assert not redis_watchdog.is_published([b"subscribe", b"c", 1])
    assert not redis_watchdog.is_published([b"message"])
    assert not redis_watchdog.is_published({"type": "message"})
    assert not redis_watchdog.is_published(b"PONG")
