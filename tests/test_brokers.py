"""The broker contract, run against every backend: ``memory://`` and a real Redis.

Each test gets a subscriber and a publisher broker built from the same URL (for ``memory://``
a named hub, so the two share it; for Redis the session's private server). The Redis-only
tests at the end use servers of their own to restart or stop them.

Pattern subscriptions: a broker MAY over-approximate (Redis maps MQTT patterns to globs, so
``ns/t/rooms/+`` also receives ``ns/t/rooms/1/x``). The contract is only that every channel
the pattern matches arrives; exact filtering is the manager's job (see test_manager.py), so
these tests assert "at least the matching ones, and never an unrelated channel".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from asyncws import BrokerError, BrokerInterface, BrokerMessage, BrokerState, create_broker
from asyncws.topics import topic_matches
from tests.servers import RedisServer

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("cluster", id="cluster", marks=pytest.mark.cluster),
]

WAIT = 5.0  # every wait for a message is bounded by this


@pytest.fixture(params=BACKENDS)
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return f"memory://contract-{uuid.uuid4().hex}"
    if request.param == "cluster":
        cluster: str = request.getfixturevalue("cluster_url")
        return cluster
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
def ns() -> str:
    """A channel prefix of the test's own."""
    return f"ns{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def pair(broker_url: str) -> AsyncIterator[tuple[BrokerInterface, BrokerInterface]]:
    """(subscriber, publisher), both connected; disconnected at the end."""
    sub = create_broker(broker_url)
    pub = create_broker(broker_url)
    await sub.connect()
    await pub.connect()
    try:
        yield sub, pub
    finally:
        await sub.disconnect()
        await pub.disconnect()


class Listener:
    """Runs ``broker.listen()`` in a task and queues what it yields."""

    def __init__(self, broker: BrokerInterface) -> None:
        self.broker = broker
        self.queue: asyncio.Queue[BrokerMessage] = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for message in self.broker.listen():
            await self.queue.put(message)

    async def next(self, timeout: float = WAIT) -> BrokerMessage:
        async with asyncio.timeout(timeout):
            return await self.queue.get()

    async def until(self, channel: str, timeout: float = WAIT) -> list[BrokerMessage]:
        """Every message up to and including the first one on ``channel``."""
        out: list[BrokerMessage] = []
        async with asyncio.timeout(timeout):
            while True:
                message = await self.queue.get()
                out.append(message)
                if message.channel == channel:
                    return out

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@contextlib.asynccontextmanager
async def listening(broker: BrokerInterface) -> AsyncIterator[Listener]:
    listener = Listener(broker)
    try:
        yield listener
    finally:
        await listener.stop()


def markers(broker: BrokerInterface, ns: str) -> list[str]:
    """Channels to publish a marker on after the messages under test: once every one arrived,
    everything published before has. One channel suffices for one Redis (one connection keeps
    one publisher's order); a Redis Cluster keeps order per primary only, so one marker per
    primary (channels on different primaries come over different connections)."""
    topology = getattr(broker, "topology", None)
    if not callable(topology):
        return [f"{ns}/marker"]
    owners: dict[Any, str] = {}
    for i in range(10000):
        name = f"{ns}/marker/{i}"
        owners.setdefault(broker._owners[broker.partition_of(name)], name)  # type: ignore[attr-defined]
        if len(owners) == len(topology()["nodes"]):
            break
    return list(owners.values())


async def after_markers(
    listener: Listener, pub: BrokerInterface, marks: list[str]
) -> list[BrokerMessage]:
    """Publish the markers; what arrived before the last of them (the markers left out)."""
    for mark in marks:
        await pub.publish(mark, b"end")
    out: list[BrokerMessage] = []
    waiting = set(marks)
    async with asyncio.timeout(WAIT):
        while waiting:
            message = await listener.queue.get()
            if message.channel in waiting:
                waiting.discard(message.channel)
            else:
                out.append(message)
    return out


