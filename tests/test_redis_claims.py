"""Claims and subscriptions of one loop tick go to Redis together (asyncws.brokers.redis_claims).

A connection storm with ids the clients chose: every connection claims its id and subscribes
its own channel. Made one by one, past redis-py's 100 pooled connections the claims failed
and the server replaced the clients' ids. These tests count what reaches the test's own Redis
(``INFO stats``/``commandstats``), check that each caller still gets its own answer, and open
a storm of real websockets against a real uvicorn.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect

from asyncws.brokers.redis import RedisBroker
from asyncws.channels import Channels
from asyncws.claims import IdClaims
from asyncws.exceptions import BrokerError
from tests.clusters import RedisClusterServers
from tests.servers import RedisServer, UvicornServer

pytestmark = pytest.mark.redis

WAIT = 20.0


@pytest.fixture
def ns() -> str:
    """A channel prefix of the test's own."""
    return f"ns{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def admin(url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def counts(client: Redis) -> dict[str, int]:
    """Socket reads Redis made (one per batch of commands that arrived together, about), and
    the calls of the commands we look at."""
    stats = await client.info("stats")
    commands = await client.info("commandstats")
    out = {"reads": int(stats["total_reads_processed"])}
    for name in ("evalsha", "eval", "subscribe", "psubscribe", "unsubscribe"):
        out[name] = int(commands.get(f"cmdstat_{name}", {}).get("calls", 0))
    return out


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after}


async def test_concurrent_claims_go_in_few_writes_and_each_gets_its_answer(
    redis_url: str, ns: str
) -> None:
    n = 600
    async with admin(redis_url) as client, RedisBroker(redis_url) as broker:
        # every third key is held by another instance; every fifth already by us (a renewal)
        for i in range(n):
            if i % 3 == 0:
                await client.set(f"{ns}/claim/{i}", "other", px=60_000)
            elif i % 5 == 0:
                await client.set(f"{ns}/claim/{i}", "me", px=1_000)
        before, batches = await counts(client), broker.claim_batches
        async with asyncio.timeout(WAIT):
            granted = await asyncio.gather(
                *(broker.claim(f"{ns}/claim/{i}", "me", 60.0) for i in range(n))
            )
        used = delta(await counts(client), before)
        assert granted == [i % 3 != 0 for i in range(n)]
        assert used["evalsha"] == n  # one script run per claim: each caller's own answer
        assert used["eval"] == 0
        assert broker.claim_batches - batches <= 2  # 1,000 a batch at most
        assert used["reads"] < n // 10  # not one round trip each (counts INFO's own, too)
        for i in range(n):
            owner = await client.get(f"{ns}/claim/{i}")
            assert owner == ("other" if i % 3 == 0 else "me")
            if i % 5 == 0 and i % 3 != 0:
                assert await client.pttl(f"{ns}/claim/{i}") > 10_000  # renewed


async def test_concurrent_releases_batch_and_leave_other_owners_alone(
    redis_url: str, ns: str
) -> None:
    n = 300
    async with admin(redis_url) as client, RedisBroker(redis_url) as broker:
        for i in range(n):
            await client.set(f"{ns}/claim/{i}", "me" if i % 2 else "other", px=60_000)
        before = await counts(client)
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(broker.release(f"{ns}/claim/{i}", "me") for i in range(n)))
        used = delta(await counts(client), before)
        assert used["reads"] < n // 10
        assert used["evalsha"] == n
        left = [i for i in range(n) if await client.exists(f"{ns}/claim/{i}")]
        assert left == list(range(0, n, 2))


