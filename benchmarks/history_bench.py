"""History topics: what they cost per publish, and a mass recovery. Prints numbers.

    python benchmarks/history_bench.py              # ~30-60 s on a small machine
    python benchmarks/history_bench.py --clients 200 --behind 100 --publishes 2000

Starts its own redis-server on a free port of 127.0.0.1 (stopped by PID at the end); the
app runs in this process (asyncws's in-memory test client: no sockets between the clients
and the app, so the figures are the server's and Redis' work, not the load client's).

1. **Cost per publish**: ``--publishes`` events on a plain topic, then on a history topic
   (one local subscriber each, every event awaited by it): wall time, this process's CPU and
   Redis' CPU (``INFO cpu``) per publish, and the ratio history / plain.
2. **Mass recovery**: ``--clients`` clients each ``--behind`` events behind on one topic
   subscribe with ``since`` at once: time until every one received all it missed (is live),
   this process's CPU, Redis' CPU, and the recovered count.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, HistoryPolicy
from asyncws.limits import Limits
from asyncws.testing import TestClient
from tests.servers import RedisServer


class Tick(BaseModel):
    n: int
    text: str = "x" * 64


def redis_cpu(redis: RedisServer) -> float:
    import redis as sync_redis

    info = sync_redis.Redis(port=redis.port).info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def build(url: str, size: int) -> tuple[AsyncWS, FastAPI]:
    ws = AsyncWS(
        title="bench",
        broker=url,
        broker_channel="hb",
        limits=Limits(rate=1e6, burst=1_000_000, max_connections=100_000),
    )
    ws.topic("plain/{k}", Tick)
    ws.topic("hist/{k}", Tick, history=HistoryPolicy(size=size, ttl=600))
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return ws, app


async def publish_cost(ws: AsyncWS, client: TestClient, count: int, redis: RedisServer) -> None:
    results: dict[str, tuple[float, float, float]] = {}
    for name in ("plain", "hist"):
        topic = next(t for t in ws.topics if t.address == f"{name}/{{k}}")
        async with client.connect("/ws") as s:
            await s.subscribe(f"{name}/a")
            for n in range(50):  # warm-up
                await topic.publish(Tick(n=n), k="a")
                await s.receive_event(timeout=10)
            cpu0, r0, t0 = time.process_time(), redis_cpu(redis), time.perf_counter()
            for n in range(count):
                await topic.publish(Tick(n=n), k="a")
                await s.receive_event(timeout=10)
            wall = time.perf_counter() - t0
            results[name] = (wall, time.process_time() - cpu0, redis_cpu(redis) - r0)
    print(f"\n1. cost per publish ({count} publishes, each awaited by one subscriber)")
    print(f"   {'topic':8} {'wall us':>9} {'server CPU us':>14} {'Redis CPU us':>13}")
    for name, (wall, cpu, rcpu) in results.items():
        print(
            f"   {name:8} {wall / count * 1e6:9.1f} {cpu / count * 1e6:14.1f} {rcpu / count * 1e6:13.1f}"
        )
    (pw, pc, pr), (hw, hc, hr) = results["plain"], results["hist"]
    print(
        f"   ratio history/plain: wall {hw / pw:.2f}, server CPU {hc / pc:.2f}, Redis CPU {hr / max(pr, 1e-9):.2f}"
    )


async def mass_recovery(
    ws: AsyncWS, client: TestClient, clients: int, behind: int, redis: RedisServer
) -> None:
    topic = next(t for t in ws.topics if t.address == "hist/{k}")
    start = await topic.publish(Tick(n=0), k="crowd")
    assert start is not None
    for n in range(1, behind + 1):
        await topic.publish(Tick(n=n), k="crowd")
    since = {"offset": start.offset, "epoch": start.epoch}
    sessions = []
    for _ in range(clients):
        cm = client.connect("/ws")
        sessions.append((cm, await cm.__aenter__()))
    recovered = 0
    failed: list[Any] = []

    async def one(session: Any) -> None:
        nonlocal recovered
        ack = await session.subscribe("hist/crowd", since=since, timeout=60)
        if ack.get("type") != "ack":
            failed.append(ack)
            return
        recovered += ack.get("recovered") is True
        for _ in range(behind):
            await session.receive_event("hist/crowd", timeout=60)

    cpu0, r0, t0 = time.process_time(), redis_cpu(redis), time.perf_counter()
    await asyncio.gather(*(one(s) for _, s in sessions))
    wall = time.perf_counter() - t0
    cpu, rcpu = time.process_time() - cpu0, redis_cpu(redis) - r0
    for cm, _ in sessions:
        await cm.__aexit__(None, None, None)
    print(f"\n2. mass recovery: {clients} clients at once, each {behind} events behind")
    print(f"   all live after {wall:.2f} s; server CPU {cpu:.2f} s; Redis CPU {rcpu:.2f} s")
    print(f"   recovered: {recovered}/{clients}; events replayed: {recovered * behind}")
    if failed:
        print(f"   refused: {len(failed)}, e.g. {failed[0]}")
    print(
        f"   per client: {wall / clients * 1e3:.2f} ms wall, {cpu / clients * 1e3:.2f} ms server CPU"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--publishes", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--behind", type=int, default=100)
    args = parser.parse_args()
    with RedisServer() as redis:
        ws, app = build(redis.url, size=max(1000, args.behind * 2))
        async with TestClient(app, timeout=60) as client:
            await publish_cost(ws, client, args.publishes, redis)
            await mass_recovery(ws, client, args.clients, args.behind, redis)


if __name__ == "__main__":
    asyncio.run(main())
