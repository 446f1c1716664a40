"""Before/after: hostile clients against plain uvicorn (its defaults) and `asyncws run`.

    python benchmarks/server_limits.py            # ~30 s; prints one table
    python benchmarks/server_limits.py --redis    # also PUBLISH latency vs PSUBSCRIBE patterns

Each server is the chat example on 127.0.0.1 and a free port, stopped by PID. The attacks are
those of tests/test_serve.py (tests/attacks.py): 4 compressed 10 MB frames, 400,000 pings from a
client that never reads, and 160 slowloris sockets against a server limited to 128 file
descriptors while a real client tries to connect. ``--redis`` starts a private redis-server,
PSUBSCRIBEs 0, 1,000, 4,000 and 10,000 distinct globs and runs ``redis-benchmark`` PUBLISH
(one client, 20,000 requests) at each size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.attacks import (
    RunServer,
    close_all,
    closed_by_server,
    compression_bomb,
    memory,
    ping_flood,
    real_client_gets_in,
    slowloris,
)
from tests.servers import RedisServer

MiB = 1 << 20
APP = "examples.chat.app:app"


async def victim(url: str, stop: asyncio.Event) -> float:
    """A bystander's worst round trip (subscribe -> ack), 40 a second until ``stop`` (at
    most 2,000)."""
    worst = 0.0
    async with connect(url, open_timeout=10) as ws:
        for n in range(2000):
            started = time.perf_counter()
            await ws.send(json.dumps({"type": "subscribe", "topic": "rooms/lobby", "id": n}))
            await asyncio.wait_for(ws.recv(), 30)
            worst = max(worst, time.perf_counter() - started)
            if stop.is_set():
                break
            await asyncio.sleep(0.025)  # pacing: under the chat's 50 frames/s rate limit
    return worst


async def one_server(plain: bool) -> dict[str, str]:
    name = "uvicorn (defaults)" if plain else "asyncws run"
    out = {"server": name}
    with RunServer(APP, plain=plain, ready_path="/asyncapi.json") as server:
        pid = server.pid or 0
        before = memory(pid)
        stop = asyncio.Event()
        bystander = asyncio.create_task(victim(server.ws_url("/ws?user=victim"), stop))
        # in a thread of its own, so that compressing the bombs does not delay the bystander
        bomb = await asyncio.to_thread(
            asyncio.run, compression_bomb(server.ws_url("/ws?user=mallory"), clients=4)
        )
        stop.set()
        worst = await bystander
        after = memory(pid)
        out["bomb"] = (
            f"{bomb.wire_bytes // 1000} KB on the wire: closes {sorted(set(bomb.close_codes))}, "
            f"peak RSS +{(after['VmHWM'] - before['VmHWM']) / MiB:.0f} MiB, "
            f"a bystander's worst round trip {worst * 1000:.0f} ms"
        )
        before = memory(pid)
        flood = await asyncio.to_thread(
            ping_flood, server.port, "/ws?user=pinger", pid, pings=400_000, seconds=15
        )
        out["ping flood"] = (
            f"{flood.pings_sent} pings{' (pushed back)' if flood.pushed_back else ''}: "
            f"RSS +{(flood.memory['VmRSS'] - before['VmRSS']) / MiB:.0f} MiB"
        )
    extra = [] if plain else ["--header-timeout", "1"]
    with RunServer(
        APP, plain=plain, nofile=128, extra_args=extra, ready_path="/asyncapi.json"
    ) as s:
        opened = await slowloris(s.port, "/ws?user=x", sockets=160)
        try:
            watch = asyncio.create_task(closed_by_server(opened, hold=6))
            waited = await real_client_gets_in(s.ws_url("/ws?user=ann"), deadline=8)
            closed = await watch
        finally:
            close_all(opened)
        got_in = "locked out for 8 s" if waited is None else f"in after {waited:.1f} s"
        out["slowloris"] = f"real client {got_in}; {closed}/160 slow sockets closed"
    return out


async def redis_patterns() -> list[str]:
    from redis.asyncio import Redis

    lines = []
    with RedisServer() as server:
        redis = Redis.from_url(server.url)
        pubsub = redis.pubsub()
        await pubsub.subscribe("keepalive")
        held = 0
        for size in (0, 1000, 4000, 10_000):
            globs = [f"chat/t/rooms/{i}/*" for i in range(held, size)]
            for start in range(0, len(globs), 500):
                await pubsub.psubscribe(*globs[start : start + 500])
            confirmed = 0
            while confirmed < len(globs):
                message = await pubsub.get_message(timeout=5)
                if message is None:
                    raise RuntimeError("Redis did not confirm the PSUBSCRIBEs")
                confirmed += message["type"] == "psubscribe"
            held = size
            argv = ["redis-benchmark", "-p", str(server.port), "-n", "20000", "-c", "1", "-q"]
            argv += ["--csv", "PUBLISH", "chat/t/rooms/lobby", "hello"]
            done = await asyncio.to_thread(
                subprocess.run, argv, capture_output=True, text=True, timeout=120, check=True
            )
            csv = done.stdout.strip()
            fields = [f.strip('"') for f in csv.splitlines()[-1].split(",")]
            lines.append(
                f"{size:>6} patterns: {float(fields[1]):>8.0f} PUBLISH/s, avg {float(fields[2]) * 1000:.0f} us, "
                f"p50 {float(fields[4]) * 1000:.0f} us, p99 {float(fields[6]) * 1000:.0f} us"
            )
        await redis.aclose()
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", action="store_true", help="PUBLISH latency vs patterns too")
    args = parser.parse_args()
    for plain in (True, False):
        row = await one_server(plain)
        print(row.pop("server"))
        for attack, figure in row.items():
            print(f"  {attack:<11} {figure}")
    if args.redis:
        if shutil.which("redis-benchmark") is None:
            print("redis-benchmark is not installed: skipped")
            return
        print("Redis PUBLISH vs PSUBSCRIBE patterns held (one subscriber connection)")
        for line in await redis_patterns():
            print(f"  {line}")


if __name__ == "__main__":
    asyncio.run(main())