# -- the contract, on every backend -----------------------------------------------------------


async def test_connect_and_disconnect(broker_url: str) -> None:
    broker = create_broker(broker_url)
    assert broker.state is BrokerState.DISCONNECTED
    assert not broker.is_closed()
    await broker.connect()
    assert broker.state is BrokerState.CONNECTED
    await broker.disconnect()
    assert broker.state is BrokerState.CLOSED
    assert broker.is_closed()
    await broker.disconnect()  # twice is fine
    assert broker.is_closed()

    async with create_broker(broker_url) as ctx:
        assert ctx.state is BrokerState.CONNECTED
    assert ctx.is_closed()


async def test_connect_again_after_disconnect(broker_url: str, ns: str) -> None:
    broker = create_broker(broker_url)
    await broker.connect()
    await broker.subscribe(f"{ns}/old")
    await broker.disconnect()
    await broker.connect()
    try:
        assert broker.state is BrokerState.CONNECTED
        await broker.subscribe(f"{ns}/new")
        async with listening(broker) as listener:
            await broker.publish(f"{ns}/new", b"fresh")
            assert await listener.next() == BrokerMessage(f"{ns}/new", b"fresh")
    finally:
        await broker.disconnect()


async def test_publish_reaches_listener_with_bytes_intact(
    pair: tuple[BrokerInterface, BrokerInterface], ns: str
) -> None:
    sub, pub = pair
    channel = f"{ns}/t/room"
    await sub.subscribe(channel)
    binary = bytes(range(256)) * 4  # every byte value, not valid UTF-8
    async with listening(sub) as listener:
        await pub.publish(channel, binary)
        await pub.publish(channel, "héllo ✓")  # str is sent UTF-8 encoded
        await pub.publish(channel, b"")
        first = await listener.next()
        assert isinstance(first, BrokerMessage)
        assert first == BrokerMessage(channel, binary)
        assert isinstance(first.channel, str)
        assert isinstance(first.data, bytes)
        assert await listener.next() == BrokerMessage(channel, "héllo ✓".encode())
        assert await listener.next() == BrokerMessage(channel, b"")


async def test_publish_with_no_subscriber_is_not_an_error(
    pair: tuple[BrokerInterface, BrokerInterface], ns: str
) -> None:
    _, pub = pair
    await pub.publish(f"{ns}/nobody", b"x")


async def test_a_broker_receives_its_own_publish(broker_url: str, ns: str) -> None:
    async with create_broker(broker_url) as broker:
        await broker.subscribe(f"{ns}/self")
        async with listening(broker) as listener:
            await broker.publish(f"{ns}/self", b"me")
            assert await listener.next() == BrokerMessage(f"{ns}/self", b"me")


async def test_unsubscribe_stops_delivery(
    pair: tuple[BrokerInterface, BrokerInterface], ns: str
) -> None:
    sub, pub = pair
    gone, kept = f"{ns}/gone", f"{ns}/kept"
    await sub.subscribe(gone)
    await sub.subscribe(kept)
    async with listening(sub) as listener:
        await pub.publish(gone, b"1")
        assert await listener.next() == BrokerMessage(gone, b"1")
        await sub.unsubscribe(gone)
        await sub.unsubscribe(gone)  # twice is fine
        await sub.unsubscribe(f"{ns}/never-subscribed")
        await pub.publish(gone, b"2")
        await pub.publish(kept, b"marker")
        # One publisher, one subscriber: order is kept, so the marker comes next.
        assert await listener.next() == BrokerMessage(kept, b"marker")


