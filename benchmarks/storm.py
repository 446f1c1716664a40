#!/usr/bin/env python3
"""Connection storms: how long one instance takes to accept N connections and their subscriptions.

    .venv/bin/python benchmarks/storm.py                 # N=10,000 over 100 topics
    .venv/bin/python benchmarks/storm.py -n 2000         # a quicker look
    .venv/bin/python benchmarks/storm.py --systems raw,ids   # client-chosen ids only

What an instance restart behind a load balancer looks like: every client reconnects at once
and subscribes again. Per system, one uvicorn instance (peerbench's flags) on a private Redis;
two load-client processes open N websockets in total (at most ``--concurrency`` handshakes in
flight per process), and each connection sends one subscribe frame with an id, to topic
``bench/s{i mod T}``, and waits for the ack. The time is from the first connect to the last
ack. Systems: ``raw`` (benchmarks/raw_app.py: Starlette, acks once its Redis subscription
holds), ``declarative`` (benchmarks/bench_app.py) and ``compat`` (benchmarks/compat_app.py,
the seed-compatible ``WebSocketManager``; server-assigned ids) and ``ids`` (the same app on
the seed's ``/ws/{conn_id}``: each connection asks for its own id, ``storm-{i}``, which the
server claims on Redis and subscribes a channel for; a connection whose id the server replaced
with one of its own, with ``set_conn_id``, counts as failed: column ``renamed``). Each process needs N/2 + a
few file descriptors (and the server N): N is lowered to fit ``ulimit -n`` (printed).
Exit status 1 if a connection or a subscription failed.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    LoadWorker,
    RedisServer,
    Server,
    cpu_s,
    install_signal_handlers,
    rss_kib,
    stop_all,
)

SYSTEMS = {
    "raw": "benchmarks.raw_app:app",
    "declarative": "benchmarks.bench_app:app",
    "compat": "benchmarks.compat_app:app",
    "ids": "benchmarks.compat_app:app",
}
#: The websocket path per system (``{i}``: the connection's index); ``/ws`` when not listed.
PATHS = {"ids": "/ws/storm-{i}"}


async def redis_counts(url: str) -> tuple[int, int]:
    """Redis's commands served and connections accepted so far (INFO commandstats, stats)."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        commands = await client.info("commandstats")
        stats = await client.info("stats")
    finally:
        await client.aclose()
    calls = sum(int(v["calls"]) for v in commands.values())
    return calls, int(stats["total_connections_received"])


async def run(name: str, args: argparse.Namespace, redis: RedisServer, log_dir: Path) -> Any:
    env = {"ASYNCWS_BENCH_REDIS": redis.url}
    path = args.asyncws_path if name != "raw" else None
    server = Server(SYSTEMS[name], env, log_dir, path).start()
    workers: list[LoadWorker] = []
    try:
        workers = [await LoadWorker.spawn(f"{name}-storm{k}", 1, log_dir, 1) for k in range(2)]
        await asyncio.sleep(0.3)
        rss0, cpu0, redis0 = rss_kib(server.pid), cpu_s(server.pid), cpu_s(redis.pid)
        calls0, conns0 = await redis_counts(redis.url)
        n = args.n
        shares = [n - n // 2, n // 2]
        t0 = time.monotonic()
        res = await asyncio.gather(
            *(
                w.call(
                    "open",
                    timeout=300,
                    group="storm",
                    ports=[server.port],
                    path=PATHS.get(name, "/ws"),
                    count=c,
                    topics=["bench/s{t}"],
                    spread=args.topics,
                    ack=True,
                    record=False,
                    concurrency=args.concurrency,
                    offset=off,
                )
                for w, c, off in zip(workers, shares, (0, shares[0]), strict=True)
            )
        )
        elapsed = time.monotonic() - t0
        calls1, conns1 = await redis_counts(redis.url)
        opened = sum(r["opened"] for r in res)
        errors = sum(r["n_errors"] for r in res)
        out = {
            "opened": opened,
            "errors": errors,
            "renamed": sum(r.get("renamed", 0) for r in res),
            "error_samples": [e for r in res for e in r["errors"]][:3],
            "seconds": elapsed,
            "server_cpu_s": cpu_s(server.pid) - cpu0,
            "redis_cpu_s": cpu_s(redis.pid) - redis0,
            "rss_kib_per_conn": (rss_kib(server.pid) - rss0) / max(opened, 1),
            # INFO's own calls (4) are not subtracted
            "redis_commands": calls1 - calls0,
            "redis_connections": conns1 - conns0,
        }
    finally:
        for w in workers:
            await w.quit()
        server.stop()
    out["server_log_errors"] = server.log_errors()
    return out


async def amain(args: argparse.Namespace) -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="asyncws-storm-"))
    results: dict[str, Any] = {}
    with RedisServer() as redis:
        for name in args.systems.split(","):
            results[name] = await run(name, args, redis, log_dir)
    print(
        f"connection storm: {args.n} connections, each subscribing to one of {args.topics} "
        f"topics (acked), {args.concurrency} handshakes in flight per client process (2)\n"
    )
    print(
        "| system | seconds | ÷raw | server CPU s | Redis CPU s | RSS KiB/conn | failed "
        "| renamed | Redis commands | Redis connections |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = results.get("raw", {}).get("seconds")
    problems = []
    for name, r in results.items():
        ratio = f"{r['seconds'] / base:.2f}" if base else "-"
        print(
            f"| {name} | {r['seconds']:.2f} | {ratio} | {r['server_cpu_s']:.2f} | "
            f"{r['redis_cpu_s']:.2f} | {r['rss_kib_per_conn']:.1f} | {r['errors']} | "
            f"{r['renamed']} | {r['redis_commands']} | {r['redis_connections']} |"
        )
        if r["renamed"]:
            problems.append(f"{name}: {r['renamed']} requested ids replaced by the server")
        if r["errors"] or r["opened"] != args.n:
            problems.append(f"{name}: {r['opened']}/{args.n} opened; {r['error_samples']}")
        if r["server_log_errors"]:
            problems.append(f"{name}: {r['server_log_errors']} error lines ({log_dir})")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", type=int, default=10_000, help="connections (default 10,000)")
    ap.add_argument("--topics", type=int, default=100, help="topics (default 100)")
    ap.add_argument("--concurrency", type=int, default=256, help="handshakes in flight/process")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--asyncws-path", default=None, help="measure the asyncws package here")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
        soft = hard
    fit = soft - 200
    if args.n > fit:
        print(f"ulimit -n is {soft}: {fit} connections instead of {args.n}", file=sys.stderr)
        args.n = fit
    install_signal_handlers()
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        return 130
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