async def test_a_failed_claim_batch_fails_each_caller(fresh_redis: RedisServer, ns: str) -> None:
    async with RedisBroker(fresh_redis.url, command_timeout=0.5) as broker:
        assert await broker.claim(f"{ns}/claim/warm", "me", 60.0)
        fresh_redis.pause()
        try:
            async with asyncio.timeout(WAIT):
                results = await asyncio.gather(
                    *(broker.claim(f"{ns}/claim/{i}", "me", 60.0) for i in range(50)),
                    return_exceptions=True,
                )
        finally:
            fresh_redis.resume()
        assert all(isinstance(r, BrokerError) for r in results)
        assert len({id(r) for r in results}) == 50  # one error per caller, not one shared
        async with asyncio.timeout(WAIT):
            assert await broker.claim(f"{ns}/claim/after", "me", 60.0)  # the next batch works


async def test_claims_survive_a_flushed_script_cache(redis_url: str, ns: str) -> None:
    async with admin(redis_url) as client, RedisBroker(redis_url) as broker:
        assert await broker.claim(f"{ns}/claim/a", "me", 60.0)
        await client.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
        async with asyncio.timeout(WAIT):
            got = await asyncio.gather(
                broker.claim(f"{ns}/claim/a", "other", 60.0),
                broker.claim(f"{ns}/claim/b", "me", 60.0),
            )
        assert got == [False, True]


async def test_a_cancelled_claim_does_not_fail_those_batched_with_it(
    redis_url: str, ns: str
) -> None:
    async with RedisBroker(redis_url) as broker:
        tasks = [
            asyncio.ensure_future(broker.claim(f"{ns}/claim/{i}", "me", 60.0)) for i in range(20)
        ]
        await asyncio.sleep(0)  # the first leads the batch; the others joined it
        tasks[0].cancel()
        async with asyncio.timeout(WAIT):
            results = await asyncio.gather(*tasks[1:])
        assert results == [True] * 19
        assert tasks[0].cancelled()


async def test_renewals_are_one_pipelined_write(redis_url: str, ns: str) -> None:
    async with admin(redis_url) as client, RedisBroker(redis_url) as broker:
        claims = IdClaims(broker, Channels(ns, "inst0001"), "inst0001")
        claims.ttl = 60.0
        ids = [f"user-{i}" for i in range(400)]
        async with asyncio.timeout(WAIT):
            assert all(await asyncio.gather(*(claims.claim(c) for c in ids)))
        for c in ids[:200]:  # as if much of the ttl had passed
            await client.pexpire(claims.channels.claim(c), 1_000)
        before, batches = await counts(client), broker.claim_batches
        async with asyncio.timeout(WAIT):
            assert await claims.renew() == 400
        used = delta(await counts(client), before)
        assert broker.claim_batches - batches == 1
        assert used["evalsha"] == 400
        assert used["reads"] < 40
        for c in ids[:200]:
            assert await client.pttl(claims.channels.claim(c)) > 10_000


async def test_concurrent_subscribes_are_one_command_and_all_in_effect(
    redis_url: str, ns: str
) -> None:
    n = 500
    async with admin(redis_url) as client, RedisBroker(redis_url) as broker:
        before, batches = await counts(client), broker.subscribe_batches
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(broker.subscribe(f"{ns}/c/{i}") for i in range(n)))
        used = delta(await counts(client), before)
        assert used["subscribe"] <= 2  # SUBSCRIBE c0 c1 ... : one command (per 1,000)
        assert broker.subscribe_batches - batches <= 2
        # each returned once Redis confirmed it: every channel is subscribed now
        assert len(await client.pubsub_channels(f"{ns}/c/*")) == n
        # and in order with unsubscribes of the same tick
        async with asyncio.timeout(WAIT):
            await asyncio.gather(
                *(broker.unsubscribe(f"{ns}/c/{i}") for i in range(0, n, 2)),
                broker.subscribe(f"{ns}/p/+"),
            )
        left = await client.pubsub_channels(f"{ns}/c/*")
        assert sorted(int(c.rsplit("/", 1)[1]) for c in left) == list(range(1, n, 2))
        assert await client.pubsub_numpat() == 1


