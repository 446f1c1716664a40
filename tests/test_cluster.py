"""asyncws on a real Redis Cluster (3 primaries + 3 replicas) and behind Redis Sentinel.

- The distributed tests of test_distributed.py run again here on three uvicorn instances whose
  broker is ``redis+cluster://``: broadcast, addressable-once-connected and subscribe-ack-then-
  publish are the same functions, imported; topics/wildcards, direct and user sends are
  rewritten without relying on order *across* channels, which a cluster does not keep (two
  channels on two primaries arrive over two connections; order per channel and publisher
  holds, as the manager promises).
- Failover: kill -9 the primary of a busy partition while messages flow; a replica is promoted
  and delivery resumes within a measured bound; publishes refused meanwhile are counted.
- Slot migration: move a busy partition's slot to another primary under traffic (CLUSTER
  SETSLOT + MIGRATE); subscriptions follow and a claim in that slot survives.
- Sentinel: kill -9 the primary; the broker follows the promoted replica.

Every wait is for a message or a bounded poll; the kill and the migration are the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from asyncws import BrokerError, BrokerMessage, Position, create_broker
from asyncws.brokers.cluster_layout import decode_feed, key_slot, parse_cluster_url, partition_tags
from asyncws.brokers.redis_cluster import RedisClusterBroker
from asyncws.brokers.redis_sentinel import RedisSentinelBroker, parse_sentinel_url
from asyncws.history import split_position
from asyncws.testing import TestClient
from tests.clusters import RedisClusterServers, SentinelServers, redis_reply
from tests.servers import UvicornServer
from tests.test_distributed import (
    APP,
    NS,
    Peer,
    marker_from,
    peers,
    start_all,
    test_a_connection_is_addressable_once_connected,
    test_broadcast_across_instances,
    test_subscribe_ack_then_publish_from_another_instance,
    uid,
)
from tests.wsclient import WsClient

pytestmark = [pytest.mark.cluster]

__all__ = [  # the imported tests run here, against the cluster
    "test_a_connection_is_addressable_once_connected",
    "test_broadcast_across_instances",
    "test_subscribe_ack_then_publish_from_another_instance",
]

WAIT = 5.0
FAILOVER_BOUND = 15.0  # seconds from kill -9 to delivery again (measured: printed)


@dataclass
class Instances:
    """What the imported tests need of their ``cluster`` fixture: the uvicorn servers."""

    servers: list[UvicornServer]


@pytest.fixture(scope="module")
def cluster(redis_cluster: RedisClusterServers) -> Iterator[Instances]:
    """Three instances of the seed app on the session's Redis Cluster."""
    servers = [
        UvicornServer(APP, env={"ASYNCWS_BROKER_URL": redis_cluster.url}, ready_path="/health")
        for _ in range(3)
    ]
    try:
        start_all(servers)
        yield Instances(servers)
    finally:
        for server in servers:
            server.close()


def _key(frame: Any) -> str:
    return json.dumps(frame, sort_keys=True)


async def received(everyone: list[Peer], expected: list[list[Any]]) -> list[list[Any]]:
    """Each peer's next ``len(expected[i])`` frames (in any order across channels), then a
    marker broadcast after they all arrived: nothing else may come before it."""

    async def take(peer: Peer, count: int) -> list[Any]:
        return [await peer.recv() for _ in range(count)]

    got = await asyncio.gather(*(take(p, len(e)) for p, e in zip(everyone, expected, strict=True)))
    assert await marker_from(everyone[-1], everyone) == [[] for _ in everyone]
    return [sorted(frames, key=_key) for frames in got]


def _sorted(expected: list[list[Any]]) -> list[list[Any]]:
    return [sorted(frames, key=_key) for frames in expected]


async def test_topics_and_wildcards_across_instances(cluster: Instances) -> None:
    a, b, c = cluster.servers
    async with peers(
        (a, uid("plus")), (b, uid("hash")), (c, uid("exact")), (b, uid("both")),
        (c, uid("other")), (a, uid("sender")),
    ) as everyone:  # fmt: skip
        plus, hash_, exact, both, other, sender = everyone
        await plus.subscribe("chat/+")
        await hash_.subscribe("chat/#")
        await exact.subscribe("chat/room1")
        await both.subscribe("chat/+")
        await both.subscribe("chat/#")
        await other.subscribe("news/+")
        for n, topic in enumerate(
            ["chat/room1", "chat/room1/deep", "chat", "chatroom/x", "news/1", "nobody"], 1
        ):
            await sender.send({"type": "send", "topic": topic, "n": n})
        expected = [
            [{"n": 1}],
            [{"n": 1}, {"n": 2}, {"n": 3}],
            [{"n": 1}],
            [{"n": 1}, {"n": 2}, {"n": 3}],
            [{"n": 5}],
            [],
        ]
        assert await received(everyone, expected) == _sorted(expected)