async def test_pattern_subscriptions(
    pair: tuple[BrokerInterface, BrokerInterface], ns: str, broker_url: str
) -> None:
    sub, pub = pair
    plus, hash_ = f"{ns}/t/rooms/+", f"{ns}/t/a/#"
    marks = markers(sub, ns)
    await sub.subscribe(plus)
    await sub.subscribe(hash_)
    for mark in marks:
        await sub.subscribe(mark)
    matching = [
        f"{ns}/t/rooms/1",
        f"{ns}/t/rooms/",  # '+' matches an empty level
        f"{ns}/t/a",  # '#' matches zero levels
        f"{ns}/t/a/b",
        f"{ns}/t/a/b/c/d",
    ]
    over = [f"{ns}/t/rooms/1/x", f"{ns}/t/ab"]  # Redis' globs let these through
    unrelated = [f"{ns}/t/rooms", f"{ns}/t/other", f"{ns}/u/a/b", f"x{ns}/t/a/b"]
    async with listening(sub) as listener:
        for channel in [*matching, *over, *unrelated]:
            await pub.publish(channel, channel.encode())
        got = await after_markers(listener, pub, marks)
    channels = [m.channel for m in got]
    for message in got:
        assert message.data == message.channel.encode()
    # Every matching channel arrived, exactly once (one subscription matches each).
    assert sorted(c for c in channels if c in matching) == sorted(matching)
    assert not set(channels) & set(unrelated)
    assert set(channels) <= set(matching) | set(over)
    if broker_url.startswith("memory://"):
        # The in-memory broker matches exactly.
        assert not set(channels) & set(over)
    for channel in channels:
        assert channel in over or topic_matches(channel, plus) or topic_matches(channel, hash_)


async def test_overlapping_patterns_and_exact_channel(
    pair: tuple[BrokerInterface, BrokerInterface], ns: str
) -> None:
    """Every matching subscription may deliver a copy (the manager drops the duplicates),
    but at least one arrives and the copies are identical."""
    sub, pub = pair
    channel = f"{ns}/t/chat/1"
    for pattern in (channel, f"{ns}/t/chat/+", f"{ns}/t/chat/#", f"{ns}/t/#"):
        await sub.subscribe(pattern)
    marks = markers(sub, ns)
    for mark in marks:
        await sub.subscribe(mark)
    async with listening(sub) as listener:
        await pub.publish(channel, b"once")
        copies = await after_markers(listener, pub, marks)
    assert 1 <= len(copies) <= 4
    assert all(m == BrokerMessage(channel, b"once") for m in copies)


async def test_unsubscribing_one_of_two_patterns_keeps_the_other(
    pair: tuple[BrokerInterface, BrokerInterface], ns: str
) -> None:
    """``a/+`` and ``a/#`` may share a broker-side subscription; dropping one keeps the other."""
    sub, pub = pair
    await sub.subscribe(f"{ns}/+")
    await sub.subscribe(f"{ns}/#")
    marks = markers(sub, f"{ns}x")
    for mark in marks:
        await sub.subscribe(mark)
    await sub.unsubscribe(f"{ns}/+")
    async with listening(sub) as listener:
        await pub.publish(f"{ns}/x", b"1")
        got = await after_markers(listener, pub, marks)
    assert BrokerMessage(f"{ns}/x", b"1") in got
    await sub.unsubscribe(f"{ns}/#")
    async with listening(sub) as listener:
        await pub.publish(f"{ns}/x", b"2")
        assert await after_markers(listener, pub, marks) == []


async def test_many_channels(pair: tuple[BrokerInterface, BrokerInterface], ns: str) -> None:
    sub, pub = pair
    channels = [f"{ns}/c/{i}" for i in range(300)]
    for channel in channels:
        await sub.subscribe(channel)
    async with listening(sub) as listener:
        for i, channel in enumerate(channels):
            await pub.publish(channel, str(i).encode())
        got = [await listener.next() for _ in channels]
    expected = [BrokerMessage(c, str(i).encode()) for i, c in enumerate(channels)]
    if callable(getattr(sub, "topology", None)):  # a cluster keeps order per primary only
        assert sorted(got) == sorted(expected)
    else:
        assert got == expected


