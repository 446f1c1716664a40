"""Presence costs, printed: per join+leave (server and Redis CPU), query latency at 10 and
10,000 members, Redis memory per member.

    python benchmarks/presence_bench.py [--cycles 2000] [--members 10000] [--on both]

Starts its own redis-server on a free port (``--on cluster``/``both``: also a 6-node Redis
Cluster), stopped by PID at the end, and drives `asyncws.presence.PresenceTracker` on a real
`RedisBroker` (or `RedisClusterBroker`) in this process: a join and a leave are what a
subscribe and an unsubscribe (or a disconnect) of a presence topic add, one script call each
plus the join/leave event publish. On the cluster, Redis CPU is the primaries'. The sweep
(one heartbeat's, with nothing expired) is timed too: one script per topic on one Redis, one
per partition (128) on the cluster. Every loop is bounded in count.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asyncws import WebSocketManager
from asyncws.presence import PresencePolicy, PresenceTracker
from benchmarks._harness import RedisServer, cpu_s
from tests.clusters import RedisClusterServers


class _Conn:
    """What the tracker reads of a connection (hashed by identity, like `Connection`)."""

    def __init__(self, i: int) -> None:
        self.id = f"c{i:08d}"
        self.user_id = f"user-{i:06d}"


def conn(i: int) -> Any:
    return _Conn(i)


async def run(name: str, url: str, pids: list[int | None], cycles: int, members: int) -> None:
    def redis_cpu() -> float:
        return sum(cpu_s(pid) for pid in pids)

    print(f"\n== {name}")
    manager = WebSocketManager("bench", broker_url=url)
    await manager.startup()
    try:
        tracker = PresenceTracker(manager)
        policy = PresencePolicy(info=lambda c: {"name": c.user_id})
        # -- join + leave cost ------------------------------------------------------------
        for i in range(50):  # warm up (scripts loaded, pools open)
            c = conn(i)
            await tracker.join(c, "rooms/warm", policy)
            await tracker.leave(c, "rooms/warm")
        server0, redis0 = time.process_time(), redis_cpu()
        wall0 = time.perf_counter()
        for i in range(cycles):
            c = conn(i)
            await tracker.join(c, "rooms/cost", policy)
            await tracker.leave(c, "rooms/cost")
        wall = time.perf_counter() - wall0
        server, rcpu = time.process_time() - server0, redis_cpu() - redis0
        print(f"join+leave, {cycles} cycles (events on, Redis on 127.0.0.1):")
        print(f"  wall           {wall / cycles * 1e6:8.1f} us per join+leave")
        print(f"  server CPU     {server / cycles * 1e6:8.1f} us per join+leave")
        print(f"  Redis CPU      {rcpu / cycles * 1e6:8.1f} us per join+leave")

        # -- query latency -----------------------------------------------------------------
        for size, topic in ((10, "rooms/small"), (members, "rooms/big")):
            for start in range(0, size, 50):
                await asyncio.gather(
                    *(
                        tracker.join(conn(i), topic, policy)
                        for i in range(start, min(size, start + 50))
                    )
                )
            assert await tracker.count(topic) == size
            for label, limit in (("presence (all)", size), ("presence (cap 1000)", 1000)):
                times = []
                for _ in range(20 if size > 1000 else 200):
                    t0 = time.perf_counter()
                    found, count = await tracker.members(topic, limit)
                    times.append(time.perf_counter() - t0)
                    assert count == size and len(found) == min(size, limit)
                print(
                    f"{label:20s} at {size:6d} members: median "
                    f"{statistics.median(times) * 1e3:7.2f} ms, max {max(times) * 1e3:7.2f} ms"
                )
            times = []
            for _ in range(200):
                t0 = time.perf_counter()
                await tracker.count(topic)
                times.append(time.perf_counter() - t0)
            print(
                f"{'presence_stats':20s} at {size:6d} members: median "
                f"{statistics.median(times) * 1e3:7.2f} ms"
            )

        # -- one sweep ---------------------------------------------------------------------
        times = []
        server0, redis0 = time.process_time(), redis_cpu()
        for _ in range(20):
            t0 = time.perf_counter()
            assert await tracker.store.sweep(time.time()) == []
            times.append(time.perf_counter() - t0)
        server, rcpu = (time.process_time() - server0) / 20, (redis_cpu() - redis0) / 20
        print(
            f"sweep (3 topics, nothing expired): median {statistics.median(times) * 1e3:.2f} ms"
            f" wall, {server * 1e3:.2f} ms server CPU, {rcpu * 1e3:.2f} ms Redis CPU"
        )

        # -- memory per member -------------------------------------------------------------
        store: Any = tracker.store
        total = 0
        for key in store.keys("rooms/big"):
            total += await memory_usage(manager.broker, store, key)
        print(
            f"Redis memory: {total} bytes for {members} members "
            f"({total / members:.0f} bytes per member; MEMORY USAGE SAMPLES 0 of the 3 keys)"
        )
    finally:
        await tracker.stop()
        await manager.shutdown()


async def memory_usage(broker: Any, store: Any, key: str) -> int:
    if hasattr(broker, "commands"):  # the cluster: on the primary of the topic's partition
        part = store.partition_of("rooms/big")
        used = await broker.commands.execute(part, "MEMORY", "USAGE", key, "SAMPLES", "0")
    else:
        used = await broker._redis.memory_usage(key, samples=0)
    return int(used or 0)


async def amain(args: argparse.Namespace) -> None:
    cycles, members = min(args.cycles, 100_000), min(args.members, 200_000)
    if args.on in ("redis", "both"):
        with RedisServer() as redis:
            await run("redis:// (one node)", redis.url, [redis.pid], cycles, members)
    if args.on in ("cluster", "both"):
        with RedisClusterServers() as cluster:
            primaries = [n.pid for n in cluster.nodes if cluster.is_primary(n.port)]
            await run("redis+cluster:// (3+3 nodes)", cluster.url, primaries, cycles, members)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--on", choices=("redis", "cluster", "both"), default="redis")
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
