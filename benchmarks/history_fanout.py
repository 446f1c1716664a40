#!/usr/bin/env python3
"""History topics on real servers: fan-out cost beside a plain topic, and recovery latency.

    .venv/bin/python benchmarks/history_fanout.py            # about 2 minutes
    .venv/bin/python benchmarks/history_fanout.py --quick    # about 40 s

Two uvicorn instances of benchmarks/bench_app.py (with ``ASYNCWS_BENCH_HISTORY=1``: topic
``hist/{n}`` keeps history, ``bench/{n}`` does not) on one Redis started here, the load client
benchmarks/wsload.py in other processes. Every process is started here and stopped by PID.

1. **Fan-out, side by side.** N subscribers (``-n``, default 20 and 200), half on each
   instance, each subscribed to both ``bench/t`` and ``hist/t``; a publisher on instance A sends
   ``-m`` client ``publish`` frames at ``--rate`` msg/s, alternating plain and history phases
   ``--repeat`` times on the same servers and connections (plain first, then history first). Figures per phase: server CPU per
   delivery (both instances, /proc utime+stime), Redis CPU per publish, p50/p99 latency,
   lost/dup; the medians and the ratio history / plain are printed.
2. **Recovery latency.** A client subscribed to ``hist/r{k}`` on instance B disconnects; 1,000
   events (``--missed``) are published through A (each acknowledged); the client connects to
   B again and subscribes with ``since``. Measured from sending that subscribe: the ack
   (``recovered: true``) and the last missed event; B's CPU for the recovery. ``--recoveries``
   runs, fresh topic each, medians printed.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    LoadWorker,
    Phase,
    RedisServer,
    Server,
    cpu_s,
    install_signal_handlers,
    run_phase,
    stop_all,
    wait_quiet,
)
from websockets.asyncio.client import ClientConnection, connect

APP = "benchmarks.bench_app:app"
TOPICS = {"plain": "bench/t", "history": "hist/t"}


def servers_on(redis: RedisServer, log_dir: Path, count: int = 2) -> list[Server]:
    env = {"ASYNCWS_BENCH_REDIS": redis.url, "ASYNCWS_BENCH_HISTORY": "1"}
    return [Server(APP, env, log_dir).start() for _ in range(count)]


async def fanout(n: int, args: argparse.Namespace, redis: RedisServer, log_dir: Path) -> Any:
    servers = servers_on(redis, log_dir)
    phases = 2 * args.repeat
    workers: list[LoadWorker] = []
    try:
        ports = [s.port for s in servers]
        pub = await LoadWorker.spawn("hf-pub", args.m, log_dir, phases=phases)
        subs = [await LoadWorker.spawn(f"hf-sub{k}", args.m, log_dir, phases) for k in range(2)]
        workers += [pub, *subs]
        await pub.call("open", group="pub", ports=[ports[0]], count=1, record=False)
        half = [n // 2 + n % 2, n // 2]
        topics = list(TOPICS.values())  # each connection subscribes to both
        opened = await asyncio.gather(
            *(
                w.call("open", timeout=120, group="sub", ports=ports, count=c, topics=topics)
                for w, c in zip(subs, half, strict=True)
            )
        )
        if sum(r["opened"] for r in opened) != n:
            raise RuntimeError(f"opened {opened}")
        await _warm(pub, subs, n)
        runs: dict[str, list[dict[str, Any]]] = {"plain": [], "history": []}
        for r in range(args.repeat):
            order = list(TOPICS.items())[:: 1 if r % 2 == 0 else -1]  # no order bias
            for k, (label, topic) in enumerate(order):
                busy = wait_quiet(args.quiet_wait)
                print(
                    f"[history_fanout] n={n} {label} run {r + 1}/{args.repeat} "
                    f"(machine busy {busy:.0%})",
                    file=sys.stderr,
                    flush=True,
                )
                phase = Phase(2 * r + k, "topic", [topic], n * args.m, rate=args.rate, cap_s=90)
                result = await run_phase(phase, pub, subs, servers, redis.pid, log_dir)
                delivered = result["delivered"]
                result["server_cpu_us_per_delivery"] = (
                    result["server_cpu_s"] / delivered * 1e6 if delivered else None
                )
                result["redis_cpu_us_per_publish"] = (
                    result["redis_cpu_s"] / result["sent"] * 1e6 if result["sent"] else None
                )
                runs[label].append(result)
                await asyncio.sleep(0.5)
        errors = sum(s.log_errors() for s in servers)
    finally:
        for w in workers:
            await w.quit()
        for s in servers:
            s.stop()
    return {"n": n, "runs": runs, "server_log_errors": errors, **_medians(runs)}


async def _warm(pub: LoadWorker, subs: list[LoadWorker], n: int, limit_s: float = 30.0) -> None:
    """Bounded: every subscriber got a warm-up message on each topic (seq -1)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        await pub.call("warmup", kind="topic", targets=list(TOPICS.values()))
        await asyncio.sleep(0.3)
        warm = 0
        for w in subs:
            warm += (await w.call("status", group="sub"))["warm"]
        if warm >= n:
            await asyncio.sleep(1.0)  # the warm-up's own deliveries drain
            return
    raise RuntimeError(f"warm-up: {warm}/{n} subscribers got a message in {limit_s:.0f}s")