async def test_direct_to_connection_ids_across_instances(cluster: Instances) -> None:
    a, b, c = cluster.servers
    x, y, z = uid("x"), uid("y"), uid("z")
    async with peers((a, x), (b, y), (c, z)) as everyone:
        px, _, _ = everyone
        await px.send({"type": "send_by_conn_id", "conn_id": y, "v": 1})
        await px.send({"type": "send_by_conn_id", "conn_id": [x, z, "nobody"], "v": 2})
        expected = [[{"v": 2}], [{"v": 1}], [{"v": 2}]]
        assert await received(everyone, expected) == expected


async def test_user_and_http_publish_across_instances(cluster: Instances) -> None:
    a, b, c = cluster.servers
    u1, u2 = uid("user1"), uid("user2")
    async with (
        peers(
            (a, f"{uid('c')}/user/{u1}"), (c, f"{uid('c')}/user/{u1}"), (b, f"{uid('c')}/user/{u2}")
        ) as everyone,
        httpx.AsyncClient() as http,
    ):
        await everyone[2].subscribe("http/+")
        response = await http.post(f"{b.url}/send_user/{u1}", json={"for": "u1"})
        assert response.status_code == 200
        response = await http.post(f"{c.url}/publish/http/1", json={"via": "http"})
        assert response.status_code == 200
        expected = [[{"for": "u1"}], [{"for": "u1"}], [{"via": "http"}]]
        assert await received(everyone, expected) == expected


# -- pure parts -----------------------------------------------------------------------------


def test_partitions_balance_over_three_primaries() -> None:
    tags = partition_tags(128)
    assert len(set(tags)) == 128
    slots = [key_slot(tag) for tag in tags]
    assert slots == sorted(slots)  # partition i lives in the i-th 128-slot stretch
    # The ranges redis-cli --cluster create gives three primaries.
    shares = [
        sum(lo <= s <= hi for s in slots) for lo, hi in ((0, 5460), (5461, 10922), (10923, 16383))
    ]
    assert max(shares) - min(shares) <= 1, shares


def test_feed_messages_carry_their_channel() -> None:
    assert decode_feed(b"7:ns/t/a/" + b"\x00data") == ("ns/t/a/", b"\x00data")
    assert decode_feed(b"0:") == ("", b"")
    assert decode_feed(b"no length") is None
    assert decode_feed(b"99:short") is None


def test_urls() -> None:
    seeds, options, partitions = parse_cluster_url(
        "redis+cluster://u:p%40ss@h1:7000,h2:7001/?partitions=64"
    )
    assert seeds == [("h1", 7000), ("h2", 7001)]
    assert options == {"username": "u", "password": "p@ss"}
    assert partitions == 64
    assert parse_cluster_url("rediss+cluster://h1/")[1] == {"ssl": True}
    with pytest.raises(ValueError):
        parse_cluster_url("redis+cluster://h1/?partitions=0")
    sentinels, service, node, sentinel = parse_sentinel_url(
        "redis+sentinel://:secret@s1:26379,s2:26380/mymaster/2?sentinel_password=sp"
    )
    assert sentinels == [("s1", 26379), ("s2", 26380)]
    assert service == "mymaster"
    assert node == {"password": "secret", "db": 2}
    assert sentinel == {"password": "sp"}
    with pytest.raises(ValueError, match="service"):
        parse_sentinel_url("redis+sentinel://s1:26379/")
    assert isinstance(create_broker("redis+cluster://127.0.0.1:1/"), RedisClusterBroker)
    assert isinstance(create_broker("redis+sentinel://127.0.0.1:1/m"), RedisSentinelBroker)


# -- on the session cluster -----------------------------------------------------------------