async def test_subscribe_then_publish_at_once_is_delivered(
    pair: tuple[BrokerInterface, BrokerInterface], ns: str
) -> None:
    """Once ``subscribe`` returned, a publish from another connection is delivered (the
    broker confirmed the subscription), even while a listener is already running."""
    sub, pub = pair
    await sub.subscribe(f"{ns}/warmup")
    async with listening(sub) as listener:
        for i in range(50):
            channel = f"{ns}/late/{i}"
            pattern = f"{ns}/late-p/{i}/+"
            await sub.subscribe(channel)
            await pub.publish(channel, b"c")
            await sub.subscribe(pattern)
            await pub.publish(f"{ns}/late-p/{i}/x", b"p")
            got = [await listener.next(), await listener.next()]
            # (in either order on a cluster: the two channels may live on two primaries)
            assert sorted(got) == sorted(
                [BrokerMessage(channel, b"c"), BrokerMessage(f"{ns}/late-p/{i}/x", b"p")]
            )


async def test_a_second_subscribe_waits_for_the_first_ones_confirmation(
    pair: tuple[BrokerInterface, BrokerInterface], ns: str
) -> None:
    """Two connections subscribing to one channel at once: the second ``subscribe`` (whose
    ack the client would get) returns only after the broker confirmed the first, so a
    publish right after either returns is delivered."""
    sub, pub = pair
    await sub.subscribe(f"{ns}/warmup")
    async with listening(sub) as listener:
        for name in (f"{ns}/twice", f"{ns}/twice-p/+"):
            first = asyncio.create_task(sub.subscribe(name))
            await asyncio.sleep(0)  # the first is now in flight (Redis) or done (memory)
            await sub.subscribe(name)
            assert first.done()
            await first
            target = name.replace("+", "x")
            await pub.publish(target, b"after")
            assert await listener.next() == BrokerMessage(target, b"after")


async def test_get_message_times_out_without_busy_looping(
    pair: tuple[BrokerInterface, BrokerInterface], ns: str
) -> None:
    sub, pub = pair
    await sub.subscribe(f"{ns}/quiet")
    loop = asyncio.get_running_loop()
    cpu0, wall0 = time.process_time(), loop.time()
    assert await sub.get_message(timeout=1.0) is None
    cpu, wall = time.process_time() - cpu0, loop.time() - wall0
    assert 0.9 <= wall < 3.0
    assert cpu < 0.2, f"get_message used {cpu:.3f}s of CPU while waiting {wall:.2f}s"
    assert await sub.get_message(timeout=0) is None

    await pub.publish(f"{ns}/quiet", b"now")
    assert await sub.get_message(timeout=WAIT) == BrokerMessage(f"{ns}/quiet", b"now")


async def test_get_message_waits_for_a_message(
    pair: tuple[BrokerInterface, BrokerInterface], ns: str
) -> None:
    sub, pub = pair
    await sub.subscribe(f"{ns}/later")

    async def publish_soon() -> None:
        await asyncio.sleep(0.2)
        await pub.publish(f"{ns}/later", b"x")

    task = asyncio.get_running_loop().create_task(publish_soon())
    async with asyncio.timeout(WAIT):
        assert await sub.get_message(timeout=None) == BrokerMessage(f"{ns}/later", b"x")
    await task


async def test_disconnect_ends_listen(broker_url: str, ns: str) -> None:
    broker = create_broker(broker_url)
    await broker.connect()
    await broker.subscribe(f"{ns}/x")
    listener = Listener(broker)
    await broker.publish(f"{ns}/x", b"1")
    assert (await listener.next()).data == b"1"  # the listener is blocked in listen() now
    await broker.disconnect()
    async with asyncio.timeout(WAIT):
        await listener.task  # ends by itself, without an exception
    assert listener.task.exception() is None
    # listen() on a closed broker ends at once.
    async with asyncio.timeout(WAIT):
        assert [m async for m in broker.listen()] == []


