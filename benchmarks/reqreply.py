#!/usr/bin/env python3
"""Request/reply, the other inbound shape: server CPU per request and the round trip.

    .venv/bin/python benchmarks/reqreply.py                  # raw echo vs asyncws operation
    .venv/bin/python benchmarks/reqreply.py -c 100 -r 200

Two systems, one uvicorn instance each (peerbench's flags), the same load client:

* ``raw``          benchmarks/raw_app.py ``/echo``: a Starlette endpoint that parses the frame
                   (``json.loads``), validates ``data`` with a pydantic model and replies;
* ``declarative``  benchmarks/bench_app.py: the ``echo`` operation (``AsyncWS`` + ``Router``, a
                   pydantic payload model, the model returned as the reply).

``-c`` connections each send ``-r`` requests ``{"type":"echo","id":N,"data":{seq,ts,pad}}``
closed loop (the next once the previous was answered). Printed: requests/s, server CPU per
1,000 requests, round-trip p50 / p99 / max, and the ratios to raw. A private Redis is started
for the apps' lifespans; no request goes through it. Exit status 1 only if a request went
unanswered or a server logged an error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import LoadWorker, RedisServer, Server, cpu_s, install_signal_handlers, stop_all

SYSTEMS = {
    "raw": ("benchmarks.raw_app:app", "/echo"),
    "declarative": ("benchmarks.bench_app:app", "/ws"),
}


async def run(name: str, args: argparse.Namespace, log_dir: Path, redis_url: str) -> dict[str, Any]:
    app, path = SYSTEMS[name]
    env = {"ASYNCWS_BENCH_REDIS": redis_url}
    server = Server(app, env, log_dir, args.asyncws_path if name != "raw" else None).start()
    worker: LoadWorker | None = None
    try:
        worker = await LoadWorker.spawn(f"{name}-rpc", 1, log_dir, phases=1)
        opened = await worker.call(
            "open", group="rpc", ports=[server.port], count=args.c, path=path, record=False
        )
        if opened["opened"] != args.c:
            raise RuntimeError(f"opened {opened['opened']}/{args.c}: {opened['errors']}")
        await worker.call("rpc", group="rpc", kind="echo", count=5)  # warm-up
        await asyncio.sleep(0.3)
        c0 = cpu_s(server.pid)
        res = await worker.call("rpc", timeout=120, group="rpc", kind="echo", count=args.r)
        cpu = cpu_s(server.pid) - c0
        res["server_cpu_s_per_1k"] = cpu / (res["answered"] / 1000) if res["answered"] else None
        res["requests_s"] = res["answered"] / res["wall_s"] if res["wall_s"] else None
    finally:
        if worker is not None:
            await worker.quit()
        server.stop()
    res["server_log_errors"] = server.log_errors()
    return res


def _f(v: float | None, nd: int) -> str:
    return "-" if v is None else f"{v:,.{nd}f}"


async def amain(args: argparse.Namespace) -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="asyncws-reqreply-"))
    with RedisServer() as redis:  # the apps' lifespans connect it; requests never touch it
        results = {name: await run(name, args, log_dir, redis.url) for name in SYSTEMS}
    print(f"request/reply: {args.c} connections x {args.r} requests, closed loop, one instance\n")
    print(
        "| system | requests/s | server CPU s/1k req | RTT p50 / p99 / max ms | CPU ÷raw | p99 ÷raw |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    base = results["raw"]
    problems = []
    for name, r in results.items():
        cpu_ratio = (
            r["server_cpu_s_per_1k"] / base["server_cpu_s_per_1k"]
            if r["server_cpu_s_per_1k"] and base["server_cpu_s_per_1k"]
            else None
        )
        p99_ratio = r["p99_ms"] / base["p99_ms"] if r["p99_ms"] and base["p99_ms"] else None
        print(
            f"| {name} | {_f(r['requests_s'], 0)} | {_f(r['server_cpu_s_per_1k'], 4)} | "
            f"{_f(r['p50_ms'], 2)} / {_f(r['p99_ms'], 2)} / {_f(r['max_ms'], 1)} | "
            f"{_f(cpu_ratio, 2)} | {_f(p99_ratio, 2)} |"
        )
        if r["failed"]:
            problems.append(f"{name}: {r['failed']} requests unanswered or wrong")
        if r["server_log_errors"]:
            problems.append(f"{name}: {r['server_log_errors']} error lines ({log_dir})")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-c", type=int, default=50, help="connections (default 50)")
    ap.add_argument("-r", type=int, default=100, help="requests per connection (default 100)")
    ap.add_argument("--asyncws-path", default=None, help="measure the asyncws package here")
    args = ap.parse_args()
    install_signal_handlers()
    started = time.monotonic()
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        return 130
    finally:
        stop_all()
        print(f"({time.monotonic() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
