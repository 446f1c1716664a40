"""Several uvicorn instances of the seed app (tests/apps/seed_app.py) on one real Redis.

Real websocket clients (the ``websockets`` package) connect to different instances; every
delivery is checked "exactly once, on every instance": after the messages under test the
sender broadcasts a marker, and each client's frames before the marker must be exactly the
expected ones. A marker published after the messages under test (by the same connection, or
after an HTTP publish returned) reaches every instance after them, because Redis delivers the
messages of one subscriber connection in the order it processed the publishes. Nothing here
sleeps to wait for something: every wait is for a frame or a bounded poll of /health.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.servers import RedisServer, UvicornServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]

APP = "tests.apps.seed_app:app"
NS = "asyncws"  # seed_app's broker channel (ASYNCWS_BROKER_CHANNEL is not set)
WAIT = 5.0


# -- servers ---------------------------------------------------------------------------------


def start_all(servers: Sequence[UvicornServer]) -> None:
    with ThreadPoolExecutor(len(servers)) as pool:
        for future in [pool.submit(s.start) for s in servers]:
            future.result()


def seed_servers(redis: RedisServer, count: int, **env: str) -> list[UvicornServer]:
    return [
        UvicornServer(APP, env={"ASYNCWS_BROKER_URL": redis.url, **env}, ready_path="/health")
        for _ in range(count)
    ]


@dataclass
class Cluster:
    redis: RedisServer
    servers: list[UvicornServer]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Three instances (A, B, C) on one private Redis, shared by the tests of this module."""
    with RedisServer() as redis:
        # The flood test publishes 32 MB from one connection as fast as it can: its subject is
        # slow readers, so the per-connection publish budget (4 MiB/s) is raised here.
        servers = seed_servers(redis, 3, ASYNCWS_FANOUT_BYTES_RATE=str(1 << 30))
        try:
            start_all(servers)
            yield Cluster(redis, servers)
        finally:
            for server in servers:
                server.close()


# -- clients ---------------------------------------------------------------------------------


class Peer:
    """A websocket client of the seed endpoint on one instance."""

    def __init__(self, ws: ClientConnection, name: str) -> None:
        self.ws = ws
        self.name = name

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self, timeout: float = WAIT) -> Any:
        async with asyncio.timeout(timeout):
            return json.loads(await self.ws.recv())

    async def subscribe(self, topic: str) -> None:
        """Subscribe and wait for the ack: the subscription is in effect on every instance's
        broker from then on."""
        frame_id = uuid.uuid4().hex[:10]
        await self.send({"type": "subscribe", "topic": topic, "id": frame_id})
        assert await self.recv() == {"type": "ack", "id": frame_id}

    async def until(self, marker: Any, timeout: float = WAIT) -> list[Any]:
        """The frames before ``marker``."""
        out: list[Any] = []
        async with asyncio.timeout(timeout):
            while (frame := await self.recv(timeout)) != marker:
                out.append(frame)
        return out


@contextlib.asynccontextmanager
async def peers(*specs: tuple[UvicornServer, str]) -> AsyncIterator[list[Peer]]:
    """Connect ``(server, path-after-/ws/)`` clients; close them all at the end."""
    async with contextlib.AsyncExitStack() as stack:
        out = []
        for server, path in specs:
            ws = await stack.enter_async_context(
                connect(server.ws_url(f"/ws/{path}"), open_timeout=WAIT, max_size=1 << 22)
            )
            out.append(Peer(ws, path))
        yield out


async def marker_from(sender: Peer, everyone: Sequence[Peer]) -> list[list[Any]]:
    """Broadcast a marker from ``sender``; what each peer received before it."""
    marker = {"marker": uuid.uuid4().hex}
    await sender.send({"type": "broadcast", **marker})
    return list(await asyncio.gather(*(p.until(marker) for p in everyone)))


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def health(http: httpx.AsyncClient, server: UvicornServer) -> dict[str, Any]:
    response = await http.get(server.url + "/health", timeout=2.0)
    data: dict[str, Any] = response.json()
    return data


