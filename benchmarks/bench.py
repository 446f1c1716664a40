#!/usr/bin/env python3
"""asyncws scenarios on a private Redis and real uvicorn instances, one command.

    .venv/bin/python benchmarks/bench.py                 # every scenario (about 3 minutes)
    .venv/bin/python benchmarks/bench.py --quick         # smaller sizes (about 1 minute)
    .venv/bin/python benchmarks/bench.py --scenarios fanout,direct
    .venv/bin/python benchmarks/bench.py --asyncws-path /tmp/patched   # measure another copy

Scenarios (see benchmarks/README.md for what each figure means):

* ``fanout``   1 topic, N subscribers over 2 instances, publisher on A: saturation (window)
               and a fixed rate. msgs/s, p50/p99 latency, server CPU per 1,000 deliveries.
* ``direct``   messages to a connection id and to a user id held by instance B, sent from A,
               with 1k and then 10k idle connections on B: server CPU per message must not
               depend on the number of idle connections.
* ``topics``   1,000 topics, one subscriber each, spread over 4 instances: broker messages
               received per instance (``/_bench/stats``) vs a single-channel design where
               every instance receives every message.
* ``capacity`` RSS per idle connection (subscribed to a topic) at 1k, 5k, 10k connections,
               asyncws and the raw baseline (benchmarks/raw_app.py).

Prints tables, writes docs/bench-results.json and docs/bench.png (needs matplotlib: the
``bench`` extra). Starts its own Redis on a free port; stops every process it started by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (
    REPO_ROOT,
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
    write_json,
)

APP = "benchmarks.bench_app:app"
RAW_APP = "benchmarks.raw_app:app"


class Ctx:
    def __init__(self, args: argparse.Namespace, redis: RedisServer, log_dir: Path) -> None:
        self.args, self.redis, self.log_dir = args, redis, log_dir
        self.lat_dir = log_dir / "lat"
        self.lat_dir.mkdir(exist_ok=True)

    def server(self, app: str = APP) -> Server:
        env = {"ASYNCWS_BENCH_REDIS": self.redis.url}
        return Server(app, env, self.log_dir, self.args.asyncws_path).start()


async def idle_cpu(servers: list[Server], seconds: float) -> list[float]:
    c0, t0 = [cpu_s(s.pid) for s in servers], time.monotonic()
    await asyncio.sleep(seconds)
    dt = time.monotonic() - t0
    return [round((cpu_s(s.pid) - c) / dt * 100, 2) for s, c in zip(servers, c0, strict=True)]


async def wait_warm(
    pub: LoadWorker,
    workers: list[LoadWorker],
    groups: list[str],
    kind: str,
    targets: list[str],
    want: int,
    limit_s: float = 20.0,
) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        await pub.call("warmup", kind=kind, targets=targets)
        await asyncio.sleep(0.2)
        warm = 0
        for w in workers:
            for g in groups:
                warm += (await w.call("status", group=g))["warm"]
        if warm >= want:
            return round(time.monotonic() - t0, 2)
    raise RuntimeError(f"warm-up: only {warm}/{want} subscribers got a message in {limit_s:.0f}s")


async def _quit(workers: list[LoadWorker], servers: list[Server]) -> None:
    for w in workers:
        await w.quit()
    for s in servers:
        s.stop()


# -- scenarios ----------------------------------------------------------------------------------


async def scenario_fanout(ctx: Ctx) -> dict[str, Any]:
    a = ctx.args
    n, m = a.n, a.m
    servers = [ctx.server(), ctx.server()]
    workers: list[LoadWorker] = []
    out: dict[str, Any] = {"n": n, "m": m, "rate": a.rate, "window": a.window}
    try:
        await asyncio.sleep(1.0)
        out["idle_cpu_pct"] = await idle_cpu(servers, 2.0)
        pub = await LoadWorker.spawn("fan-pub", m, ctx.log_dir)
        workers.append(pub)
        subs = [await LoadWorker.spawn(f"fan-sub{k}", m, ctx.log_dir) for k in range(2)]
        workers += subs
        ports = [s.port for s in servers]
        await pub.call("open", group="pub", ports=[ports[0]], count=1, record=False)
        await pub.call("open", group="probe", ports=[ports[1]], count=1, topics=["bench/t"])
        await asyncio.sleep(0.5)
        rss0 = [rss_kib(s.pid) for s in servers]
        half = [n // 2 + n % 2, n // 2]
        res = await asyncio.gather(
            *(
                w.call("open", timeout=120, group="sub", ports=ports, count=c, topics=["bench/t"])
                for w, c in zip(subs, half, strict=True)
            )
        )
        opened = sum(r["opened"] for r in res)
        if opened != n:
            raise RuntimeError(f"fanout: opened {opened}/{n}: {[r['errors'] for r in res]}")
        await asyncio.sleep(1.0)
        rss1 = [rss_kib(s.pid) for s in servers]
        out["rss_kib_per_conn"] = round((sum(rss1) - sum(rss0)) / n, 2)
        out["warm_s"] = await wait_warm(
            pub, [pub, *subs], ["sub", "probe"], "topic", ["bench/t"], n + 1
        )
        await asyncio.sleep(0.5)
        phases = [
            ("saturation", Phase(0, "topic", ["bench/t"], n * m, window=a.window, cap_s=60)),
            ("fixed_rate", Phase(1, "topic", ["bench/t"], n * m, rate=a.rate, cap_s=60)),
        ]
        for label, ph in phases:
            out[label] = await run_phase(ph, pub, subs, servers, ctx.redis.pid, ctx.lat_dir)
            await asyncio.sleep(0.5)
        out["server_log_errors"] = sum(s.log_errors() for s in servers)
    finally:
        await _quit(workers, servers)
    return out


async def scenario_direct(ctx: Ctx) -> dict[str, Any]:
    a = ctx.args
    m, receivers = a.direct_m, 20
    steps = [1000, 10000] if not a.quick else [500, 2000]
    servers = [ctx.server(), ctx.server()]
    workers: list[LoadWorker] = []
    out: dict[str, Any] = {"m": m, "rate": a.direct_rate, "receivers": receivers, "runs": []}
    try:
        ports = [s.port for s in servers]
        pub = await LoadWorker.spawn("dm-pub", m, ctx.log_dir, phases=2 * len(steps))
        rcv = await LoadWorker.spawn("dm-rcv", m, ctx.log_dir, phases=2 * len(steps))
        idle = await LoadWorker.spawn("dm-idle", m, ctx.log_dir, phases=1)
        workers += [pub, rcv, idle]
        await pub.call("open", group="pub", ports=[ports[0]], count=1, record=False)
        r = await rcv.call(
            "open", group="sub", ports=[ports[1]], count=receivers, path="/ws?user=r{i}"
        )
        if r["opened"] != receivers:
            raise RuntimeError(f"direct: receivers {r}")
        conn_ids = (await rcv.call("whoami", group="sub"))["ids"]
        users = [f"r{i}" for i in range(receivers)]
        await wait_warm(pub, [rcv], ["sub"], "conn", conn_ids, receivers)
        have = 0
        for k, idle_n in enumerate(steps):
            t0 = time.monotonic()
            rss0 = rss_kib(servers[1].pid)
            r = await idle.call(
                "open",
                timeout=300,
                group="idle",
                ports=[ports[1]],
                count=idle_n - have,
                path="/ws?user=idle{i}",
                record=False,
                offset=have,
            )
            if r["opened"] != idle_n - have:
                raise RuntimeError(f"direct: idle connections {r}")
            connect_s = time.monotonic() - t0
            have = idle_n
            await asyncio.sleep(2.0)
            rss1 = rss_kib(servers[1].pid)
            run: dict[str, Any] = {
                "idle_connections": idle_n,
                "connect_s": round(connect_s, 1),
                "rss_kib_B": rss1,
                "rss_kib_per_new_conn_B": round((rss1 - rss0) / r["opened"], 2),
                "idle_cpu_pct_B": (await idle_cpu(servers[1:], 2.0))[0],
            }
            for j, (kind, targets) in enumerate((("conn", conn_ids), ("user", users))):
                ph = Phase(2 * k + j, kind, targets, m, rate=a.direct_rate, cap_s=60)
                run[f"to_{kind}"] = await run_phase(
                    ph, pub, [rcv], servers, ctx.redis.pid, ctx.lat_dir
                )
                await asyncio.sleep(0.3)
            out["runs"].append(run)
        out["server_log_errors"] = sum(s.log_errors() for s in servers)
    finally:
        await _quit(workers, servers)
    base, big = out["runs"][0], out["runs"][-1]
    out["cpu_per_msg_ratio_big_vs_small"] = {
        kind: _ratio(
            big[f"to_{kind}"]["server_cpu_us_per_msg"], base[f"to_{kind}"]["server_cpu_us_per_msg"]
        )
        for kind in ("conn", "user")
    }
    return out


async def scenario_topics(ctx: Ctx) -> dict[str, Any]:
    a = ctx.args
    n_topics, instances, m = a.topics, 4, a.topics_m
    servers = [ctx.server() for _ in range(instances)]
    workers: list[LoadWorker] = []
    out: dict[str, Any] = {
        "topics": n_topics,
        "instances": instances,
        "m": m,
        "rate": a.topics_rate,
    }
    try:
        ports = [s.port for s in servers]
        pub = await LoadWorker.spawn("tp-pub", m, ctx.log_dir)
        subs = [await LoadWorker.spawn(f"tp-sub{k}", m, ctx.log_dir) for k in range(2)]
        workers += [pub, *subs]
        await pub.call("open", group="pub", ports=[ports[0]], count=1, record=False)
        half = n_topics // 2
        res = await asyncio.gather(
            subs[0].call(
                "open", timeout=120, group="sub", ports=ports, count=half, topics=["bench/{i}"]
            ),
            subs[1].call(
                "open",
                timeout=120,
                group="sub",
                ports=ports,
                count=n_topics - half,
                topics=["bench/{i}"],
                offset=half,
            ),
        )
        if sum(r["opened"] for r in res) != n_topics:
            raise RuntimeError(f"topics: {res}")
        targets = [f"bench/{i}" for i in range(n_topics)]
        await wait_warm(pub, subs, ["sub"], "topic", targets, n_topics)
        await asyncio.sleep(0.5)
        before = [http_json(p, "/_bench/stats") for p in ports]
        ph = Phase(0, "topic", targets, m, rate=a.topics_rate, cap_s=60)
        out["phase"] = await run_phase(ph, pub, subs, servers, ctx.redis.pid, ctx.lat_dir)
        after = [http_json(p, "/_bench/stats") for p in ports]
        received = [
            x["broker_messages"] - y["broker_messages"] for x, y in zip(after, before, strict=True)
        ]
        delivered = [x["deliveries"] - y["deliveries"] for x, y in zip(after, before, strict=True)]
        sent = out["phase"]["sent"]
        out["broker_messages_per_instance"] = received
        out["deliveries_per_instance"] = delivered
        out["single_channel_broker_messages"] = sent * instances
        out["broker_messages_total"] = sum(received)
        out["ratio_vs_single_channel"] = _ratio(sum(received), sent * instances)
        out["server_log_errors"] = sum(s.log_errors() for s in servers)
    finally:
        await _quit(workers, servers)
    return out


async def scenario_capacity(ctx: Ctx) -> dict[str, Any]:
    a = ctx.args
    steps = [1000, 5000, 10000] if not a.quick else [500, 1000, 2000]
    out: dict[str, Any] = {"steps": steps}
    for label, app in (("asyncws", APP), ("raw_baseline", RAW_APP)):
        server = ctx.server(app)
        worker = await LoadWorker.spawn(f"cap-{label}", 1, ctx.log_dir, phases=1)
        points = []
        try:
            await asyncio.sleep(1.0)
            idle_empty = (await idle_cpu([server], 2.0))[0]
            rss0 = rss_kib(server.pid)
            have = 0
            for n in steps:
                r = await worker.call(
                    "open",
                    timeout=300,
                    group="idle",
                    ports=[server.port],
                    count=n - have,
                    topics=["bench/t"],
                    record=False,
                    ack=False,
                    offset=have,
                )
                if r["opened"] != n - have:
                    raise RuntimeError(f"capacity {label}: {r}")
                have = n
                await asyncio.sleep(2.0)
                rss = rss_kib(server.pid)
                points.append(
                    {"connections": n, "rss_kib": rss, "kib_per_conn": round((rss - rss0) / n, 2)}
                )
            idle_full = (await idle_cpu([server], 3.0))[0]
        finally:
            await worker.quit()
            server.stop()
        out[label] = {
            "rss_kib_empty": rss0,
            "points": points,
            "idle_cpu_pct_empty": idle_empty,
            f"idle_cpu_pct_{steps[-1]}_conns": idle_full,
        }
    out["kib_per_conn_ratio_vs_raw"] = _ratio(
        out["asyncws"]["points"][-1]["kib_per_conn"],
        out["raw_baseline"]["points"][-1]["kib_per_conn"],
    )
    return out


SCENARIOS = {
    "fanout": scenario_fanout,
    "direct": scenario_direct,
    "topics": scenario_topics,
    "capacity": scenario_capacity,
}


# -- report -------------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def _f(v: Any, nd: int = 0) -> str:
    return "-" if v is None else f"{v:,.{nd}f}"


def render(results: dict[str, Any]) -> str:
    lines: list[str] = []
    fan = results.get("fanout")
    if fan and "error" not in fan:
        lines.append(f"## fanout: 1 topic, {fan['n']} subscribers on 2 instances, M={fan['m']}\n")
        lines.append(
            "| phase | delivered msg/s | p50 ms | p99 ms | lost / dup | server CPU s/1k deliv. | µs/delivery |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for label in ("saturation", "fixed_rate"):
            p = fan[label]
            name = f"window {fan['window']}" if label == "saturation" else f"{fan['rate']:g} msg/s"
            lines.append(
                f"| {name} | {_f(p['delivered_msgs_s'])} | {_f(p['latency_ms']['p50'], 2)} | "
                f"{_f(p['latency_ms']['p99'], 2)} | {p['lost']} / {p['duplicates']} | "
                f"{_f(p['server_cpu_s_per_1k'], 4)} | {_f((p['server_cpu_s_per_1k'] or 0) * 1000, 1)} |"
            )
        lines.append(
            f"\nidle CPU %/instance {fan['idle_cpu_pct']}, RSS KiB/conn {fan['rss_kib_per_conn']}, "
            f"server log errors {fan['server_log_errors']}\n"
        )
    dm = results.get("direct")
    if dm and "error" not in dm:
        lines.append(
            f"## direct: A -> B, {dm['m']} msgs at {dm['rate']:g} msg/s, {dm['receivers']} receivers\n"
        )
        lines.append(
            "| idle conns on B | to | server CPU µs/msg | redis CPU µs/msg | p50 ms | p99 ms | lost / dup | RSS KiB/new conn (B) | connect s |"
        )
        lines.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for run in dm["runs"]:
            for kind in ("conn", "user"):
                p = run[f"to_{kind}"]
                lines.append(
                    f"| {run['idle_connections']:,} | {kind} id | {_f(p['server_cpu_us_per_msg'], 1)} | "
                    f"{_f(p['redis_cpu_s'] / max(p['sent'], 1) * 1e6, 1)} | {_f(p['latency_ms']['p50'], 2)} | "
                    f"{_f(p['latency_ms']['p99'], 2)} | {p['lost']} / {p['duplicates']} | "
                    f"{run['rss_kib_per_new_conn_B']} | {run['connect_s']} |"
                )
        r = dm["cpu_per_msg_ratio_big_vs_small"]
        lines.append(
            f"\nCPU per message, most idle ÷ fewest idle: conn {r['conn']}, user {r['user']}\n"
        )
    tp = results.get("topics")
    if tp and "error" not in tp:
        lines.append(
            f"## topics: {tp['topics']} topics, 1 subscriber each, over {tp['instances']} instances, {tp['m']} msgs\n"
        )
        lines.append("| instance | broker msgs received | deliveries | single-channel design |")
        lines.append("|---:|---:|---:|---:|")
        for i, (b, d) in enumerate(
            zip(tp["broker_messages_per_instance"], tp["deliveries_per_instance"], strict=True)
        ):
            lines.append(f"| {i} | {b:,} | {d:,} | {tp['phase']['sent']:,} |")
        p = tp["phase"]
        lines.append(
            f"\nbroker messages received: {tp['broker_messages_total']:,} vs "
            f"{tp['single_channel_broker_messages']:,} single-channel (ratio {tp['ratio_vs_single_channel']}); "
            f"lost / dup {p['lost']} / {p['duplicates']}; server CPU µs/msg {_f(p['server_cpu_us_per_msg'], 1)}; "
            f"p50 / p99 {_f(p['latency_ms']['p50'], 2)} / {_f(p['latency_ms']['p99'], 2)} ms\n"
        )
    cap = results.get("capacity")
    if cap and "error" not in cap:
        lines.append("## capacity: RSS per idle connection (subscribed to one topic)\n")
        lines.append(
            "| connections | asyncws RSS MiB | asyncws KiB/conn | raw baseline RSS MiB | raw KiB/conn |"
        )
        lines.append("|---:|---:|---:|---:|---:|")
        for x, y in zip(cap["asyncws"]["points"], cap["raw_baseline"]["points"], strict=True):
            lines.append(
                f"| {x['connections']:,} | {x['rss_kib'] / 1024:.1f} | {x['kib_per_conn']} | "
                f"{y['rss_kib'] / 1024:.1f} | {y['kib_per_conn']} |"
            )
        lines.append(
            f"\nKiB/conn asyncws ÷ raw: {cap['kib_per_conn_ratio_vs_raw']}; idle CPU % asyncws empty / full: "
            f"{cap['asyncws']['idle_cpu_pct_empty']} / {list(cap['asyncws'].values())[-1]}\n"
        )
    for name, res in results.items():
        if isinstance(res, dict) and "error" in res:
            lines.append(f"## {name}: FAILED {res['error']}\n")
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[bench] matplotlib missing (pip install -e '.[bench]'): no chart", file=sys.stderr)
        return False
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0][0]
    fan = results.get("fanout")
    if fan and "error" not in fan:
        labels = [f"saturation\n(window {fan['window']})", f"{fan['rate']:g} msg/s"]
        vals = [(fan[k]["server_cpu_s_per_1k"] or 0) * 1000 for k in ("saturation", "fixed_rate")]
        bars = ax.bar(labels, vals, color=["#4c72b0", "#55a868"])
        ax.bar_label(bars, fmt="%.1f")
        ax.set_ylabel("server CPU µs per delivery")
        ax.margins(y=0.15)
        p99 = [fan[k]["latency_ms"]["p99"] or 0 for k in ("saturation", "fixed_rate")]
        rate = fan["saturation"]["delivered_msgs_s"] or 0
        ax.set_title(
            f"fan-out, {fan['n']} subs: {rate:,.0f} deliveries/s; p99 {p99[0]:.0f} / {p99[1]:.1f} ms"
        )
    ax = axes[0][1]
    dm = results.get("direct")
    if dm and "error" not in dm:
        xs = [f"{r['idle_connections']:,} idle" for r in dm["runs"]]
        width = 0.35
        for j, kind in enumerate(("conn", "user")):
            vals = [r[f"to_{kind}"]["server_cpu_us_per_msg"] or 0 for r in dm["runs"]]
            pos = [i + (j - 0.5) * width for i in range(len(xs))]
            bars = ax.bar(pos, vals, width, label=f"to {kind} id")
            ax.bar_label(bars, fmt="%.0f")
        ax.set_xticks(range(len(xs)), xs)
        ax.set_ylabel("server CPU µs per message (A+B)")
        ax.margins(y=0.15)
        ax.set_title("direct messages: cost vs idle connections")
        ax.legend()
    ax = axes[1][0]
    tp = results.get("topics")
    if tp and "error" not in tp:
        idx = list(range(tp["instances"]))
        sent = tp["phase"]["sent"]
        ax.bar(
            [i - 0.2 for i in idx],
            tp["broker_messages_per_instance"],
            0.4,
            label="asyncws (channel per topic)",
        )
        ax.bar(
            [i + 0.2 for i in idx], [sent] * len(idx), 0.4, label="single channel", color="#c44e52"
        )
        ax.set_xticks(idx, [f"instance {i}" for i in idx])
        ax.set_ylabel("broker messages received")
        ax.set_title(
            f"{tp['topics']:,} topics over {tp['instances']} instances (ratio {tp['ratio_vs_single_channel']})"
        )
        ax.legend()
    ax = axes[1][1]
    cap = results.get("capacity")
    if cap and "error" not in cap:
        for label in ("asyncws", "raw_baseline"):
            pts = cap[label]["points"]
            base = cap[label]["rss_kib_empty"]
            ax.plot(
                [p["connections"] for p in pts],
                [(p["rss_kib"] - base) / 1024 for p in pts],
                marker="o",
                label=f"{label} ({pts[-1]['kib_per_conn']} KiB/conn)",
            )
        ax.set_xlabel("idle connections")
        ax.set_ylabel("RSS growth, MiB")
        ax.set_title("memory per idle connection")
        ax.legend()
    fig.suptitle(
        f"asyncws benchmarks ({results['machine']['cpus']} CPUs, Python {results['machine']['python']})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# -- main ---------------------------------------------------------------------------------------


async def amain(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    t0 = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="asyncws-bench-"))
    results: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "config": {k: v for k, v in vars(args).items() if k != "out"},
    }
    with RedisServer() as redis:
        results["redis_pid"] = redis.pid
        ctx = Ctx(args, redis, log_dir)
        for name in args.scenarios.split(","):
            if not name:
                continue
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            ts = time.monotonic()
            try:
                results[name] = await SCENARIOS[name](ctx)
            except Exception as exc:
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            results[name]["wall_s"] = round(time.monotonic() - ts, 1)
            print(f"[bench] {name}: {results[name]['wall_s']}s", file=sys.stderr, flush=True)
    results["elapsed_s"] = round(time.monotonic() - t0, 1)
    return results, log_dir


def report(args: argparse.Namespace, results: dict[str, Any], log_dir: Path) -> int:
    print(render(results))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench-results.json", results)
    try:
        drawn = chart(results, out / "bench.png")
    except Exception as exc:  # a missing figure must not lose the results
        print(f"[bench] no chart: {type(exc).__name__}: {exc}", file=sys.stderr)
        drawn = False
    if drawn:
        print(
            f"[bench] wrote {out / 'bench-results.json'} and {out / 'bench.png'}", file=sys.stderr
        )
    if args.keep_logs:
        print(f"[bench] logs in {log_dir}", file=sys.stderr)
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    failed = [k for k in SCENARIOS if isinstance(results.get(k), dict) and "error" in results[k]]
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma list (default: all)")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, about a minute")
    ap.add_argument("-n", type=int, default=None, help="fanout subscribers (default 200)")
    ap.add_argument("-m", type=int, default=None, help="fanout messages per phase (default 2000)")
    ap.add_argument(
        "--rate", type=float, default=100.0, help="fanout fixed rate, msg/s (default 100)"
    )
    ap.add_argument(
        "--window", type=int, default=100, help="fanout saturation window (default 100)"
    )
    ap.add_argument(
        "--direct-m", type=int, default=None, help="direct messages per phase (default 3000)"
    )
    ap.add_argument("--direct-rate", type=float, default=1000.0, help="direct msg/s (default 1000)")
    ap.add_argument(
        "--topics", type=int, default=1000, help="topics scenario: topics (default 1000)"
    )
    ap.add_argument(
        "--topics-m", type=int, default=None, help="topics scenario: messages (default 4000)"
    )
    ap.add_argument(
        "--topics-rate", type=float, default=1000.0, help="topics scenario msg/s (default 1000)"
    )
    ap.add_argument(
        "--asyncws-path", default=None, help="put this folder first on the servers' path"
    )
    ap.add_argument("--out", default=str(REPO_ROOT / "docs"), help="folder for the JSON and PNG")
    ap.add_argument("--keep-logs", action="store_true", help="keep the server and client logs")
    args = ap.parse_args()
    q = args.quick
    args.n = args.n or (60 if q else 200)
    args.m = args.m or (500 if q else 2000)
    args.direct_m = args.direct_m or (1000 if q else 3000)
    args.topics_m = args.topics_m or (1000 if q else 4000)
    unknown = [s for s in args.scenarios.split(",") if s and s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenarios {unknown}; have {list(SCENARIOS)}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # 10k connections per process need the hard limit (children inherit it)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    install_signal_handlers()
    try:
        results, log_dir = asyncio.run(amain(args))
        return report(args, results, log_dir)
    except KeyboardInterrupt:
        print("\n[bench] interrupted; stopping every process by PID", file=sys.stderr)
        return 130
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