async def test_no_crossslot_and_one_connection_per_primary(cluster_url: str) -> None:
    """Claims, publishes and 300 subscriptions spread over every partition: each command
    stays in one slot, and the subscriber holds one pub/sub connection per primary."""
    sub = RedisClusterBroker(cluster_url)
    pub = RedisClusterBroker(cluster_url)
    async with sub, pub:
        channels = [f"ns/t/{i}" for i in range(300)]
        for channel in channels:
            await sub.subscribe(channel)
        await sub.subscribe("ns/t/p/+")
        assert len(sub._links) == 3
        assert {sub.partition_of(c) for c in channels} == set(range(128))
        assert await pub.claim("ns/claim/a", "me", 30)
        assert not await sub.claim("ns/claim/a", "other", 30)
        await pub.release("ns/claim/a", "me")
        assert await sub.claim("ns/claim/a", "other", 30)
        for i, channel in enumerate(channels):
            await pub.publish(channel, str(i))
        await pub.publish("ns/t/p/x", b"pattern")
        got = []
        async with asyncio.timeout(WAIT):
            while len(got) < 301:
                message = await sub.get_message(timeout=WAIT)
                assert message is not None
                got.append(message)
        assert sorted(got) == sorted(
            [BrokerMessage(c, str(i).encode()) for i, c in enumerate(channels)]
            + [BrokerMessage("ns/t/p/x", b"pattern")]
        )
        topology = sub.topology()
        assert len(topology["nodes"]) == 3
        assert all(node["up"] for node in topology["nodes"].values())
        assert sorted(node["partitions"] for node in topology["nodes"].values()) == [42, 43, 43]
        assert topology["pending_partitions"] == []


async def test_unsubscribe_then_subscribe_again_at_once(cluster_url: str) -> None:
    """Our own SUNSUBSCRIBE's answer, arriving after the channel was subscribed again, is
    not taken for Redis dropping it (a slot move)."""
    async with RedisClusterBroker(cluster_url) as sub, RedisClusterBroker(cluster_url) as pub:
        for i in range(20):
            channel = f"again/{i}"
            await sub.subscribe(channel)
            unsubscribing = asyncio.create_task(sub.unsubscribe(channel))
            await asyncio.sleep(0)
            await sub.subscribe(channel)
            await unsubscribing
            await pub.publish(channel, str(i))
            assert await sub.get_message(timeout=WAIT) == BrokerMessage(channel, str(i).encode())
        assert sub.slot_moves == 0


async def test_health_reports_nodes_and_partitions(cluster: Instances) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(cluster.servers[0].url + "/health", timeout=WAIT)
    body = response.json()
    assert body["broker"] == "connected"
    nodes = body["broker_topology"]["nodes"]
    assert len(nodes) == 3 and all(node["up"] for node in nodes.values())
    assert sum(node["partitions"] for node in nodes.values()) == 128


async def test_detailed_health_and_metrics_per_node(cluster_url: str) -> None:
    from asyncws import WebSocketManager
    from asyncws.metrics import new_registry, render
    from asyncws.ops import health_status

    manager = WebSocketManager("opsns", broker_url=cluster_url)
    async with manager:
        status, brief = health_status(manager)
        assert (status, brief) == (200, {"status": "ok"})  # nothing about nodes by default
        status, body = health_status(manager, detail=True)
        assert status == 200
        assert len(body["broker_topology"]["nodes"]) == 3
        text = render(new_registry(manager, process=False))[0].decode()
    for name in manager.broker.topology()["nodes"]:  # type: ignore[attr-defined]
        assert f'asyncws_broker_node_up{{node="{name}"}} 1.0' in text
    assert "asyncws_broker_node_partitions" in text
    assert "asyncws_broker_pending_partitions 0.0" in text


# -- history and presence on the session cluster ----------------------------------------------

HISTORY_APP = "tests.apps.history_app:app"


async def _keyslot(broker: RedisClusterBroker, part: int, key: str) -> int:
    """The slot Redis itself computes for ``key`` (asked of the partition's primary)."""
    return int(await broker.commands.execute(part, "CLUSTER", "KEYSLOT", key))


async def test_history_keys_share_the_slot_of_the_live_channel(cluster_url: str) -> None:
    """The stream, its meta hash and the idempotency key of a history topic live in the
    slot of the partition its channel is in: one script appends, publishes live (exactly and
    to the wildcard feed), in one slot; reads and idempotent retries work on the cluster."""
    pub, exact, wild = (RedisClusterBroker(cluster_url) for _ in range(3))
    async with pub, exact, wild:
        channels = [f"hk/t/rooms/{i}" for i in range(40)]  # spread over many partitions
        for channel in channels:
            await exact.subscribe(channel)
        await wild.subscribe("hk/t/rooms/+")
        positions = []
        for i, channel in enumerate(channels):
            key = f"hk:h:{{{channel.removeprefix('hk/t/')}}}"
            idem = "once" if i % 2 else None
            first = await pub.publish_history(
                channel, key, b"aws1:x\n" + str(i).encode(), size=5, ttl=60, idempotency_key=idem
            )
            again = await pub.publish_history(
                channel, key, b"aws1:x\nagain", size=5, ttl=60, idempotency_key=idem
            )
            assert again == (first if idem else Position(2, first.epoch))
            positions.append(first)
            read = await exact.read_history(channel, key, since=0, limit=10)
            assert read.position.epoch == first.epoch
            assert [e.data for e in read.entries][:1] == [b"aws1:x\n" + str(i).encode()]
            part = pub.partition_of(channel)
            for suffix in (":s", ":m", *((":i:once",) if idem else ())):
                name = f"{{{pub.tags[part]}}}{key}{suffix}"
                assert await pub.commands.execute(part, "EXISTS", name) == 1, name
                assert await _keyslot(pub, part, name) == pub.slots[part]
        expected = sum(1 if i % 2 else 2 for i in range(len(channels)))
        for broker in (exact, wild):
            got = []
            async with asyncio.timeout(WAIT):
                while len(got) < expected:
                    message = await broker.get_message(timeout=WAIT)
                    assert message is not None
                    got.append(message)
            firsts = {m.channel: m.data for m in got if m.data.startswith(b"awh:1:")}
            assert set(firsts) == set(channels)
            for channel, position in zip(channels, positions, strict=True):
                assert split_position(firsts[channel])[0] == position
        assert pub.topology()["publish_errors"] == 0


