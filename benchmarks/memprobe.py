#!/usr/bin/env python3
"""Memory per idle connection: server RSS with N idle, subscribed websockets, ratios to raw.

    .venv/bin/python benchmarks/memprobe.py                    # N=2,000 over 100 topics, 3 rounds
    .venv/bin/python benchmarks/memprobe.py --census           # + what each connection keeps
    .venv/bin/python benchmarks/memprobe.py --trace --systems declarative   # + tracemalloc lines

Per round and system: one uvicorn (peerbench's flags) on a private Redis; two load-client
processes first open one warm-up connection per topic (so per-topic costs, lazy imports and
caches are paid before the baseline), then the server's RSS is read from /proc/PID/status,
N connections are opened (connection i subscribes to ``bench/m{i mod T}`` and waits for the
ack), and after a settle time the RSS is read again: (after - before) / N is the figure. The
median of the rounds is printed, with each system's ratio to ``raw`` (same run). The systems
are started in turn, within each round, so machine noise spreads over all of them.

``--census`` also counts the server's live objects before and after (by type; coroutines and
tasks by function) through an agent thread (benchmarks/memprobe_app.py, not in the request
path) and prints the types that grew, per connection. ``--trace`` starts tracemalloc in the
server and prints the source lines whose allocations grew, in bytes per connection: slower,
and RSS is not comparable then. Both are taken in an extra round after the RSS rounds.

Systems: ``raw`` (benchmarks/raw_app.py), ``declarative`` (benchmarks/bench_app.py: FastAPI,
``app.include_router(ws.asgi_router)``), ``declarative_front`` (the same app served as
``ws.in_front_of(app)``), ``declarative_idle_timeout`` (``Limits(idle_timeout=600)``),
``compat`` (benchmarks/compat_app.py, FastAPI ``@app.websocket`` +
``WebSocketManager``).
Exit status 1 if a connection or subscription failed or a server logged an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    LoadWorker,
    RedisServer,
    Server,
    free_port,
    install_signal_handlers,
    rss_kib,
    stop_all,
)

SYSTEMS: dict[str, tuple[str, dict[str, str]]] = {
    "raw": ("benchmarks.raw_app:app", {}),
    "declarative": ("benchmarks.bench_app:app", {}),
    "declarative_front": ("benchmarks.bench_app:app", {"ASYNCWS_BENCH_FRONT": "1"}),
    "declarative_idle_timeout": ("benchmarks.bench_app:app", {"ASYNCWS_BENCH_IDLE_TIMEOUT": "600"}),
    "compat": ("benchmarks.compat_app:app", {}),
}


def ask(port: int, command: str, timeout: float = 120.0) -> Any:
    """One command to the server's memprobe agent; its JSON answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(command.encode() + b"\n")
        return json.loads(conn.makefile("r").readline())


