"""Presence costs, printed: per connect/disconnect (server and Redis CPU), query latency at 10
and 10,000 members, Redis memory per member.

    python benchmarks/presence_bench.py [--cycles 2000] [--members 10000] [--connects 500]
                                        [--on redis|cluster|both]

Starts its own redis-server on a free port (``--on cluster``/``both``: also a 6-node Redis
Cluster), stopped by PID at the end. Then, on one Redis:

1. **connect + subscribe + disconnect, end to end** (``--connects``, 0 to skip): one uvicorn
   instance of tests/apps/presence_app.py; websockets one after the other each connect,
   subscribe to a room and close, on ``plain/{room}`` (no presence) and on ``rooms/{room}``
   (presence by user, info per member, join/leave events to one watcher), twice each,
   alternating. The difference of server and Redis CPU (``/proc``) per cycle is what
   presence costs a connect and a disconnect.

and on each broker it drives `asyncws.presence.PresenceTracker` on a real `RedisBroker` (or
`RedisClusterBroker`) in this process: a join and a leave are what a subscribe and an
unsubscribe (or a disconnect) of a presence topic add, one script call each plus the
join/leave event publish. On the cluster, Redis CPU is the primaries'. The sweep (one
heartbeat's, with nothing expired) is timed too: one script per topic on one Redis, one per
partition (128) on the cluster. Then the queries at 10 and ``--members`` members, and the
Redis memory per member. Every loop is bounded in count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asyncws import WebSocketManager
from asyncws.presence import PresencePolicy, PresenceTracker
from benchmarks._harness import RedisServer, Server, cpu_s
from tests.clusters import RedisClusterServers


class _Conn:
    """What the tracker reads of a connection (hashed by identity, like `Connection`)."""

    def __init__(self, i: int) -> None:
        self.id = f"c{i:08d}"
        self.user_id = f"user-{i:06d}"


def conn(i: int) -> Any:
    return _Conn(i)


async def _subscribe(ws: Any, topic: str) -> None:
    await ws.send(json.dumps({"type": "subscribe", "topic": topic, "id": 1}))
    while True:  # events (a join) may come before the ack
        frame = json.loads(await ws.recv())
        if frame.get("id") == 1:
            assert frame["type"] == "ack", frame
            return


async def connect_cycles(port: int, topic: str, count: int, tag: str) -> None:
    from websockets.asyncio.client import connect

    for i in range(count):
        async with connect(f"ws://127.0.0.1:{port}/ws?user={tag}{i}") as ws:
            await _subscribe(ws, topic)


async def end_to_end(redis: RedisServer, connects: int) -> dict[str, float]:
    """Server and Redis CPU per connect+subscribe+disconnect, per kind of topic (µs)."""
    from websockets.asyncio.client import connect

    server = Server(
        "tests.apps.presence_app:app",
        {"ASYNCWS_BROKER_URL": redis.url},
        Path(tempfile.mkdtemp(prefix="asyncws-presence-bench-")),
    ).start()
    try:
        async with connect(f"ws://127.0.0.1:{server.port}/ws?user=watcher") as watcher:
            for topic in ("plain/cost", "rooms/cost"):
                await _subscribe(watcher, topic)

            async def drain() -> None:
                async for _ in watcher:
                    pass

            reader = asyncio.get_running_loop().create_task(drain())
            await connect_cycles(server.port, "rooms/cost", 50, "warm")  # warm up
            runs: dict[str, list[tuple[float, float]]] = {"plain": [], "rooms": []}
            for round_ in range(2):
                for kind in ("plain", "rooms"):
                    s0, r0 = cpu_s(server.pid), cpu_s(redis.pid)
                    await connect_cycles(server.port, f"{kind}/cost", connects, f"{kind}{round_}-")
                    await asyncio.sleep(0.5)  # let the last disconnects be handled
                    runs[kind].append(
                        (
                            (cpu_s(server.pid) - s0) / connects * 1e6,
                            (cpu_s(redis.pid) - r0) / connects * 1e6,
                        )
                    )
            reader.cancel()
        assert server.log_errors() == 0, server.log_tail()
    finally:
        server.stop()
    out = {}
    for kind, pairs in runs.items():
        out[f"{kind}_server"] = min(p[0] for p in pairs)
        out[f"{kind}_redis"] = min(p[1] for p in pairs)
    print(f"connect + subscribe + disconnect, {connects} cycles x 2 (min), one uvicorn:")
    for what in ("server", "redis"):
        plain, rooms = out[f"plain_{what}"], out[f"rooms_{what}"]
        print(
            f"  {what:6s} CPU  plain topic {plain:7.0f} us, presence topic {rooms:7.0f} us: "
            f"presence adds {rooms - plain:6.0f} us per connect+disconnect"
        )
    return out


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
            if args.connects > 0:
                await end_to_end(redis, min(args.connects, 20_000))
            await run("redis:// (one node)", redis.url, [redis.pid], cycles, members)
    if args.on in ("cluster", "both"):
        with RedisClusterServers() as cluster:
            primaries = [n.pid for n in cluster.nodes if cluster.is_primary(n.port)]
            await run("redis+cluster:// (3+3 nodes)", cluster.url, primaries, cycles, members)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--connects", type=int, default=500)
    parser.add_argument("--on", choices=("redis", "cluster", "both"), default="redis")
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