async def test_history_epoch_changes_when_the_cluster_loses_the_stream(
    redis_cluster: RedisClusterServers, cluster_url: str
) -> None:
    """FLUSHALL on every primary: the next publish starts a new epoch at offset 1, and a
    client coming back with a position of the old epoch gets ``recovered: false``."""
    from tests.test_history import build, numbers, publish

    ws, app = build(cluster_url)
    async with TestClient(app, timeout=WAIT) as client:
        old = await publish(ws, 0, 3)
        await asyncio.to_thread(redis_cluster.flushall)
        new = await publish(ws, 3, 1)
        assert new.epoch != old.epoch and new.offset == 1
        async with client.connect("/ws") as s:
            ack = await s.subscribe("rooms/lobby", since=old._asdict())
            assert ack["recovered"] is False
            assert ack["position"] == new._asdict()
            await publish(ws, 4, 1)
            assert await numbers(s, 1) == [4]


async def test_an_instance_fills_its_gap_after_its_node_connections_drop(
    redis_cluster: RedisClusterServers, cluster_url: str
) -> None:
    """Instance A's subscribing connections are killed (``CLIENT KILL TYPE pubsub`` on every
    primary) while B publishes on a history topic: A re-homes its subscriptions on the same
    primaries (the epoch stays) and fills the gap, so its subscriber gets every event once,
    in order."""
    from fastapi import FastAPI

    from asyncws import AsyncWS, HistoryPolicy, WebSocketManager
    from tests.test_history import Posted, build, numbers, publish

    a_broker = RedisClusterBroker(cluster_url)
    a = AsyncWS(title="a", manager=WebSocketManager("h", broker=a_broker))
    a.topic("rooms/{room}", Posted, history=HistoryPolicy(size=1000, ttl=60))
    app_a = FastAPI(lifespan=a.lifespan)
    app_a.include_router(a.asgi_router)
    b, app_b = build(cluster_url, size=1000)
    total = 300
    async with (
        TestClient(app_a, timeout=WAIT) as ca,
        TestClient(app_b, timeout=WAIT),
        ca.connect("/ws") as s,
    ):
        await s.subscribe("rooms/lobby")
        await publish(b, 0, 2)
        assert await numbers(s, 2) == [0, 1]
        losses = a_broker.node_losses

        async def publisher() -> None:
            for n in range(2, total):
                await publish(b, n, 1)
                if n == 20:  # while events flow
                    for node in redis_cluster.nodes:
                        if node.running() and redis_cluster.is_primary(node.port):
                            redis_reply(node.port, "CLIENT", "KILL", "TYPE", "pubsub")

        task = asyncio.create_task(publisher())
        got = await numbers(s, total - 2)
        await task
        stats = a.manager.history.stats
    print(
        f"\nA's pub/sub connections killed under traffic: {a_broker.node_losses - losses} "
        f"node connection(s) lost; gap fills {stats['gap_fills']}, events filled in "
        f"{stats['gap_events']}, duplicates dropped {stats['duplicates']}"
    )
    assert got == list(range(2, total))
    assert a_broker.node_losses > losses
    assert stats["gap_fills"] >= 1


@pytest.fixture
def history_instances(cluster_url: str) -> Iterator[list[UvicornServer]]:
    servers = [
        UvicornServer(HISTORY_APP, env={"ASYNCWS_BROKER_URL": cluster_url}, ready_path="/health")
        for _ in range(3)
    ]
    try:
        start_all(servers)
        yield servers
    finally:
        for server in servers:
            server.close()