async def test_publish_on_a_pattern_is_refused(
    pair: tuple[BrokerInterface, BrokerInterface], ns: str, broker_url: str
) -> None:
    _, pub = pair
    if broker_url.startswith("memory://"):
        with pytest.raises(ValueError):
            await pub.publish(f"{ns}/+", b"x")


def test_create_broker_schemes() -> None:
    from asyncws import InMemoryBroker
    from asyncws.brokers.redis import RedisBroker

    assert isinstance(create_broker("memory://"), InMemoryBroker)
    assert isinstance(create_broker("redis://127.0.0.1:1/0"), RedisBroker)
    assert isinstance(create_broker("rediss://127.0.0.1:1/0"), RedisBroker)
    with pytest.raises(ValueError, match="scheme"):
        create_broker("kafka://x")


async def test_memory_hubs_are_private_unless_named() -> None:
    a, b = create_broker("memory://"), create_broker("memory://")
    async with a, b:
        await a.subscribe("x")
        await b.publish("x", b"lost")
        await a.publish("x", b"mine")
        assert await a.get_message(timeout=WAIT) == BrokerMessage("x", b"mine")
        assert await a.get_message(timeout=0) is None


# -- Redis only: glob translation ----------------------------------------------------------


def test_pattern_to_glob() -> None:
    from asyncws.brokers.redis import pattern_to_glob

    assert pattern_to_glob("a/b") == "a/b"
    assert pattern_to_glob("a/+") == "a/*"
    assert pattern_to_glob("a/+/c") == "a/*/c"
    assert pattern_to_glob("a/#") == "a*"
    assert pattern_to_glob("#") == "*"
    assert pattern_to_glob("+/#") == "**"
    # Glob metacharacters in a literal level are escaped.
    assert pattern_to_glob("a*b/+") == "a\\*b/*"
    assert pattern_to_glob("a?/+") == "a\\?/*"
    assert pattern_to_glob("[x]/+") == "\\[x\\]/*"
    assert pattern_to_glob("back\\slash/#") == "back\\\\slash*"
    assert pattern_to_glob("^a/#") == "\\^a*"


@pytest.mark.redis
async def test_glob_metacharacters_in_patterns_match_literally(redis_url: str, ns: str) -> None:
    """An unescaped ``[x]`` would be a character class: the literal channel would be missed
    and ``nsx/1`` let through."""
    sub, pub = create_broker(redis_url), create_broker(redis_url)
    async with sub, pub:
        for pattern in (f"{ns}/[x]/+", f"{ns}/a*b/+", f"{ns}/q?/#", f"{ns}/b\\s/+"):
            await sub.subscribe(pattern)
        await sub.subscribe(f"{ns}/end")
        literal = [f"{ns}/[x]/1", f"{ns}/a*b/1", f"{ns}/q?", f"{ns}/q?/z", f"{ns}/b\\s/1"]
        globbed = [f"{ns}/x/1", f"{ns}/aXXb/1", f"{ns}/qz/z", f"{ns}/bs/1"]
        async with listening(sub) as listener:
            for channel in [*globbed, *literal]:
                await pub.publish(channel, b"")
            await pub.publish(f"{ns}/end", b"")
            got = [m.channel for m in await listener.until(f"{ns}/end")]
    assert got == [*literal, f"{ns}/end"]


# -- Redis only: outages ----------------------------------------------------------------------


async def poll_until(predicate: Callable[[], bool], within: float = 15.0) -> None:
    """Bounded poll of a health signal (the broker's state): at most ``within`` seconds."""
    interval = 0.02
    for _ in range(int(within / interval)):
        if predicate():
            return
        await asyncio.sleep(interval)
    raise TimeoutError(f"not true within {within}s")


async def _wait_state(broker: BrokerInterface, state: BrokerState, within: float = 15.0) -> None:
    await poll_until(lambda: broker.state is state, within)