async def wait_until_resubscribed(
    http: httpx.AsyncClient,
    servers: Sequence[UvicornServer],
    redis_url: str,
    subscriptions: dict[str, int],
    within: float = 15.0,
) -> float:
    """Bounded poll: every instance's /health says the broker is connected, and the (restarted)
    Redis counts the expected subscribers per channel again. Returns the time it took."""
    started = time.monotonic()
    client = aioredis.Redis.from_url(redis_url)
    try:
        for _ in range(int(within / 0.05)):
            try:
                states = [(await health(http, s))["broker"] for s in servers]
                counts = dict(await client.pubsub_numsub(*subscriptions))
            except (OSError, httpx.HTTPError, aioredis.RedisError):
                states, counts = [], {}
            connected = bool(states) and all(state == "connected" for state in states)
            if connected and all(counts.get(ch.encode()) == n for ch, n in subscriptions.items()):
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise TimeoutError(f"not resubscribed within {within}s: {states} {counts}")
    finally:
        await client.aclose()


def rss_kib(pid: int | None) -> int:
    assert pid is not None
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


# -- delivery across instances -------------------------------------------------------------


async def test_topics_and_wildcards_across_instances(cluster: Cluster) -> None:
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
        got = await marker_from(sender, everyone)
    assert got == [
        [{"n": 1}],
        [{"n": 1}, {"n": 2}, {"n": 3}],
        [{"n": 1}],
        [{"n": 1}, {"n": 2}, {"n": 3}],
        [{"n": 5}],
        [],
    ]


async def test_broadcast_across_instances(cluster: Cluster) -> None:
    specs = [(server, uid(f"bc{i}")) for i, server in enumerate(cluster.servers * 2)]
    async with peers(*specs) as everyone:
        await everyone[1].send({"type": "broadcast", "hello": "all"})
        got = await marker_from(everyone[1], everyone)
    assert got == [[{"hello": "all"}]] * 6


async def test_direct_to_connection_ids_across_instances(cluster: Cluster) -> None:
    a, b, c = cluster.servers
    x, y, z = uid("x"), uid("y"), uid("z")
    async with peers((a, x), (b, y), (c, z)) as everyone:
        px, _, _ = everyone
        await px.send({"type": "send_by_conn_id", "conn_id": y, "v": 1})
        await px.send({"type": "send_by_conn_id", "conn_id": [x, z, "nobody"], "v": 2})
        got = await marker_from(px, everyone)
    assert got == [[{"v": 2}], [{"v": 1}], [{"v": 2}]]


async def test_a_connection_is_addressable_once_connected(cluster: Cluster) -> None:
    """As soon as the handshake completed, a message to the new connection's id or user from
    another instance reaches it (the instance subscribed before accepting)."""
    a, _, c = cluster.servers
    async with peers((a, uid("sender"))) as (sender,):
        for i in range(15):
            conn_id, user = uid("new"), uid("user")
            async with peers((c, f"{conn_id}/user/{user}")) as (new,):
                await sender.send({"type": "send_by_conn_id", "conn_id": conn_id, "i": i})
                assert await new.recv() == {"i": i}
            async with (
                peers((c, f"{uid('new')}/user/{user}")) as (again,),
                httpx.AsyncClient() as http,
            ):
                response = await http.post(f"{a.url}/send_user/{user}", json={"i": i})
                assert response.status_code == 200
                assert await again.recv() == {"i": i}


async def test_user_and_http_publish_across_instances(cluster: Cluster) -> None:
    a, b, c = cluster.servers
    u1, u2 = uid("user1"), uid("user2")
    async with (
        peers(
            (a, f"{uid('c')}/user/{u1}"), (c, f"{uid('c')}/user/{u1}"), (b, f"{uid('c')}/user/{u2}")
        ) as everyone,
        httpx.AsyncClient() as http,
    ):
        u1a, _u1c, u2b = everyone
        await u2b.subscribe("http/+")
        response = await http.post(f"{b.url}/send_user/{u1}", json={"for": "u1"})
        assert response.status_code == 200
        response = await http.post(f"{c.url}/publish/http/1", json={"via": "http"})
        assert response.status_code == 200
        response = await http.post(f"{c.url}/publish/http/+", json={})
        assert response.status_code == 400
        got = await marker_from(u1a, everyone)
    assert got == [[{"for": "u1"}], [{"for": "u1"}], [{"via": "http"}]]


async def test_subscribe_ack_then_publish_from_another_instance(cluster: Cluster) -> None:
    """Once the ack arrived, a publish from another instance is delivered, every time."""
    a, b, _ = cluster.servers
    async with peers((b, uid("sub")), (a, uid("pub"))) as (sub, pub):
        for i in range(30):
            topic = f"race/{uuid.uuid4().hex[:6]}" if i % 2 else f"race/{i}/+"
            await sub.subscribe(topic)
            await pub.send({"type": "send", "topic": topic.replace("+", "x"), "i": i})
            assert await sub.recv() == {"i": i}
        got = await marker_from(pub, [sub, pub])
    assert got == [[], []]


