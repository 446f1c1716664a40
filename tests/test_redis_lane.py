"""`RedisBroker`'s publishes on a connection of their own (`asyncws.brokers.redis_lane`).

Against real Redis servers: batches arrive whole and in order on the lane's one connection,
an error Redis answers fails only its own publish, a restart is survived without a lost
publish, a frozen Redis fails a publish within the command timeout and the lane recovers, and
without hiredis's parser publishes go through redis-py as before.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from asyncws import BrokerError, BrokerMessage, create_broker
from asyncws.brokers import redis_watchdog
from asyncws.brokers.redis import RedisBroker
from tests.servers import RedisServer

pytestmark = pytest.mark.redis

WAIT = 10.0


@pytest.fixture
def ns() -> str:
    return f"ln{uuid.uuid4().hex[:8]}"


async def connected(url: str, **options: float) -> RedisBroker:
    broker = create_broker(url, **options)
    assert isinstance(broker, RedisBroker)
    await broker.connect()
    return broker


@pytest.fixture
async def broker(redis_url: str) -> AsyncIterator[RedisBroker]:
    broker = await connected(redis_url)
    try:
        yield broker
    finally:
        await broker.disconnect()


async def received(url: str, channel: str, count: int) -> asyncio.Task[list[bytes]]:
    """Start reading ``count`` messages of ``channel`` with a plain redis-py subscriber."""
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)

    async def read() -> list[bytes]:
        out: list[bytes] = []
        try:
            async with asyncio.timeout(WAIT):
                while len(out) < count:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if message is not None:
                        out.append(message["data"])
            return out
        finally:
            await pubsub.aclose()
            await client.aclose()

    return asyncio.get_running_loop().create_task(read())


async def test_concurrent_publishes_share_the_lane_and_keep_their_order(
    broker: RedisBroker, redis_url: str, ns: str
) -> None:
    channel = f"{ns}/c"
    reader = await received(redis_url, channel, 2000)
    batches_before = broker._batcher.batches
    await asyncio.gather(*(broker.publish(channel, b"%d" % i) for i in range(2000)))
    assert await reader == [b"%d" % i for i in range(2000)]
    assert broker._batcher.batches - batches_before <= 4  # a few writes, not 2000
    lane_conn = broker._batcher.lane._conn
    assert lane_conn is not None and lane_conn.is_connected
    await broker.publish(channel, b"again")
    assert broker._batcher.lane._conn is lane_conn  # held, not taken per batch


async def test_an_error_reply_fails_only_its_own_publish(fresh_redis: RedisServer, ns: str) -> None:
    """A user allowed to publish on ``{ns}/ok/*`` only: Redis answers NOPERM for the others;
    the publishes around them in the same batch go through."""
    fresh_redis.command("ACL", "SETUSER", "lane", "on", ">pw", "+@all", "~*", "resetchannels")
    fresh_redis.command("ACL", "SETUSER", "lane", f"&{ns}/ok/*")
    url = fresh_redis.url.replace("redis://", "redis://lane:pw@")
    broker = await connected(url)
    try:
        reader = await received(fresh_redis.url, f"{ns}/ok/1", 2)
        results = await asyncio.gather(
            broker.publish(f"{ns}/ok/1", b"a"),
            broker.publish(f"{ns}/denied", b"b"),
            broker.publish(f"{ns}/ok/1", b"c"),
            return_exceptions=True,
        )
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], BrokerError)
        assert await reader == [b"a", b"c"]
        assert broker._batcher.lane._conn is not None  # an answer, not a broken connection
    finally:
        await broker.disconnect()


async def test_a_restart_loses_no_publish(fresh_redis: RedisServer, ns: str) -> None:
    broker = await connected(fresh_redis.url)
    try:
        await broker.publish(f"{ns}/r", b"before")  # the lane holds a connection now
        await asyncio.to_thread(fresh_redis.restart)
        reader = await received(fresh_redis.url, f"{ns}/r", 1)
        await broker.publish(f"{ns}/r", b"after")  # its old connection is dead: a new one
        assert await reader == [b"after"]
    finally:
        await broker.disconnect()


async def test_a_frozen_redis_fails_within_the_timeout_then_the_lane_recovers(
    fresh_redis: RedisServer, ns: str
) -> None:
    broker = await connected(fresh_redis.url, command_timeout=0.5)
    try:
        await broker.publish(f"{ns}/f", b"warm")
        fresh_redis.pause()
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(BrokerError):
                await broker.publish(f"{ns}/f", b"lost")
            assert loop.time() - started < 3.0
            assert broker._batcher.lane._conn is None  # its replies are unknown: dropped
        finally:
            fresh_redis.resume()
        reader = await received(fresh_redis.url, f"{ns}/f", 1)
        await broker.publish(f"{ns}/f", b"back")
        got = await reader
        assert got[-1:] == [b"back"]
    finally:
        await broker.disconnect()


async def test_without_hiredis_parser_publishes_go_through_redis_py(
    redis_url: str, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_watchdog, "HIREDIS_PARSER", None)
    broker = await connected(redis_url)
    try:
        assert not broker._batcher.lane.usable
        reader = await received(redis_url, f"{ns}/p", 50)
        await asyncio.gather(*(broker.publish(f"{ns}/p", b"%d" % i) for i in range(50)))
        assert await reader == [b"%d" % i for i in range(50)]
        assert broker._batcher.lane._conn is None
    finally:
        await broker.disconnect()


async def test_listener_and_lane_together(broker: RedisBroker, ns: str) -> None:
    """A broker receives its own publishes: the lane's writes and the listener's reads."""
    await broker.subscribe(f"{ns}/self")
    got: list[BrokerMessage] = []

    async def listen() -> None:
        async for message in broker.listen():
            got.append(message)
            if len(got) == 500:
                return

    task = asyncio.get_running_loop().create_task(listen())
    await asyncio.gather(*(broker.publish(f"{ns}/self", b"%d" % i) for i in range(500)))
    async with asyncio.timeout(WAIT):
        await task
    assert got == [BrokerMessage(f"{ns}/self", b"%d" % i) for i in range(500)]