@pytest.mark.redis
async def test_redis_restart_resubscribes_and_delivery_resumes(
    fresh_redis: RedisServer, ns: str
) -> None:
    from asyncws.brokers.redis import RedisBroker

    sub = RedisBroker(fresh_redis.url, reconnect_max=0.5)
    pub = RedisBroker(fresh_redis.url)
    async with sub, pub:
        await sub.subscribe(f"{ns}/exact")
        await sub.subscribe(f"{ns}/p/+")
        async with listening(sub) as listener:
            await pub.publish(f"{ns}/exact", b"before")
            await pub.publish(f"{ns}/p/1", b"before")
            assert await listener.next() == BrokerMessage(f"{ns}/exact", b"before")
            assert await listener.next() == BrokerMessage(f"{ns}/p/1", b"before")

            await asyncio.to_thread(fresh_redis.restart)
            # The listener notices, reconnects and replays both subscriptions.
            await poll_until(lambda: sub.reconnects >= 1 and sub.state is BrokerState.CONNECTED)
            # The restarted server knows the subscriptions again (asked with a fresh client).
            assert fresh_redis.command("PUBSUB", "NUMSUB", f"{ns}/exact").endswith(b"*2")
            await pub.publish(f"{ns}/exact", b"after")
            await pub.publish(f"{ns}/p/2", b"after")
            assert await listener.next() == BrokerMessage(f"{ns}/exact", b"after")
            assert await listener.next() == BrokerMessage(f"{ns}/p/2", b"after")
            assert sub.reconnects == 1
            assert not listener.task.done()


@pytest.mark.redis
async def test_subscribe_during_outage_is_replayed(fresh_redis: RedisServer, ns: str) -> None:
    from asyncws.brokers.redis import RedisBroker

    sub = RedisBroker(fresh_redis.url, reconnect_max=0.3)
    pub = RedisBroker(fresh_redis.url)
    async with sub, pub:
        await sub.subscribe(f"{ns}/old")
        async with listening(sub) as listener:
            await asyncio.to_thread(fresh_redis.stop)
            await _wait_state(sub, BrokerState.RECONNECTING)
            # Retrying with backoff while Redis is down does not spin either.
            cpu0 = time.process_time()
            await asyncio.sleep(1.0)  # the measurement window
            assert time.process_time() - cpu0 < 0.1
            async with asyncio.timeout(WAIT):
                await sub.subscribe(f"{ns}/new")  # Redis is down: remembered, not raised
                await sub.subscribe(f"{ns}/newp/#")
            await asyncio.to_thread(fresh_redis.start)
            await _wait_state(sub, BrokerState.CONNECTED)
            for channel in (f"{ns}/old", f"{ns}/new", f"{ns}/newp/x"):
                await pub.publish(channel, b"v")
                assert await listener.next() == BrokerMessage(channel, b"v")


@pytest.mark.redis
async def test_connect_while_redis_is_down_then_recover(fresh_redis: RedisServer, ns: str) -> None:
    from asyncws.brokers.redis import RedisBroker

    await asyncio.to_thread(fresh_redis.stop)
    sub = RedisBroker(fresh_redis.url, reconnect_max=0.3)
    async with asyncio.timeout(WAIT):
        await sub.connect()  # does not raise: the app starts, the listener keeps trying
    try:
        assert sub.state is BrokerState.RECONNECTING
        with pytest.raises(BrokerError):
            await sub.publish(f"{ns}/x", b"lost")
        await sub.subscribe(f"{ns}/x")
        async with listening(sub) as listener:
            await asyncio.to_thread(fresh_redis.start)
            await _wait_state(sub, BrokerState.CONNECTED)
            await sub.publish(f"{ns}/x", b"found")
            assert await listener.next() == BrokerMessage(f"{ns}/x", b"found")
    finally:
        await sub.disconnect()