async def test_recovery_on_another_instance_on_the_cluster(
    history_instances: list[UvicornServer],
) -> None:
    """test_history_distributed's first test on the cluster: a client reconnects to another
    instance with ``since`` and gets exactly what it missed, then live events."""
    from tests import test_history_distributed as distributed

    await distributed.test_a_client_reconnecting_to_another_instance_gets_exactly_what_it_missed(
        history_instances
    )


async def test_sigkill_of_an_instance_loses_nothing_on_the_cluster(
    history_instances: list[UvicornServer],
) -> None:
    from tests import test_history_distributed as distributed

    await distributed.test_sigkill_of_the_clients_instance_loses_nothing_acknowledged(
        history_instances
    )


async def test_presence_store_keeps_every_script_in_one_slot(cluster_url: str) -> None:
    """A topic's presence keys and its partition's topic index share one slot (no
    CROSSSLOT), and the sweep finds an expired holder in any partition."""
    from asyncws.brokers.cluster_presence import ClusterPresenceStore

    broker = RedisClusterBroker(cluster_url)
    async with broker:
        store = broker.presence_store("pns")
        assert isinstance(store, ClusterPresenceStore)
        topics = [f"rooms/{i}" for i in range(60)]
        now = time.time()
        for topic in topics:
            assert await store.add(topic, "i1", {"ann": '{"a":1}', "bo": "null"}, now + 60)
            assert await store.add(topic, "i2", {"ann": '{"a":1}'}, now - 1) == []
            part = store.partition_of(topic)
            for key in (*store.keys(topic), store.index_key(part)):
                assert await _keyslot(broker, part, key) == broker.slots[part], key
        assert len({store.partition_of(t) for t in topics}) > 30
        gone = await store.sweep(time.time())
        assert gone == []  # ann is still held by i1: i2's expired hold leaves nobody
        assert await store.remove(topics[0], "i1", "bo") == ("bo", "null")
        members, count = await store.members(topics[1], 10)
        assert count == 2 and sorted(m.member for m in members) == ["ann", "bo"]
        assert await store.count(topics[1]) == 2
        assert await store.has(topics[1], "bo") and not await store.has(topics[0], "bo")
        for topic in topics[1:]:
            assert await store.add(topic, "i1", {"ann": "null", "bo": "null"}, now - 1) == []
        gone = await store.sweep(time.time())
        # the last refresh set both infos to null, then every hold expired
        everyone = [(t, m, "null") for t in topics[1:] for m in ("ann", "bo")]
        assert sorted(gone) == sorted(everyone)
        assert await store.count(topics[1]) == 0
        assert await store.sweep(time.time()) == []


async def test_presence_across_three_instances_on_the_cluster(cluster_url: str) -> None:
    """test_presence's three-instance scenario on the cluster: members from every instance
    seen from each, join/leave exactly once, two tabs of one user."""
    from tests import test_presence

    await test_presence.test_presence_across_three_instances(cluster_url)


async def test_presence_killed_instance_leaves_on_the_cluster(cluster_url: str) -> None:
    from tests import test_presence

    await test_presence.test_presence_killed_instance_leaves_within_bound(cluster_url)


# -- failures, each on a cluster of its own ---------------------------------------------------


