"""Presence costs, printed: per join+leave (server and Redis CPU), query latency at 10 and
10,000 members, Redis memory per member.

    python benchmarks/presence_bench.py [--cycles 2000] [--members 10000]

Starts its own redis-server on a free port (stopped by PID at the end) and drives
`asyncws.presence.PresenceTracker` on a real `RedisBroker` in this process: a join and a
leave are what a subscribe and an unsubscribe (or a disconnect) of a presence topic add, one
script call each plus the join/leave event publish. Every loop is bounded in count.
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


class _Conn:
    """What the tracker reads of a connection (hashed by identity, like `Connection`)."""

    def __init__(self, i: int) -> None:
        self.id = f"c{i:08d}"
        self.user_id = f"user-{i:06d}"


def conn(i: int) -> Any:
    return _Conn(i)


async def run(cycles: int, members: int) -> None:
    with RedisServer() as redis:
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
    args = parser.parse_args()
    asyncio.run(run(min(args.cycles, 100_000), min(args.members, 200_000)))


if __name__ == "__main__":
    main()