@pytest.mark.redis
async def test_get_message_while_redis_is_down_raises_then_recovers(
    fresh_redis: RedisServer, ns: str
) -> None:
    from asyncws.brokers.redis import RedisBroker

    never = RedisBroker(fresh_redis.url)
    with pytest.raises(BrokerError):
        await never.publish(f"{ns}/x", b"not connected yet")
    with pytest.raises(BrokerError):
        await never.get_message(timeout=0.1)

    sub, pub = RedisBroker(fresh_redis.url), RedisBroker(fresh_redis.url)
    async with sub, pub:
        await sub.subscribe(f"{ns}/x")
        await asyncio.to_thread(fresh_redis.stop)
        started = time.monotonic()
        with pytest.raises(BrokerError):
            await sub.get_message(timeout=2.0)  # not None forever: the link is gone
        assert time.monotonic() - started < 3.0
        assert sub.state is BrokerState.RECONNECTING
        with pytest.raises(BrokerError):
            await sub.get_message(timeout=0.1)  # still down: reconnecting fails loudly too
        await asyncio.to_thread(fresh_redis.start)
        assert await sub.get_message(timeout=0.2) is None  # reconnected and resubscribed
        assert sub.state is BrokerState.CONNECTED
        await pub.publish(f"{ns}/x", b"back")
        assert await sub.get_message(timeout=WAIT) == BrokerMessage(f"{ns}/x", b"back")


@pytest.mark.redis
async def test_publish_while_redis_is_stopped_raises_quickly(
    fresh_redis: RedisServer, ns: str
) -> None:
    from asyncws.brokers.redis import RedisBroker

    async with RedisBroker(fresh_redis.url) as pub:
        await pub.publish(f"{ns}/x", b"ok")
        await asyncio.to_thread(fresh_redis.stop)
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(BrokerError):
                await pub.publish(f"{ns}/x", b"lost")
            assert time.monotonic() - started < 3.0
        await asyncio.to_thread(fresh_redis.start)
        # Back up: publishing works again without a new broker.
        async with asyncio.timeout(WAIT):
            await pub.publish(f"{ns}/x", b"ok again")


@pytest.mark.redis
async def test_publish_to_a_hung_redis_raises_within_the_command_timeout(
    fresh_redis: RedisServer, ns: str
) -> None:
    from asyncws.brokers.redis import RedisBroker

    async with RedisBroker(fresh_redis.url, command_timeout=0.5) as pub:
        await pub.publish(f"{ns}/x", b"ok")
        fresh_redis.pause()
        try:
            started = time.monotonic()
            with pytest.raises(BrokerError):
                await pub.publish(f"{ns}/x", b"lost")
            assert time.monotonic() - started < 3.0
        finally:
            fresh_redis.resume()


@pytest.mark.redis
@pytest.mark.parametrize("health_interval", [15.0, 0.25])
async def test_idle_listener_uses_no_cpu(
    fresh_redis: RedisServer, ns: str, health_interval: float
) -> None:
    """The seed's listener polls in a loop and spins a core; ours blocks on the socket (and
    wakes every ``health_interval`` to PING)."""
    from asyncws.brokers.redis import RedisBroker

    sub = RedisBroker(fresh_redis.url, health_interval=health_interval)
    async with sub, create_broker(fresh_redis.url) as pub:
        await sub.subscribe(f"{ns}/x")
        async with listening(sub) as listener:
            await pub.publish(f"{ns}/x", b"wake")
            assert (await listener.next()).data == b"wake"  # blocked in listen() from here
            cpu0 = time.process_time()
            await asyncio.sleep(2.0)  # the measurement window, not a synchronization
            cpu = time.process_time() - cpu0
            print(f"\nidle listener CPU over 2 s (health_interval={health_interval}): {cpu:.4f} s")
            assert cpu < 0.1
            # Still alive and listening after the idle period (and the PINGs).
            await pub.publish(f"{ns}/x", b"again")
            assert (await listener.next()).data == b"again"
            assert sub.state is BrokerState.CONNECTED
            assert sub.reconnects == 0  # answered PINGs are not mistaken for a dead link


# -- Redis only: publish batching ---------------------------------------------------------------