@dataclass
class Traffic:
    """A publisher sending numbered messages on fixed channels until stopped; what arrived."""

    pub: RedisClusterBroker
    sub: RedisClusterBroker
    channels: list[str]
    sent: dict[str, list[int]] = field(default_factory=dict)
    refused: int = 0
    received: dict[str, list[int]] = field(default_factory=dict)
    arrivals: list[tuple[float, str]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, limit: int = 20000, pace: float = 0.002) -> None:
        for n in range(limit):
            if self.stop.is_set():
                return
            channel = self.channels[n % len(self.channels)]
            try:
                await self.pub.publish(channel, str(n))
            except BrokerError:
                self.refused += 1
                await asyncio.sleep(0.01)
            else:
                self.sent.setdefault(channel, []).append(n)
                await asyncio.sleep(pace)

    async def receive(self) -> None:
        async for message in self.sub.listen():
            self.received.setdefault(message.channel, []).append(int(message.data))
            self.arrivals.append((time.monotonic(), message.channel))

    async def first_after(self, channel: str, since: float, timeout: float) -> float:
        """Wait until a message on ``channel`` arrives after ``since``; when it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, name in reversed(self.arrivals):
                if at <= since:
                    break
                if name == channel:
                    return at
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no message on {channel} within {timeout}s")

    def lost(self) -> int:
        return sum(len(set(sent) - set(self.received.get(c, []))) for c, sent in self.sent.items())


@contextlib.asynccontextmanager
async def traffic(url: str, channels: list[str]) -> AsyncIterator[Traffic]:
    pub = RedisClusterBroker(url, reconnect_max=0.5)
    sub = RedisClusterBroker(url, reconnect_max=0.5)
    await pub.connect()
    await sub.connect()
    for channel in channels:
        await sub.subscribe(channel)
    flow = Traffic(pub, sub, channels)
    tasks = [asyncio.create_task(flow.receive()), asyncio.create_task(flow.publish())]
    try:
        yield flow
    finally:
        flow.stop.set()
        await asyncio.wait(tasks[1:], timeout=WAIT)
        await pub.disconnect()
        await sub.disconnect()
        await asyncio.wait(tasks, timeout=WAIT)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise AssertionError("a traffic task crashed") from task.exception()


@pytest.fixture(scope="module")
def disposable_cluster() -> Iterator[RedisClusterServers]:
    """A cluster for the tests that move slots and kill nodes (migration first, then kill)."""
    with RedisClusterServers() as servers:
        yield servers


async def test_slot_migration_under_traffic(disposable_cluster: RedisClusterServers) -> None:
    servers = disposable_cluster
    probe = RedisClusterBroker(servers.url)
    channels = [f"mig/{i}" for i in range(24)]
    busy = channels[0]
    slot = probe.slots[probe.partition_of(busy)]
    claim_key = next(
        f"mig/claim/{i}"
        for i in range(10000)
        if probe._key(f"mig/claim/{i}")[0] == probe.partition_of(busy)
    )
    async with traffic(servers.url, channels) as flow:
        assert await flow.pub.claim(claim_key, "holder", 60)
        await flow.first_after(busy, 0.0, WAIT)
        owner = await asyncio.to_thread(servers.slot_owner, slot)
        target = next(p for p in servers.ports if p != owner and servers.is_primary(p))
        moved_at = time.monotonic()
        await asyncio.to_thread(servers.move_slot, slot, target)
        resumed = await flow.first_after(busy, time.monotonic(), FAILOVER_BOUND) - moved_at
        assert not await flow.sub.claim(claim_key, "thief", 60)  # moved with its slot
        assert await flow.pub.claim(claim_key, "holder", 60)
        flow.stop.set()
        await flow.pub.publish(busy, "-1")
        await flow.first_after(busy, time.monotonic() - 0.001, WAIT)
        topology = flow.sub.topology()
    print(
        f"\nslot {slot} moved {owner} -> {target}: delivery on it after {resumed * 1e3:.0f} ms; "
        f"lost {flow.lost()} of {sum(map(len, flow.sent.values()))}, refused {flow.refused}, "
        f"slot moves seen {flow.sub.slot_moves}"
    )
    assert flow.sub.slot_moves >= 1
    assert topology["pending_partitions"] == []
    owners = {name: node["partitions"] for name, node in topology["nodes"].items()}
    assert owners[f"127.0.0.1:{target}"] == 44 or sum(owners.values()) == 128


def failover_target(servers: RedisClusterServers, names: list[str]) -> str:
    """The first of ``names`` whose primary has a replica to take over (earlier tests may
    have killed a primary already)."""
    probe = RedisClusterBroker(servers.url)
    for name in names:
        owner = servers.slot_owner(probe.slots[probe.partition_of(name)])
        if servers.has_replica(owner):
            return name
    raise AssertionError("no primary with a replica left")


async def test_kill_a_primary_under_app_traffic(disposable_cluster: RedisClusterServers) -> None:
    """Two uvicorn instances: HTTP publishes on A, a websocket subscriber on B. kill -9 the
    primary of the topic's slot: A refuses publishes (503, counted) until a replica took
    over, then B receives again; both instances stay up and report a connected broker."""
    servers = disposable_cluster
    topic = (
        await asyncio.to_thread(failover_target, servers, [f"{NS}/t/app/{i}" for i in range(50)])
    ).removeprefix(f"{NS}/t/")
    probe = RedisClusterBroker(servers.url)
    slot = probe.slots[probe.partition_of(f"{NS}/t/{topic}")]
    web = [
        UvicornServer(APP, env={"ASYNCWS_BROKER_URL": servers.url}, ready_path="/health")
        for _ in range(2)
    ]
    try:
        await asyncio.to_thread(start_all, web)
        a, b = web
        async with peers((b, uid("sub"))) as (sub,), httpx.AsyncClient() as http:
            await sub.subscribe(topic)
            url = f"{a.url}/publish/{topic}"
            assert (await http.post(url, json={"n": -1})).status_code == 200
            assert await sub.recv() == {"n": -1}
            victim = await asyncio.to_thread(servers.slot_owner, slot)
            killed_at = time.monotonic()
            await asyncio.to_thread(servers.kill, victim)
            refused = accepted = 0
            resumed = None
            for n in range(1500):  # bounded: about 15 s
                status = (await http.post(url, json={"n": n}, timeout=WAIT)).status_code
                assert status in (200, 503), status
                if status == 503:
                    refused += 1
                    await asyncio.sleep(0.01)
                    continue
                accepted += 1
                with contextlib.suppress(TimeoutError):
                    frame = await sub.recv(timeout=0.05)
                    if frame.get("n", -1) >= 0 and time.monotonic() > killed_at:
                        resumed = time.monotonic() - killed_at
                        break
            assert resumed is not None, "delivery did not resume"
            bodies = [(await http.get(s.url + "/health", timeout=WAIT)).json() for s in web]
            for _ in range(100):  # bounded poll: both instances re-homed everything
                if all(body["broker"] == "connected" for body in bodies):
                    break
                await asyncio.sleep(0.05)
                bodies = [(await http.get(s.url + "/health", timeout=WAIT)).json() for s in web]
        print(
            f"\napp traffic: kill -9 primary {victim}; B received again {resumed:.2f} s later; "
            f"A refused {refused} publishes (503), accepted {accepted}"
        )
        assert all(server.running() for server in web)
        assert [body["broker"] for body in bodies] == ["connected", "connected"]
        assert refused >= 1
        assert bodies[0]["broker_topology"]["publish_errors"] == refused
        assert bodies[1]["broker_topology"]["node_losses"] >= 1
    finally:
        for server in web:
            server.close()


async def test_kill_a_primary_under_traffic(disposable_cluster: RedisClusterServers) -> None:
    servers = disposable_cluster
    probe = RedisClusterBroker(servers.url)
    channels = [f"kill/{i}" for i in range(24)]
    busy = await asyncio.to_thread(failover_target, servers, channels)
    slot = probe.slots[probe.partition_of(busy)]
    async with traffic(servers.url, channels) as flow:
        await flow.first_after(busy, 0.0, WAIT)
        victim = await asyncio.to_thread(servers.slot_owner, slot)
        others = [
            c for c in channels if servers.slot_owner(probe.slots[probe.partition_of(c)]) != victim
        ]
        killed_at = time.monotonic()
        await asyncio.to_thread(servers.kill, victim)
        # Channels on the other primaries keep flowing during the failover.
        await flow.first_after(others[0], time.monotonic(), WAIT)
        resumed = await flow.first_after(busy, time.monotonic(), FAILOVER_BOUND) - killed_at
        promoted = await asyncio.to_thread(servers.wait_owner_changed, slot, victim)
        sub_losses, refused_counted = flow.sub.node_losses, flow.pub.publish_errors
        flow.stop.set()
    print(
        f"\nkill -9 primary {victim} (slot {slot}); replica {promoted} promoted; delivery on it "
        f"again after {resumed:.2f} s; refused publishes {flow.refused} (counted "
        f"{refused_counted}), lost in flight {flow.lost()} of {sum(map(len, flow.sent.values()))}"
    )
    assert resumed < FAILOVER_BOUND
    assert sub_losses >= 1
    assert refused_counted == flow.refused
    assert flow.sub.reconnects >= 1


async def test_kill_the_primary_of_a_history_topic(disposable_cluster: RedisClusterServers) -> None:
    """kill -9 the primary holding a history topic's slot, its replica in sync. After the
    promotion the topic is in a new epoch: the broker cannot tell whether a promoted replica
    had every append, and never lets one position name two events. Offsets go on from the
    replica's stream; a client back with a position of the old epoch gets ``recovered:
    false`` with the current position; a connected client receives the new epoch's events,
    in order; a position of the new epoch recovers."""
    from tests.test_history_distributed import numbers

    servers = disposable_cluster
    channels = [f"hist/t/rooms/f{i}" for i in range(100)]
    room = (await asyncio.to_thread(failover_target, servers, channels)).rsplit("/", 1)[1]
    topic = f"rooms/{room}"
    probe = RedisClusterBroker(servers.url)
    slot = probe.slots[probe.partition_of(f"hist/t/{topic}")]
    web = [
        UvicornServer(HISTORY_APP, env={"ASYNCWS_BROKER_URL": servers.url}, ready_path="/health")
        for _ in range(2)
    ]
    try:
        await asyncio.to_thread(start_all, web)
        a, b = web
        async with (
            WsClient(b.ws_url("/ws"), timeout=WAIT) as live,
            httpx.AsyncClient(timeout=WAIT) as http,
        ):

            async def publish(n: int) -> Position | None:
                response = await http.post(f"{a.url}/publish/{room}?n=1&start={n}")
                assert response.status_code in (200, 503), response.text
                if response.status_code == 503:
                    return None
                return Position(**response.json()["position"])

            await live.subscribe(topic)
            before = None
            for n in range(5):
                before = await publish(n)
            assert before == Position(5, before.epoch if before else "")
            await live.wait_for(lambda evs: len(numbers(evs, topic)) >= 5)
            victim = await asyncio.to_thread(servers.slot_owner, slot)
            await asyncio.to_thread(servers.wait_synced, victim)  # the replica has 1..5
            killed_at = time.monotonic()
            await asyncio.to_thread(servers.kill, victim)
            refused, after, n = 0, None, 5
            for _ in range(1500):  # bounded: about 15 s
                after = await publish(n)
                if after is not None:
                    break
                refused += 1
                await asyncio.sleep(0.01)
            took = time.monotonic() - killed_at
            assert after is not None, "publishes did not resume"
            assert after.epoch != before.epoch
            assert after.offset == before.offset + 1
            # The connected client gets the new epoch's events (it may miss the ones
            # published before its instance re-homed the subscription: a new epoch says so).
            last = after
            for n in range(6, 300):  # bounded
                if any(e.get("epoch") == after.epoch for e in live.events):
                    break
                published = await publish(n)
                last = published or last
                await asyncio.sleep(0.02)
            await live.wait_for(lambda evs: any(e.get("offset") == last.offset for e in evs))
            new = [e for e in live.events if e.get("epoch") == after.epoch]
            old = [e for e in live.events if e.get("epoch") == before.epoch]
            assert [e["offset"] for e in old] == [1, 2, 3, 4, 5]
            offsets = [e["offset"] for e in new]
            assert offsets == list(range(offsets[0], last.offset + 1)) and offsets[0] >= 6
            assert [e["data"]["n"] for e in new] == [o - 1 for o in offsets]
            async with WsClient(a.ws_url("/ws"), timeout=WAIT) as back:
                ack = await back.call("subscribe", topic=topic, since=before._asdict())
                assert ack["recovered"] is False, ack
                assert ack["position"] == last._asdict()
            async with WsClient(a.ws_url("/ws"), timeout=WAIT) as back:
                since = {"offset": after.offset, "epoch": after.epoch}
                ack = await back.call("subscribe", topic=topic, since=since)
                assert ack["recovered"] is True, ack
                await back.wait_for(lambda evs: len(evs) >= last.offset - after.offset)
                assert [e["offset"] for e in back.events] == list(
                    range(after.offset + 1, last.offset + 1)
                )
        print(
            f"\nhistory topic: kill -9 primary {victim}; publishes again after {took:.2f} s "
            f"({refused} refused, 503); epoch {before.epoch} -> {after.epoch}, offsets go on "
            f"at {after.offset}; the live client's first event of the new epoch: {offsets[0]}"
        )
    finally:
        for server in web:
            server.close()


# -- Sentinel -------------------------------------------------------------------------------


async def test_sentinel_follows_a_failover() -> None:
    with SentinelServers() as group:
        sub = create_broker(group.url, reconnect_max=0.5)
        pub = create_broker(group.url, reconnect_max=0.5)
        async with sub, pub:
            await sub.subscribe("s/1")
            await pub.publish("s/1", b"before")
            assert await sub.get_message(timeout=WAIT) == BrokerMessage("s/1", b"before")
            listener: asyncio.Queue[BrokerMessage] = asyncio.Queue()

            async def listen() -> None:
                async for message in sub.listen():
                    await listener.put(message)

            task = asyncio.create_task(listen())
            old = group.primary.port
            killed_at = time.monotonic()
            group.primary._process.signal(signal.SIGKILL)
            refused = 0
            got: BrokerMessage | None = None
            for n in range(2000):  # bounded: about 20 s at most
                try:
                    await pub.publish("s/1", str(n))
                except BrokerError:
                    refused += 1
                    await asyncio.sleep(0.01)
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        got = await listener.get()
                        break
            took = time.monotonic() - killed_at
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            new = await asyncio.to_thread(group.primary_port)
            print(
                f"\nSentinel failover {old} -> {new}: delivery again after {took:.2f} s, {refused} publishes refused"
            )
            assert got is not None and got.channel == "s/1"
            assert new != old
            assert int(getattr(pub, "publish_errors", 0)) == refused
