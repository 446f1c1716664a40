"""History topics: what they cost per publish, and a mass recovery. Prints numbers.

    python benchmarks/history_bench.py              # ~30-60 s on a small machine
    python benchmarks/history_bench.py --clients 200 --behind 100 --publishes 2000
    python benchmarks/history_bench.py --on both    # one Redis and a Redis Cluster, side by side

Starts its own redis-server on a free port of 127.0.0.1 (``--on cluster``/``both``: also a
6-node Redis Cluster, 3 primaries + 3 replicas), stopped by PID at the end; the app runs in
this process (asyncws's in-memory test client: no sockets between the clients and the app,
so the figures are the server's and Redis' work, not the load client's).

1. **Cost per publish**: ``--publishes`` events on a plain topic, then on a history topic
   (one local subscriber each, every event awaited by it): wall time, this process's CPU and
   Redis' CPU (from /proc; on the cluster the three primaries', the replicas' printed apart)
   per publish, and the ratio history / plain.
2. **Mass recovery**: ``--clients`` clients each ``--behind`` events behind on one topic
   subscribe with ``since`` at once: time until every one received all it missed (is live),
   this process's CPU, Redis' CPU, and the recovered count (``--clients 0``: skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, HistoryPolicy
from asyncws.limits import Limits
from asyncws.testing import TestClient
from benchmarks._harness import cpu_s
from tests.clusters import RedisClusterServers
from tests.servers import RedisServer


class Tick(BaseModel):
    n: int
    text: str = "x" * 64


class Target(NamedTuple):
    """Where the app's broker is: its URL and the redis-server processes behind it (the
    primaries, and the replicas that apply the same writes)."""

    name: str
    url: str
    pids: tuple[int | None, ...]
    replicas: tuple[int | None, ...] = ()

    def cpu(self) -> float:
        return sum(cpu_s(pid) for pid in self.pids)

    def replica_cpu(self) -> float:
        return sum(cpu_s(pid) for pid in self.replicas)


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


async def publish_cost(
    ws: AsyncWS, client: TestClient, count: int, redis: Target
) -> dict[str, tuple[float, float, float]]:
    results: dict[str, tuple[float, float, float]] = {}
    for name in ("plain", "hist"):
        topic = next(t for t in ws.topics if t.address == f"{name}/{{k}}")
        async with client.connect("/ws") as s:
            await s.subscribe(f"{name}/a")
            for n in range(50):  # warm-up
                await topic.publish(Tick(n=n), k="a")
                await s.receive_event(timeout=10)
            cpu0, r0, t0 = time.process_time(), redis.cpu(), time.perf_counter()
            for n in range(count):
                await topic.publish(Tick(n=n), k="a")
                await s.receive_event(timeout=10)
            wall = time.perf_counter() - t0
            results[name] = (wall, time.process_time() - cpu0, redis.cpu() - r0)
    print(
        f"\n1. cost per publish on {redis.name} ({count} publishes, each awaited by one subscriber)"
    )
    print(f"   {'topic':8} {'wall us':>9} {'server CPU us':>14} {'Redis CPU us':>13}")
    for name, (wall, cpu, rcpu) in results.items():
        print(
            f"   {name:8} {wall / count * 1e6:9.1f} {cpu / count * 1e6:14.1f} {rcpu / count * 1e6:13.1f}"
        )
    (pw, pc, pr), (hw, hc, hr) = results["plain"], results["hist"]
    print(
        f"   ratio history/plain: wall {hw / pw:.2f}, server CPU {hc / pc:.2f}, Redis CPU {hr / max(pr, 1e-9):.2f}"
    )
    return results


async def mass_recovery(
    ws: AsyncWS, client: TestClient, clients: int, behind: int, redis: Target
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

    cpu0, r0, t0 = time.process_time(), redis.cpu(), time.perf_counter()
    await asyncio.gather(*(one(s) for _, s in sessions))
    wall = time.perf_counter() - t0
    cpu, rcpu = time.process_time() - cpu0, redis.cpu() - r0
    for cm, _ in sessions:
        await cm.__aexit__(None, None, None)
    print(f"\n2. mass recovery on {redis.name}: {clients} clients at once, each {behind} behind")
    print(f"   all live after {wall:.2f} s; server CPU {cpu:.2f} s; Redis CPU {rcpu:.2f} s")
    print(f"   recovered: {recovered}/{clients}; events replayed: {recovered * behind}")
    if failed:
        print(f"   refused: {len(failed)}, e.g. {failed[0]}")
    print(
        f"   per client: {wall / clients * 1e3:.2f} ms wall, {cpu / clients * 1e3:.2f} ms server CPU"
    )


async def run(target: Target, args: argparse.Namespace) -> dict[str, tuple[float, float, float]]:
    ws, app = build(target.url, size=max(1000, args.behind * 2))
    async with TestClient(app, timeout=60) as client:
        results = await publish_cost(ws, client, args.publishes, target)
        if args.clients > 0:
            await mass_recovery(ws, client, args.clients, args.behind, target)
    return results


def side_by_side(runs: dict[str, dict[str, tuple[float, float, float]]], count: int) -> None:
    """The history topic's cost per publish on each target, and cluster / one Redis."""
    print(f"\nhistory publish, side by side (us per publish, {count} publishes)")
    print(f"   {'broker':28} {'wall':>8} {'server CPU':>11} {'Redis CPU':>10}")
    for name, results in runs.items():
        wall, cpu, rcpu = (v / count * 1e6 for v in results["hist"])
        print(f"   {name:28} {wall:8.1f} {cpu:11.1f} {rcpu:10.1f}")
    (one, cluster) = (runs[n]["hist"] for n in runs)
    print(
        f"   cluster / one Redis: wall {cluster[0] / one[0]:.2f}, server CPU "
        f"{cluster[1] / one[1]:.2f}, Redis CPU {cluster[2] / max(one[2], 1e-9):.2f}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--publishes", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--behind", type=int, default=100)
    parser.add_argument("--on", choices=("redis", "cluster", "both"), default="redis")
    args = parser.parse_args()
    runs: dict[str, dict[str, tuple[float, float, float]]] = {}
    with contextlib.ExitStack() as stack:
        if args.on in ("redis", "both"):
            redis = stack.enter_context(RedisServer())
            target = Target("redis:// (one node)", redis.url, (redis.pid,))
            runs[target.name] = await run(target, args)
        if args.on in ("cluster", "both"):
            cluster = stack.enter_context(RedisClusterServers())
            primaries = tuple(n.pid for n in cluster.nodes if cluster.is_primary(n.port))
            replicas = tuple(n.pid for n in cluster.nodes if not cluster.is_primary(n.port))
            target = Target("redis+cluster:// (3+3 nodes)", cluster.url, primaries, replicas)
            replica0 = target.replica_cpu()
            runs[target.name] = await run(target, args)
            print(
                f"\n   the 3 replicas used {target.replica_cpu() - replica0:.2f} s of CPU over "
                "the whole run (not in the Redis CPU columns: those are the primaries')"
            )
    if len(runs) == 2:
        side_by_side(runs, args.publishes)


if __name__ == "__main__":
    asyncio.run(main())