@pytest.mark.redis
async def test_redis_publishes_of_one_tick_go_in_one_pipelined_write(
    redis_url: str, ns: str
) -> None:
    from asyncws.brokers.redis import RedisBroker

    sub, pub = RedisBroker(redis_url), RedisBroker(redis_url)
    async with sub, pub:
        channels = [f"{ns}/batch/{i}" for i in range(50)]
        for channel in channels:
            await sub.subscribe(channel)
        async with listening(sub) as listener:
            before = pub.publish_batches

            async def publisher(channel: str) -> None:  # one connection's frames, in order
                for n in range(4):
                    await pub.publish(channel, b"%d" % n)

            async with asyncio.timeout(WAIT):
                await asyncio.gather(*(publisher(c) for c in channels))
            # 50 publishers x 4 awaited publishes: each round of the 50 is one batch
            # (a batch in flight collects the next one), not 200 round trips.
            assert pub.publish_batches - before <= 8
            got: dict[str, list[bytes]] = {c: [] for c in channels}
            for _ in range(200):
                message = await listener.next()
                got[message.channel].append(message.data)
            assert all(v == [b"0", b"1", b"2", b"3"] for v in got.values())  # per-publisher order


@pytest.mark.redis
async def test_redis_flush_delay_collects_publishes_of_several_ticks(
    redis_url: str, ns: str
) -> None:
    from asyncws.brokers.redis import RedisBroker

    async with RedisBroker(redis_url, flush_delay=0.2) as pub:
        before = pub.publish_batches
        first = asyncio.ensure_future(pub.publish(f"{ns}/d", b"a"))
        for _ in range(3):
            await asyncio.sleep(0)  # later ticks, well inside the 0.2 s delay
        second = asyncio.ensure_future(pub.publish(f"{ns}/d", b"b"))
        async with asyncio.timeout(WAIT):
            await asyncio.gather(first, second)
        assert pub.publish_batches - before == 1


@pytest.mark.redis
async def test_redis_failed_batch_fails_each_publisher(fresh_redis: RedisServer, ns: str) -> None:
    from asyncws.brokers.redis import RedisBroker

    async with RedisBroker(fresh_redis.url, command_timeout=0.5) as pub:
        await pub.publish(f"{ns}/x", b"ok")
        errors_before = pub.publish_errors
        fresh_redis.pause()
        try:
            async with asyncio.timeout(WAIT):
                results = await asyncio.gather(
                    *(pub.publish(f"{ns}/x/{i}", b"lost") for i in range(20)),
                    return_exceptions=True,
                )
        finally:
            fresh_redis.resume()
        assert all(isinstance(r, BrokerError) for r in results)
        assert len({id(r) for r in results}) == 20  # one error per publisher, not one shared
        assert pub.publish_errors - errors_before == 20
        async with asyncio.timeout(WAIT):
            await pub.publish(f"{ns}/x", b"ok again")  # the next batch works


@pytest.mark.redis
async def test_redis_batch_is_written_when_its_leader_is_cancelled(redis_url: str, ns: str) -> None:
    from asyncws.brokers.redis import RedisBroker

    sub, pub = RedisBroker(redis_url), RedisBroker(redis_url, flush_delay=0.5)
    async with sub, pub:
        await sub.subscribe(f"{ns}/c")
        async with listening(sub) as listener:
            leader = asyncio.ensure_future(pub.publish(f"{ns}/c", b"leader"))
            await asyncio.sleep(0)  # the leader now collects (waiting 0.5 s)
            followers = [asyncio.ensure_future(pub.publish(f"{ns}/c", b"%d" % i)) for i in range(3)]
            await asyncio.sleep(0)
            leader.cancel()
            async with asyncio.timeout(WAIT):
                await asyncio.gather(*followers)
            got = [(await listener.next()).data for _ in range(3)]
            assert got == [b"0", b"1", b"2"]
            assert leader.cancelled()