def _medians(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, done in runs.items():
        for key in ("server_cpu_us_per_delivery", "redis_cpu_us_per_publish"):
            values = [r[key] for r in done if r[key] is not None]
            out[f"{label}_{key}"] = statistics.median(values) if values else None
        out[f"{label}_p50_ms"] = statistics.median(r["latency_ms"]["p50"] or 0 for r in done)
        out[f"{label}_p99_ms"] = statistics.median(r["latency_ms"]["p99"] or 0 for r in done)
        out[f"{label}_lost"] = sum(r["lost"] for r in done)
        out[f"{label}_dup"] = sum(r["duplicates"] for r in done)
    plain, hist = out["plain_server_cpu_us_per_delivery"], out["history_server_cpu_us_per_delivery"]
    out["cpu_per_delivery_ratio"] = hist / plain if plain and hist else None
    rp, rh = out["plain_redis_cpu_us_per_publish"], out["history_redis_cpu_us_per_publish"]
    out["redis_cpu_per_publish_ratio"] = rh / rp if rp and rh else None
    return out


# -- recovery latency -----------------------------------------------------------------------------


async def _call(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(frame))
    while True:
        answer: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if answer.get("id") == frame["id"]:
            return answer


async def recovery(args: argparse.Namespace, redis: RedisServer, log_dir: Path) -> Any:
    a, b = servers_on(redis, log_dir)
    runs: list[dict[str, float]] = []
    try:
        for k in range(args.recoveries):
            topic = f"hist/r{k}"
            async with connect(f"ws://127.0.0.1:{b.port}/ws") as sub:
                ack = await _call(sub, {"type": "subscribe", "id": 1, "topic": topic})
            since = ack["position"]
            async with connect(f"ws://127.0.0.1:{a.port}/ws", max_size=1 << 24) as pub:
                for i in range(args.missed):  # pipelined, then every ack is awaited
                    data = {"seq": i, "ts": time.monotonic(), "pad": "x" * 60}
                    await pub.send(
                        json.dumps({"type": "publish", "id": i + 1, "topic": topic, "data": data})
                    )
                acks = 0
                while acks < args.missed:
                    frame = json.loads(await asyncio.wait_for(pub.recv(), 30))
                    if frame.get("type") != "ack":
                        raise RuntimeError(f"publish refused: {frame}")
                    acks += 1
            await asyncio.sleep(0.3)  # B has handled the live copies (nobody listens there)
            wait_quiet(args.quiet_wait)
            async with connect(f"ws://127.0.0.1:{b.port}/ws", max_size=1 << 24) as again:
                cpu0 = cpu_s(b.pid)
                t0 = time.perf_counter()
                frame = {"type": "subscribe", "id": 1, "topic": topic, "since": since}
                await again.send(json.dumps(frame))
                t_ack = t_last = 0.0
                offsets: list[int] = []
                while len(offsets) < args.missed:
                    got = json.loads(await asyncio.wait_for(again.recv(), 30))
                    if got.get("type") == "ack":
                        t_ack = time.perf_counter() - t0
                        if got.get("recovered") is not True:
                            raise RuntimeError(f"not recovered: {got}")
                    elif got.get("topic") == topic:
                        offsets.append(got["offset"])
                t_last = time.perf_counter() - t0
                cpu = cpu_s(b.pid) - cpu0
            first = since["offset"] + 1
            if offsets != list(range(first, first + args.missed)):
                raise RuntimeError("recovery out of order, with a gap or a duplicate")
            runs.append({"ack_ms": t_ack * 1e3, "all_ms": t_last * 1e3, "cpu_ms": cpu * 1e3})
    finally:
        a.stop()
        b.stop()
    return {
        "missed": args.missed,
        "runs": runs,
        **{
            f"median_{key}": statistics.median(r[key] for r in runs)
            for key in ("ack_ms", "all_ms", "cpu_ms")
        },
    }


def render(results: dict[str, Any]) -> str:
    lines = [f"fan-out: {results['m']} msgs per phase at {results['rate']:.0f}/s, 2 instances"]
    lines += [
        "",
        "| subscribers | topic | server CPU µs / delivery | Redis CPU µs / publish "
        "| p50 / p99 ms | lost / dup |",
        "|---:|---|---:|---:|---|---|",
    ]
    for fan in results["fanout"]:
        for label in ("plain", "history"):
            cpu = fan[f"{label}_server_cpu_us_per_delivery"]
            rcpu = fan[f"{label}_redis_cpu_us_per_publish"]
            lines.append(
                f"| {fan['n']} | {label} | {cpu:.2f} | {rcpu:.1f} | "
                f"{fan[f'{label}_p50_ms']:.2f} / {fan[f'{label}_p99_ms']:.2f} | "
                f"{fan[f'{label}_lost']} / {fan[f'{label}_dup']} |"
            )
        ratio, rratio = fan["cpu_per_delivery_ratio"], fan["redis_cpu_per_publish_ratio"]
        lines.append(
            f"| {fan['n']} | **history / plain** | **{ratio:.2f}** | **{rratio:.2f}** | | |"
        )
    rec = results.get("recovery")
    if rec:
        lines += [
            "",
            f"recovery of {rec['missed']} missed events (subscribe with since, "
            f"{len(rec['runs'])} runs, medians): ack after {rec['median_ack_ms']:.1f} ms, "
            f"every missed event after {rec['median_all_ms']:.1f} ms, "
            f"server CPU {rec['median_cpu_ms']:.1f} ms",
            "runs (ack / all / cpu ms): "
            + ", ".join(
                f"{r['ack_ms']:.0f}/{r['all_ms']:.0f}/{r['cpu_ms']:.0f}" for r in rec["runs"]
            ),
        ]
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    log_dir = Path(tempfile.mkdtemp(prefix="asyncws-history-fanout-"))
    results: dict[str, Any] = {"m": args.m, "rate": args.rate, "repeat": args.repeat}
    with RedisServer() as redis:
        results["fanout"] = [await fanout(n, args, redis, log_dir) for n in args.n]
        print("[history_fanout] recovery ...", file=sys.stderr, flush=True)
        results["recovery"] = await recovery(args, redis, log_dir)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer messages, one run of each")
    ap.add_argument("-n", type=lambda s: [int(x) for x in s.split(",")], default=[20, 200])
    ap.add_argument("-m", type=int, default=None, help="messages per phase (default 1500)")
    ap.add_argument("--rate", type=float, default=150.0, help="msg/s (default 150)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each, medians (default 3)")
    ap.add_argument("--missed", type=int, default=1000, help="events to recover (default 1000)")
    ap.add_argument("--recoveries", type=int, default=5, help="recovery runs (default 5)")
    ap.add_argument("--quiet-wait", type=float, default=15.0, help="wait for an idle machine")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()
    args.m = args.m or (500 if args.quick else 1500)
    if args.quick:
        args.repeat, args.recoveries = 1, 3
    install_signal_handlers()
    try:
        results = asyncio.run(amain(args))
    finally:
        stop_all()
    print(render(results))
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