async def test_garbage_on_redis_is_skipped(cluster: Cluster) -> None:
    a, b, _ = cluster.servers
    async with peers((a, uid("ga")), (b, uid("gb"))) as (ga, gb):
        await ga.subscribe("g/1")
        await gb.subscribe("g/1")
        raw = aioredis.Redis.from_url(cluster.redis.url)
        try:
            for channel in (f"{NS}/t/g/1", f"{NS}/b"):
                for junk in (
                    b"",
                    b"not an asyncws message",
                    b"aws1:no newline",
                    b"aws1:zz:1\n\xff\xfe not utf-8",
                    b"aws1:zz:x:notatime\n{}",
                    bytes(range(256)),
                ):
                    await raw.publish(channel, junk)
        finally:
            await raw.aclose()
        await ga.send({"type": "send", "topic": "g/1", "ok": 1})
        assert await ga.recv() == {"ok": 1}
        assert await gb.recv() == {"ok": 1}
        got = await marker_from(gb, [ga, gb])
    assert got == [[], []]
    async with httpx.AsyncClient() as http:
        for server in (a, b):
            assert (await health(http, server))["broker"] == "connected"


async def test_latency_between_two_instances(cluster: Cluster) -> None:
    """A client on instance A publishes, a client on instance B receives: one message at a
    time, 200 times. Printed, not asserted (run with -s to see it)."""
    a, b, _ = cluster.servers
    async with peers((a, uid("lat-pub")), (b, uid("lat-sub"))) as (pub, sub):
        await sub.subscribe("lat/1")
        samples = []
        for i in range(220):
            started = time.perf_counter()
            await pub.send({"type": "send", "topic": "lat/1", "i": i})
            assert await sub.recv() == {"i": i}
            if i >= 20:  # the first ones warm up connections and caches
                samples.append(time.perf_counter() - started)
    samples.sort()
    median = statistics.median(samples)
    p90 = samples[int(len(samples) * 0.9)]
    print(
        f"\ntopic message A -> Redis -> B, {len(samples)} messages: "
        f"median {median * 1e3:.3f} ms, p90 {p90 * 1e3:.3f} ms, max {samples[-1] * 1e3:.3f} ms"
    )
    assert len(samples) == 200


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    assert pid is not None
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_idle_instance_uses_no_cpu(cluster: Cluster) -> None:
    """An instance with a connected, subscribed client and nothing to do stays idle (the
    seed's broker listener polls in a loop and keeps a core busy)."""
    a = cluster.servers[0]
    async with peers((a, uid("idle"))) as (idle,):
        await idle.subscribe("idle/+")
        before = cpu_seconds(a.pid)
        await asyncio.sleep(2.0)  # the measurement window, not a synchronization
        used = cpu_seconds(a.pid) - before
        print(f"\nidle instance CPU over 2 s: {used:.3f} s")
        assert used < 0.1
        await idle.send({"type": "send", "topic": "idle/1", "still": "alive"})
        assert await idle.recv() == {"still": "alive"}


# -- Redis outages -------------------------------------------------------------------------


async def test_redis_restart_and_outage(tmp_path: Any) -> None:
    with RedisServer() as redis:
        servers = seed_servers(redis, 2)
        try:
            start_all(servers)
            await _restart_scenario(redis, servers)
        finally:
            for server in servers:
                server.close()


