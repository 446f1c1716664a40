"""Presence costs, printed: per connect/disconnect (server and Redis CPU), query latency at 10
and 10,000 members, Redis memory per member.

    python benchmarks/presence_bench.py [--cycles 2000] [--members 10000] [--connects 500]

Starts its own redis-server on a free port (stopped by PID at the end), then:

1. **connect + subscribe + disconnect, end to end**: one uvicorn instance of
   tests/apps/presence_app.py on that Redis; ``--connects`` websockets one after the other
   each connect, subscribe to a room and close, once on ``plain/{room}`` (no presence) and
   once on ``rooms/{room}`` (presence by user, info per member, join/leave events to one
   watcher), twice each, alternating. The difference of server and Redis CPU (``/proc``) per
   cycle is what presence costs a connect and a disconnect.
2. **the tracker alone**: `asyncws.presence.PresenceTracker` on a real `RedisBroker` in this
   process, ``--cycles`` join+leave pairs (one script call each plus the event publish).
3. **queries** at 10 and ``--members`` members, and the Redis memory per member.

Every loop is bounded in count.
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


async def run(cycles: int, members: int, connects: int) -> None:
    with RedisServer() as redis:
        await end_to_end(redis, connects)
        manager = WebSocketManager("bench", broker_url=redis.url)
        await manager.startup()
        try:
            tracker = PresenceTracker(manager)
            policy = PresencePolicy(info=lambda c: {"name": c.user_id})
            # -- join + leave cost ------------------------------------------------------------
            for i in range(50):  # warm up (scripts loaded, pools open)
                c = conn(i)
                await tracker.join(c, "rooms/warm", policy)
                await tracker.leave(c, "rooms/warm")
            server0, redis0 = time.process_time(), cpu_s(redis.pid)
            wall0 = time.perf_counter()
            for i in range(cycles):
                c = conn(i)
                await tracker.join(c, "rooms/cost", policy)
                await tracker.leave(c, "rooms/cost")
            wall = time.perf_counter() - wall0
            server, rcpu = time.process_time() - server0, cpu_s(redis.pid) - redis0
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

            # -- memory per member -------------------------------------------------------------
            client: Any = manager.broker._redis  # type: ignore[attr-defined]
            keys = tracker.store.keys("rooms/big")  # type: ignore[attr-defined]
            total = 0
            for key in keys:
                total += int(await client.memory_usage(key, samples=0) or 0)
            print(
                f"Redis memory: {total} bytes for {members} members "
                f"({total / members:.0f} bytes per member; MEMORY USAGE SAMPLES 0 of the 3 keys)"
            )
        finally:
            await tracker.stop()
            await manager.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--connects", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(
        run(min(args.cycles, 100_000), min(args.members, 200_000), min(args.connects, 20_000))
    )


if __name__ == "__main__":
    main()