async def _connect_with_id(url: str, frame_id: int) -> tuple[ClientConnection, dict[str, Any]]:
    """Open, subscribe (with an id), and return the first frame the server sent."""
    ws = await connect(url, open_timeout=WAIT)
    await ws.send(json.dumps({"type": "subscribe", "id": frame_id, "topic": f"storm/{frame_id}"}))
    first = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    return ws, first


async def test_a_storm_of_client_chosen_ids_keeps_every_id(redis_url: str, ns: str) -> None:
    n = 500
    server = UvicornServer(
        "tests.apps.seed_app:app",
        env={"ASYNCWS_BROKER_URL": redis_url, "ASYNCWS_BROKER_CHANNEL": ns},
        extra_args=["--backlog", "2048"],
    ).start()
    opened: list[ClientConnection] = []
    try:
        async with asyncio.timeout(120):
            got = await asyncio.gather(
                *(_connect_with_id(server.ws_url(f"/ws/storm-{i}"), i) for i in range(n))
            )
        opened = [ws for ws, _ in got]
        firsts = [first for _, first in got]
        # a replaced id would have been told first (set_conn_id comes before any answer)
        assert [f.get("type") for f in firsts] == ["ack"] * n
        assert [f.get("id") for f in firsts] == list(range(n))
        async with admin(redis_url) as client:
            keys = [key async for key in client.scan_iter(f"{ns}/claim/*", count=1000)]
            assert len(keys) == n
            owners = set(await client.mget(keys))
            assert len(owners) == 1  # all claimed by the one instance
            channels = await client.pubsub_channels(f"{ns}/c/*")
            assert sorted(channels) == sorted(f"{ns}/c/storm-{i}" for i in range(n))
    finally:
        await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
        server.stop()


async def _cluster_calls(ports: list[int], names: tuple[str, ...]) -> dict[str, int]:
    """Calls of ``names`` summed over the cluster's nodes (INFO commandstats)."""
    out = dict.fromkeys(names, 0)
    for port in ports:
        async with admin(f"redis://127.0.0.1:{port}/0") as node:
            commands = await node.info("commandstats")
        for name in names:
            out[name] += int(commands.get(f"cmdstat_{name}", {}).get("calls", 0))
    return out


@pytest.mark.cluster
async def test_cluster_claims_and_subscribes_are_batched(
    redis_cluster: RedisClusterServers, cluster_url: str, ns: str
) -> None:
    from asyncws.brokers.redis_cluster import RedisClusterBroker

    n = 400
    ports = list(redis_cluster.ports)
    async with RedisClusterBroker(cluster_url) as a, RedisClusterBroker(cluster_url) as b:
        async with asyncio.timeout(WAIT):
            assert all(
                await asyncio.gather(
                    *(b.claim(f"{ns}/claim/{i}", "b", 60.0) for i in range(0, n, 4))
                )
            )
        before, batches = await _cluster_calls(ports, ("evalsha",)), a.claim_batches
        async with asyncio.timeout(WAIT):
            granted = await asyncio.gather(
                *(a.claim(f"{ns}/claim/{i}", "a", 60.0) for i in range(n))
            )
        assert granted == [i % 4 != 0 for i in range(n)]  # b's ids refused, the others a's
        assert a.claim_batches - batches == 1
        after = await _cluster_calls(ports, ("evalsha",))
        assert after["evalsha"] - before["evalsha"] == n  # each claim its own script run

        before = await _cluster_calls(ports, ("ssubscribe",))
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(a.subscribe(f"{ns}/c/{i}") for i in range(n)))
        after = await _cluster_calls(ports, ("ssubscribe",))
        # one SSUBSCRIBE per partition (128) at most, not one per channel
        assert after["ssubscribe"] - before["ssubscribe"] <= a.partitions
        got: list[str] = []
        async with asyncio.timeout(WAIT):
            await asyncio.gather(*(b.publish(f"{ns}/c/{i}", b"%d" % i) for i in range(n)))
            async for message in a.listen():
                got.append(message.channel)
                if len(got) == n:
                    break
        assert sorted(got) == sorted(f"{ns}/c/{i}" for i in range(n))