async def _open(workers: list[LoadWorker], port: int, n: int, offset: int, args: Any) -> int:
    shares = [n - n // 2, n // 2]
    res = await asyncio.gather(
        *(
            w.call(
                "open",
                timeout=args.max_seconds,
                group="idle",
                ports=[port],
                count=c,
                topics=["bench/m{t}"],
                spread=args.topics,
                ack=True,
                record=False,
                concurrency=args.concurrency,
                offset=offset + off,
            )
            for w, c, off in zip(workers, shares, (0, shares[0]), strict=True)
        )
    )
    errors = [e for r in res for e in r["errors"]]
    if errors:
        raise RuntimeError(f"{sum(r['n_errors'] for r in res)} failed: {errors[:3]}")
    return sum(r["opened"] for r in res)


async def measure(
    name: str, args: argparse.Namespace, redis: RedisServer, log_dir: Path, mode: str = "rss"
) -> dict[str, Any]:
    """One server, warm-up connections, then N more: RSS (or census / trace) before and after."""
    target, extra = SYSTEMS[name]
    env = {"ASYNCWS_BENCH_REDIS": redis.url, "MEMPROBE_TARGET": target, **extra}
    agent = free_port()
    if mode != "rss":
        env["MEMPROBE_AGENT_PORT"] = str(agent)
        if mode == "trace":
            env["MEMPROBE_TRACE"] = "1"
    path = args.asyncws_path if name != "raw" else None
    server = Server("benchmarks.memprobe_app:app", env, log_dir, path).start()
    workers: list[LoadWorker] = []
    out: dict[str, Any] = {}
    try:
        workers = [await LoadWorker.spawn(f"{name}-mem{k}", 1, log_dir, 1) for k in range(2)]
        await _open(workers, server.port, args.topics, 0, args)  # one per topic: warm-up
        await asyncio.sleep(args.settle)
        before: Any = None
        if mode == "census":
            before = ask(agent, "census")
        elif mode == "trace":
            ask(agent, "snap")
        rss0 = rss_kib(server.pid)
        opened = await _open(workers, server.port, args.n, args.topics, args)
        await asyncio.sleep(args.settle)
        rss1 = rss_kib(server.pid)
        out = {"opened": opened, "kib_per_conn": (rss1 - rss0) / max(opened, 1)}
        if mode == "census":
            after = ask(agent, "census")
            grown = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            out["census"] = {k: v / opened for k, v in grown.items() if v >= opened // 2}
        elif mode == "trace":
            found = ask(agent, "diff")
            out["trace_total_per_conn"] = found["total"] / opened
            out["trace"] = [
                (r["where"], r["size_diff"] / opened, r["count_diff"] / opened)
                for r in found["top"]
                if r["size_diff"] >= opened * 4
            ]
    finally:
        for w in workers:
            await w.quit()
        server.stop()
    out["server_log_errors"] = server.log_errors()
    return out


_PACKAGES = ("asyncws", "fastapi", "starlette", "uvicorn", "websockets", "benchmarks")


def _group(where: str) -> str:
    """The package a traced source line belongs to (``stdlib`` for the rest)."""
    for name in _PACKAGES:
        if f"/{name}/" in where:
            return name
    return "stdlib/other"


def _short(where: str) -> str:
    for name in _PACKAGES:
        marker = f"/{name}/"
        if marker in where:
            return name + "/" + where.rsplit(marker, 1)[1]
    return where.rsplit("/", 1)[-1]


async def amain(args: argparse.Namespace) -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="asyncws-memprobe-"))
    names = args.systems.split(",")
    per: dict[str, list[float]] = {n: [] for n in names}
    problems: list[str] = []
    extra: dict[str, dict[str, Any]] = {}
    with RedisServer() as redis:
        for _ in range(args.rounds):
            for name in names:
                r = await measure(name, args, redis, log_dir)
                per[name].append(r["kib_per_conn"])
                if r["server_log_errors"]:
                    problems.append(f"{name}: {r['server_log_errors']} error lines ({log_dir})")
        for mode in ("census", "trace"):
            if getattr(args, mode):
                for name in names:
                    extra.setdefault(name, {}).update(
                        await measure(name, args, redis, log_dir, mode)
                    )
    print(
        f"memory per idle connection: {args.n} connections (after {args.topics} warm-up ones), "
        f"each subscribed to one of {args.topics} topics, {args.rounds} rounds, median\n"
    )
    print("| system | KiB/conn (median) | ÷raw | rounds |")
    print("|---|---:|---:|---|")
    base = statistics.median(per["raw"]) if per.get("raw") else None
    for name in names:
        med = statistics.median(per[name])
        ratio = f"{med / base:.2f}" if base else "-"
        rounds = ", ".join(f"{v:.1f}" for v in per[name])
        print(f"| {name} | {med:.2f} | {ratio} | {rounds} |")
    for name, r in extra.items():
        if "census" in r:
            print(f"\n{name}: objects per connection (census; types with >= 0.5 per connection)")
            for kind, count in sorted(r["census"].items(), key=lambda kv: -kv[1]):
                print(f"  {count:6.2f}  {kind}")
        if "trace" in r:
            print(
                f"\n{name}: tracemalloc, bytes per connection by line "
                f"(total {r['trace_total_per_conn']:.0f} B/conn of Python allocations)"
            )
            groups: dict[str, float] = {}
            for where, size, _count in r["trace"]:
                groups[_group(where)] = groups.get(_group(where), 0.0) + size
            print(
                "  by package: "
                + ", ".join(
                    f"{g} {v:.0f} B" for g, v in sorted(groups.items(), key=lambda kv: -kv[1])
                )
            )
            for where, size, count in r["trace"]:
                if _group(where) in ("asyncws", "fastapi", "benchmarks") or size >= 256:
                    print(f"  {size:7.0f} B  {count:5.2f} blocks  {_short(where)}")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", type=int, default=2000, help="idle connections (default 2,000)")
    ap.add_argument("--topics", type=int, default=100, help="topics (default 100)")
    ap.add_argument("--rounds", type=int, default=3, help="RSS rounds (default 3)")
    ap.add_argument("--settle", type=float, default=1.0, help="seconds before each RSS read")
    ap.add_argument("--concurrency", type=int, default=128, help="handshakes in flight/process")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="bound on each open")
    ap.add_argument("--systems", default="raw,declarative,declarative_front,compat")
    ap.add_argument("--census", action="store_true", help="count live objects per connection")
    ap.add_argument("--trace", action="store_true", help="tracemalloc lines per connection")
    ap.add_argument("--asyncws-path", default=None, help="measure the asyncws package here")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
        soft = hard
    if args.n + args.topics > soft - 200:
        print(f"ulimit -n is {soft}: too many connections", file=sys.stderr)
        return 2
    install_signal_handlers()
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        return 130
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
