#!/usr/bin/env python3
"""A short side-by-side run (< 60 s) that prints asyncws ÷ a raw baseline, measured together.

    .venv/bin/python benchmarks/ci_guard.py                 # raw, compat, declarative
    .venv/bin/python benchmarks/ci_guard.py --json out.json
    .venv/bin/python benchmarks/ci_guard.py --repeat 3      # median of 3 interleaved rounds

Systems, each as 2 uvicorn instances on one private Redis, same load client, same frames:

* ``raw``          benchmarks/raw_app.py: one Redis subscription per instance, the payload
                   forwarded unchanged to each local subscriber (the ceiling);
* ``compat``       benchmarks/compat_app.py: asyncws' seed-compatible ``WebSocketManager`` API;
* ``declarative``  benchmarks/bench_app.py: ``AsyncWS`` + ``Router`` + a pydantic topic.

Per system: idle CPU, RSS per connection (N subscribers), a saturation phase (publisher at
most ``--window`` messages ahead of a probe), a fixed-rate phase, and phase 3, the inbound
path (peerbench's ``p3_inbound``: ``--inbound-k`` publisher connections on A, each on its
own topic ``bench/i{j}``, ``--inbound-rate`` msg/s in total, one subscriber per topic on B).
Then the byte-bound scenario for the asyncws systems (``raw`` has no queue: one stalled
reader blocks its fan-out loop): one instance, ``--stalled`` readers that stop reading,
each on its own topic, and healthy subscribers of every topic, while 20 KB messages flood
those topics; it prints the server's peak RSS growth per stalled reader (the queue's bound
is 1 MiB) and what the healthy ones got. It prints ratios
(system ÷ raw), not verdicts: absolute times depend on the machine, ratios measured in one
run much less. The exit status is 1 only when something is functionally wrong (a lost or
duplicated delivery, a server error in the logs, a system that did not run), 0 otherwise;
without a redis-server binary it prints SKIP and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
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
    http_json,
    install_signal_handlers,
    rss_kib,
    run_phase,
    stop_all,
    wait_quiet,
    write_json,
)

SYSTEMS = {
    "raw": ("benchmarks.raw_app:app", "topic"),
    "compat": ("benchmarks.compat_app:app", "send"),
    "declarative": ("benchmarks.bench_app:app", "topic"),
}
# The targets of the "Performance" issue, as ratios to raw (informational here).
TARGETS = {
    "p1_msgs_s": (">=", 0.9),
    "p1_cpu_s_per_1k": ("<=", 1.25),
    "p2_cpu_s_per_1k": ("<=", 1.25),
    "p2_p99_ms": ("<=", 1.5),
    "rss_kib_per_conn": ("<=", 1.2),
    # "Performance, round 2": the inbound path
    "p3_cpu_s_per_1k": ("<=", 1.0),
    "p3_p99_ms": ("<=", 1.25),
}


async def run_system(
    name: str, args: argparse.Namespace, redis: RedisServer, log_dir: Path
) -> dict[str, Any]:
    app, kind = SYSTEMS[name]
    env = {"ASYNCWS_BENCH_REDIS": redis.url}
    path = args.asyncws_path if name != "raw" else None
    servers: list[Server] = []
    workers: list[LoadWorker] = []
    n, m = args.n, args.m
    out: dict[str, Any] = {"system": name}
    lat_dir = log_dir / "lat"
    lat_dir.mkdir(exist_ok=True)
    try:
        servers = [Server(app, env, log_dir, path).start(), Server(app, env, log_dir, path).start()]
        await asyncio.sleep(0.5)
        c0, t0 = [cpu_s(s.pid) for s in servers], time.monotonic()
        await asyncio.sleep(1.0)
        dt = time.monotonic() - t0
        out["idle_cpu_pct"] = max(
            (cpu_s(s.pid) - c) / dt * 100 for s, c in zip(servers, c0, strict=True)
        )
        ports = [s.port for s in servers]
        size = max(m, args.m3)  # seqs per phase in the load workers
        pub = await LoadWorker.spawn(f"{name}-pub", size, log_dir, phases=3)
        workers.append(pub)
        subs = [await LoadWorker.spawn(f"{name}-sub{k}", size, log_dir, phases=3) for k in range(2)]
        workers += subs
        await pub.call("open", group="pub", ports=[ports[0]], count=1, record=False)
        await pub.call(
            "open",
            group="probe",
            ports=[ports[1]],
            count=1,
            topics=["bench/t"],
            ack=False,
            deflate=args.deflate,
        )
        await asyncio.sleep(0.3)
        rss0 = sum(rss_kib(s.pid) for s in servers)
        shares = [n - n // 2, n // 2]
        res = await asyncio.gather(
            *(
                w.call(
                    "open",
                    timeout=60,
                    group="sub",
                    ports=ports,
                    count=c,
                    topics=["bench/t"],
                    ack=False,
                    offset=off,
                    deflate=args.deflate,
                )
                for w, c, off in zip(subs, shares, (0, shares[0]), strict=True)
            )
        )
        opened = sum(r["opened"] for r in res)
        if opened != n:
            raise RuntimeError(f"opened {opened}/{n} subscribers: {[r['errors'] for r in res]}")
        await asyncio.sleep(1.0)
        out["rss_kib_per_conn"] = (sum(rss_kib(s.pid) for s in servers) - rss0) / n
        # warm-up: every subscription is live once every subscriber got a seq=-1 message
        t0, warm = time.monotonic(), 0
        while time.monotonic() - t0 < 15:
            await pub.call("warmup", kind=kind, targets=["bench/t"])
            await asyncio.sleep(0.1)
            warm = sum([(await w.call("status", group="sub"))["warm"] for w in subs])
            warm += (await pub.call("status", group="probe"))["warm"]
            if warm >= n + 1:
                break
        if warm < n + 1:
            raise RuntimeError(f"warm-up: {warm}/{n + 1} subscribers live after 15 s")
        await asyncio.sleep(0.3)
        p1 = Phase(0, kind, ["bench/t"], n * m, window=args.window, cap_s=20, count=m)
        p2 = Phase(1, kind, ["bench/t"], n * m, rate=args.rate, cap_s=20, count=m)
        out["p1"] = await run_phase(p1, pub, subs, servers, redis.pid, lat_dir)
        await asyncio.sleep(0.3)
        out["p2"] = await run_phase(p2, pub, subs, servers, redis.pid, lat_dir)
        out["compressed_frames"] = sum(
            [(await w.call("status", group="sub"))["compressed"] for w in subs]
        )
        if args.inbound_k:
            out["p3"] = await inbound_phase(kind, args, pub, subs, servers, redis, lat_dir)
    finally:
        for w in workers:
            await w.quit()
        for s in servers:
            s.stop()
        out["server_log_errors"] = sum(s.log_errors() for s in servers)
    return out


async def inbound_phase(
    kind: str,
    args: argparse.Namespace,
    pub: LoadWorker,
    subs: list[LoadWorker],
    servers: list[Server],
    redis: RedisServer,
    lat_dir: Path,
) -> dict[str, Any]:
    """Phase 3: K publishers on A (one topic each), one subscriber per topic on B."""
    k = args.inbound_k
    topics = [f"bench/i{j}" for j in range(k)]
    ports = [s.port for s in servers]
    opened = await pub.call("open", group="pubs", ports=[ports[0]], count=k, record=False)
    shares = [k - k // 2, k // 2]
    res = await asyncio.gather(
        *(
            w.call(
                "open",
                group="sub3",
                ports=[ports[1]],
                count=c,
                topics=["bench/i{i}"],
                ack=False,
                offset=off,
                deflate=args.deflate,
            )
            for w, c, off in zip(subs, shares, (0, shares[0]), strict=True)
        )
    )
    if opened["opened"] != k or sum(r["opened"] for r in res) != k:
        raise RuntimeError(f"phase 3: opened {opened['opened']} publishers, {res} subscribers")
    t0, warm = time.monotonic(), 0
    while time.monotonic() - t0 < 15:
        await pub.call("warmup", kind=kind, targets=topics)
        await asyncio.sleep(0.1)
        warm = sum([(await w.call("status", group="sub3"))["warm"] for w in subs])
        if warm >= k:
            break
    if warm < k:
        raise RuntimeError(f"phase 3 warm-up: {warm}/{k} subscribers live after 15 s")
    await asyncio.sleep(0.3)
    p3 = Phase(
        2,
        kind,
        topics,
        args.m3,
        rate=args.inbound_rate,
        cap_s=20,
        groups=["sub3"],
        op="publish_many",
        count=args.m3,
    )
    return await run_phase(p3, pub, subs, servers, redis.pid, lat_dir)


async def run_bytes(
    name: str, args: argparse.Namespace, redis: RedisServer, log_dir: Path
) -> dict[str, Any]:
    """The byte-bound scenario (see the module docstring), on one instance."""
    app, kind = SYSTEMS[name]
    env = {"ASYNCWS_BENCH_REDIS": redis.url}
    path = args.asyncws_path
    servers: list[Server] = []
    workers: list[LoadWorker] = []
    stalled, healthy, m = args.stalled, 4, args.mb
    topics = [f"bench/s{j}" for j in range(stalled)]
    lat_dir = log_dir / "lat"
    lat_dir.mkdir(exist_ok=True)
    out: dict[str, Any] = {"system": name, "stalled": stalled, "healthy": healthy}
    try:
        servers = [Server(app, env, log_dir, path).start()]
        port = servers[0].port
        pub = await LoadWorker.spawn(f"{name}-bytes-pub", m, log_dir, phases=1)
        sub = await LoadWorker.spawn(f"{name}-bytes-sub", m, log_dir, phases=1)
        workers += [pub, sub]
        await pub.call("open", group="pub", ports=[port], count=1, record=False)
        await pub.call("open", group="probe", ports=[port], count=1, topics=topics, ack=False)
        await sub.call("open", group="sub", ports=[port], count=healthy, topics=topics, ack=False)
        await sub.call(
            "open",
            group="stalled",
            ports=[port],
            count=stalled,
            topics=["bench/s{i}"],
            ack=False,
            rcvbuf=32 * 1024,
        )
        t0, warm = time.monotonic(), 0
        while time.monotonic() - t0 < 15:
            await pub.call("warmup", kind=kind, targets=topics)
            await asyncio.sleep(0.1)
            warm = (await sub.call("status", group="sub"))["warm"]
            warm += (await sub.call("status", group="stalled"))["warm"]
            if warm >= healthy + stalled:
                break
        if warm < healthy + stalled:
            raise RuntimeError(f"byte bound warm-up: {warm}/{healthy + stalled} live after 15 s")
        await sub.call("stall", group="stalled")
        await asyncio.sleep(0.5)
        phase = Phase(0, kind, topics, healthy * m, window=args.window, cap_s=30, pad=20_000)
        p = await run_phase(phase, pub, [sub], servers, redis.pid, lat_dir)
        out["phase"] = p
        out["rss_peak_growth_kib_per_stalled"] = p["server_rss_peak_growth_kib"] / stalled
        if name == "declarative":
            stats = http_json(port, "/_bench/stats")
            out["slow_consumer_closes"] = stats.get("slow_consumer_closes")
    finally:
        for w in workers:
            await w.quit()
        for s in servers:
            s.stop()
        out["server_log_errors"] = sum(s.log_errors() for s in servers)
    return out


def metrics(r: dict[str, Any]) -> dict[str, float | None]:
    p3 = r.get("p3")
    return {
        "p1_msgs_s": r["p1"]["delivered_msgs_s"],
        "p1_cpu_s_per_1k": r["p1"]["server_cpu_s_per_1k"],
        "p2_cpu_s_per_1k": r["p2"]["server_cpu_s_per_1k"],
        "p2_p99_ms": r["p2"]["latency_ms"]["p99"],
        "rss_kib_per_conn": r["rss_kib_per_conn"],
        "p3_cpu_s_per_1k": p3["server_cpu_s_per_1k"] if p3 else None,
        "p3_p99_ms": p3["latency_ms"]["p99"] if p3 else None,
    }


def _median(vals: list[float | None]) -> float | None:
    xs = [v for v in vals if v is not None]
    return statistics.median(xs) if xs else None


def _f(v: float | None, nd: int) -> str:
    return "-" if v is None else f"{v:,.{nd}f}"


async def amain(args: argparse.Namespace) -> int:
    systems = [s for s in args.systems.split(",") if s]
    log_dir = Path(tempfile.mkdtemp(prefix="asyncws-ci-guard-"))
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    problems: list[str] = []
    t_start = time.monotonic()
    with RedisServer() as redis:
        for rnd in range(args.repeat):
            for name in systems:
                if args.quiet_wait:
                    busy = wait_quiet(args.quiet_wait)
                    if busy > 0.15:
                        print(
                            f"[ci_guard] note: the machine is {busy:.0%} busy before {name}",
                            file=sys.stderr,
                        )
                try:
                    r = await run_system(name, args, redis, log_dir)
                except Exception as exc:
                    problems.append(f"{name} (round {rnd + 1}): {type(exc).__name__}: {exc}")
                    continue
                runs[name].append(r)
                for ph in ("p1", "p2", "p3"):
                    if ph not in r:
                        continue
                    p = r[ph]
                    if p["lost"] or p["duplicates"]:
                        problems.append(
                            f"{name} {ph}: lost {p['lost']}, duplicated {p['duplicates']} ({p['outcome']})"
                        )
                if r["server_log_errors"]:
                    problems.append(
                        f"{name}: {r['server_log_errors']} error lines in the server logs ({log_dir})"
                    )
        byte_runs: dict[str, dict[str, Any]] = {}
        for name in systems:
            if name == "raw" or not args.stalled:
                continue
            try:
                b = await run_bytes(name, args, redis, log_dir)
            except Exception as exc:
                problems.append(f"{name} byte bound: {type(exc).__name__}: {exc}")
                continue
            byte_runs[name] = b
            p = b["phase"]
            if p["lost"] or p["duplicates"]:
                problems.append(
                    f"{name} byte bound: healthy subscribers lost {p['lost']}, "
                    f"duplicated {p['duplicates']} ({p['outcome']})"
                )
            if b["server_log_errors"]:
                problems.append(f"{name} byte bound: {b['server_log_errors']} error lines")
    summary: dict[str, dict[str, float | None]] = {}
    for name, rs in runs.items():
        if rs:
            ms = [metrics(r) for r in rs]
            summary[name] = {k: _median([x[k] for x in ms]) for k in ms[0]}
            summary[name]["p2_p50_ms"] = _median([r["p2"]["latency_ms"]["p50"] for r in rs])
            summary[name]["idle_cpu_pct"] = _median([r["idle_cpu_pct"] for r in rs])
    elapsed = time.monotonic() - t_start
    print(
        f"ci_guard: N={args.n} subscribers on 2 instances, M={args.m}/phase, saturation window {args.window}, "
        f"fixed rate {args.rate:g} msg/s; {os.cpu_count()} CPUs; {args.repeat} round(s), median; {elapsed:.0f}s"
        f"{'; subscribers negotiate permessage-deflate' if args.deflate else ''}\n"
    )
    print(
        "| system | P1 msg/s | P1 CPU s/1k | P2 CPU s/1k | P2 p50 / p99 ms | RSS KiB/conn | idle CPU % "
        "| P3 CPU s/1k msgs (A / B) | P3 p99 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in summary.items():
        split = runs[name][-1].get("p3", {}).get("server_cpu_per_server_s")
        per_k = args.m3 / 1000
        ab = f" ({split[0] / per_k:.3f} / {split[1] / per_k:.3f})" if split else ""
        print(
            f"| {name} | {_f(s['p1_msgs_s'], 0)} | {_f(s['p1_cpu_s_per_1k'], 4)} | {_f(s['p2_cpu_s_per_1k'], 4)} | "
            f"{_f(s['p2_p50_ms'], 2)} / {_f(s['p2_p99_ms'], 2)} | {_f(s['rss_kib_per_conn'], 1)} | {_f(s['idle_cpu_pct'], 1)} "
            f"| {_f(s['p3_cpu_s_per_1k'], 4)}{ab} | {_f(s['p3_p99_ms'], 2)} |"
        )
    if args.deflate:
        got = ", ".join(
            f"{n} {rs[-1].get('compressed_frames', 0):,}" for n, rs in runs.items() if rs
        )
        print(f"\nframes the subscribers received compressed (P1+P2): {got}")
    ratios: dict[str, dict[str, float | None]] = {}
    base = summary.get("raw")
    if base:
        print(
            "\nratio ÷ raw (target in brackets; msg/s: higher is better, the rest: lower is better)\n"
        )
        cols = list(TARGETS)
        print(
            "| system | "
            + " | ".join(f"{c} [{TARGETS[c][0]} {TARGETS[c][1]}]" for c in cols)
            + " |"
        )
        print("|---|" + "---:|" * len(cols))
        for name, s in summary.items():
            ratios[name] = {
                c: (s[c] / base[c] if s[c] is not None and base[c] else None) for c in cols
            }
            cells = []
            for c in cols:
                v = ratios[name][c]
                op, limit = TARGETS[c]
                ok = v is not None and (v >= limit if op == ">=" else v <= limit)
                cells.append(
                    "-"
                    if v is None
                    else f"{v:.2f}{'' if ok else ' (above target)' if op == '<=' else ' (below target)'}"
                )
            print(f"| {name} | " + " | ".join(cells) + " |")
    if byte_runs:
        print(
            f"\nbyte bound: {args.stalled} stalled readers (one topic each) + 4 healthy "
            f"subscribers of every topic, {args.mb} messages of 20 KB (queue bound 1 MiB)\n"
        )
        print(
            "| system | peak RSS growth MiB / stalled reader | healthy lost / dup | "
            "healthy p99 ms | slow-consumer closes |"
        )
        print("|---|---:|---:|---:|---:|")
        for name, b in byte_runs.items():
            p = b["phase"]
            closes = b.get("slow_consumer_closes")
            print(
                f"| {name} | {b['rss_peak_growth_kib_per_stalled'] / 1024:.2f} | "
                f"{p['lost']} / {p['duplicates']} | {_f(p['latency_ms']['p99'], 1)} | "
                f"{'-' if closes is None else closes} |"
            )
    for p in problems:
        print(f"PROBLEM: {p}")
    if args.json:
        write_json(
            Path(args.json),
            {
                "config": vars(args),
                "summary": summary,
                "ratios": ratios,
                "runs": runs,
                "byte_bound": byte_runs,
                "problems": problems,
            },
        )
    if not problems:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 1 if problems else 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("-n", type=int, default=200, help="subscribers (default 200)")
    ap.add_argument("-m", type=int, default=500, help="messages per phase (default 500)")
    ap.add_argument("--rate", type=float, default=100.0, help="phase 2 msg/s (default 100)")
    ap.add_argument("--window", type=int, default=100, help="phase 1 window (default 100)")
    ap.add_argument(
        "--inbound-k", type=int, default=100, help="phase 3 publishers = topics (0: no phase 3)"
    )
    ap.add_argument("--inbound-rate", type=float, default=2000.0, help="phase 3 msg/s in total")
    ap.add_argument("--m3", type=int, default=2000, help="phase 3 messages (default 2000)")
    ap.add_argument(
        "--stalled", type=int, default=4, help="byte-bound stalled readers (0: no scenario)"
    )
    ap.add_argument("--mb", type=int, default=1000, help="byte-bound messages of 20 KB")
    ap.add_argument(
        "--deflate",
        action="store_true",
        help="subscribers offer permessage-deflate, as browsers do (uvicorn accepts it)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds; the median is shown")
    ap.add_argument(
        "--asyncws-path", default=None, help="measure the asyncws package in this folder"
    )
    ap.add_argument("--json", default=None, help="write every figure to this file")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each system, wait up to this many seconds for other work to stop",
    )
    args = ap.parse_args()
    unknown = [s for s in args.systems.split(",") if s and s not in SYSTEMS]
    if unknown:
        ap.error(f"unknown systems {unknown}; have {list(SYSTEMS)}")
    if shutil.which("redis-server") is None:
        print("SKIP: ci_guard needs redis-server (apt-get install redis-server)")
        return 0
    install_signal_handlers()
    try:
        return asyncio.run(amain(args))
    except KeyboardInterrupt:
        return 130
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