async def _restart_scenario(redis: RedisServer, servers: list[UvicornServer]) -> None:
    a, b = servers
    channel = f"{NS}/t/r/1"
    async with peers((a, uid("ra")), (b, uid("rb"))) as (ra, rb), httpx.AsyncClient() as http:
        await ra.subscribe("r/1")
        await rb.subscribe("r/+")
        await ra.send({"type": "send", "topic": "r/1", "n": 0})
        assert await ra.recv() == {"n": 0}
        assert await rb.recv() == {"n": 0}

        # 1. A quick restart: both instances reconnect and replay their subscriptions.
        await asyncio.to_thread(redis.restart)
        took = await wait_until_resubscribed(http, servers, redis.url, {channel: 1})
        glob_subscribers = await _numpat(redis.url)
        assert glob_subscribers >= 1  # B's 'r/+' pattern is back too
        print(f"\nresubscribed {took:.2f}s after the restart")
        await ra.send({"type": "send", "topic": "r/1", "n": 1})
        await rb.send({"type": "send", "topic": "r/1", "n": 2})
        # Two publishers (two instances): each gets both, in either order.
        expected = [{"n": 1}, {"n": 2}]
        for peer in (ra, rb):
            assert sorted([await peer.recv(), await peer.recv()], key=str) == expected

        # 2. Redis down: publishing fails loudly and quickly; local work goes on.
        await asyncio.to_thread(redis.stop)
        started = time.monotonic()
        response = await http.post(f"{a.url}/publish/r/1", json={"lost": True}, timeout=10)
        assert response.status_code == 503, response.text
        assert time.monotonic() - started < 3.0
        assert "error" in response.json()
        await ra.send({"type": "send", "topic": "r/1", "id": "p1", "lost": True})
        error = await ra.recv()
        assert (error["type"], error["code"], error["id"]) == ("error", "broker_unavailable", "p1")
        await ra.subscribe("local/1")  # subscribing still works (replayed on reconnect)

        await asyncio.to_thread(redis.start)
        await wait_until_resubscribed(http, servers, redis.url, {channel: 1, f"{NS}/t/local/1": 1})
        await rb.send({"type": "send", "topic": "r/1", "n": 3})
        await rb.send({"type": "send", "topic": "local/1", "n": 4})
        got = await marker_from(rb, [ra, rb])
        assert got == [[{"n": 3}, {"n": 4}], [{"n": 3}]]
        response = await http.post(f"{b.url}/publish/r/1", json={"n": 5})
        assert response.status_code == 200
        assert await ra.recv() == {"n": 5}
        assert await rb.recv() == {"n": 5}


async def _numpat(url: str) -> int:
    client = aioredis.Redis.from_url(url)
    try:
        return int(await client.pubsub_numpat())
    finally:
        await client.aclose()


# -- a client that stops reading -------------------------------------------------------------


def small_window_socket(port: int) -> socket.socket:
    """A client socket with a small receive buffer (no autotuning), like a slow mobile link:
    without it, Linux lets the kernel buffer tens of MB for a client that does not read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(WAIT)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_client_that_stops_reading_is_closed_and_others_keep_receiving(
    cluster: Cluster,
) -> None:
    a = cluster.servers[0]
    with UvicornServer(
        APP,
        env={"ASYNCWS_BROKER_URL": cluster.redis.url, "ASYNCWS_MAX_QUEUE": "256"},
        ready_path="/health",
    ) as s:
        # 8000 messages of 4 kB: 32 MB for each subscriber. Random padding, and no
        # permessage-deflate for the slow client: "xxx..." would shrink a thousandfold.
        total, batch = 8000, 250
        slow_ws = await connect(
            s.ws_url(f"/ws/{uid('slow')}"),
            sock=small_window_socket(s.port),
            open_timeout=WAIT,
            compression=None,
        )
        try:
            slow = Peer(slow_ws, "slow")
            await slow.subscribe("flood/1")  # from here on it never reads, until the end
            async with (
                peers((s, uid("normal")), (a, uid("pub"))) as (normal, pub),
                httpx.AsyncClient() as http,
            ):
                await normal.subscribe("flood/1")
                rss_before = rss_kib(s.pid)
                received = 0
                async with asyncio.timeout(40):
                    for start in range(0, total, batch):
                        for i in range(start, start + batch):
                            pad = secrets.token_urlsafe(3000)
                            await pub.send({"type": "send", "topic": "flood/1", "i": i, "p": pad})
                        # The normal client keeps up: it gets every message, in order.
                        while received < start + batch:
                            frame = await normal.recv()
                            assert frame["i"] == received
                            received += 1
                rss_growth_mib = (rss_kib(s.pid) - rss_before) / 1024
                print(f"\nflooded instance RSS growth: {rss_growth_mib:.1f} MiB")
                assert rss_growth_mib < 100
                # The slow one was dropped by the server (its queue overflowed); the normal
                # one is the only connection left there, and it still works.
                assert (await health(http, s))["connections"] == 1
                got = await marker_from(pub, [normal, pub])
                assert got == [[], []]

            # Reading again, the slow client gets what was in flight, then the 1013 close.
            frames = 0
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(20):
                    while True:
                        await slow_ws.recv()
                        frames += 1
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1013
            assert frames < total
            print(f"the slow client got {frames} of {total} messages, then 1013")
        finally:
            await slow_ws.close()
