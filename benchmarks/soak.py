"""Soak: churn connections across two instances for a while; check that nothing leaks.

    python benchmarks/soak.py                  # ~3 minutes (plus ~20 s of warm-up and settling)
    python benchmarks/soak.py --seconds 20     # the short form the test suite runs

It starts its own Redis and two uvicorn instances of ``tests.apps.ops_app`` (on 127.0.0.1,
free ports; stopped by PID at the end). ``--clients`` concurrent loops each connect to a
random instance (some as a user), subscribe to 1-3 rooms (now and then a wildcard), publish,
send to their own connection id and user, read for a moment, and disconnect: cleanly, or by
dropping the TCP connection without a closing handshake. Every loop and wait is bounded.

Every ``--interval`` seconds it records, per instance, from ``/debug/state``: resident memory
(RSS), asyncio tasks, connections, users, topic index size (patterns and nodes), queued
messages, background tasks and the broker's subscriptions. After a warm-up it takes a
baseline; when the churn ends and the instances are idle again it takes a final sample, and
checks that the counts are back to the baseline exactly, that the task count is back, and that
memory stopped growing (RSS at the end of the churn vs. half-way through it) and is close to
the baseline. It writes a JSON (config, samples, checks) and a CSV (samples) and prints a
summary; the exit status is 0 when every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers import RedisServer, UvicornServer  # noqa: E402
from tests.wsclient import WsClient, http_get_json  # noqa: E402

APP = "tests.apps.ops_app:app"
ROOMS = 30
USERS = 20
MiB = 1 << 20

#: Values that must come back exactly to the baseline once every client is gone.
EXACT = (
    "connections",
    "users",
    "index_patterns",
    "index_nodes",
    "queued",
    "broker_channels",
    "broker_patterns",
)
SAMPLE_FIELDS = (
    "t",
    "phase",
    "instance",
    "rss",
    "tasks",
    "connections",
    "users",
    "index_patterns",
    "index_nodes",
    "queued",
    "queue_max",
    "background",
    "broker_channels",
    "broker_patterns",
)


@dataclass
class Churn:
    """What the client loops did."""

    cycles: int = 0
    aborted: int = 0
    publishes: int = 0
    received: int = 0
    errors: Counter[str] = field(default_factory=Counter)


async def _client_loop(
    urls: list[str], deadline: float, rng: random.Random, churn: Churn, stop: asyncio.Event
) -> None:
    while time.monotonic() < deadline and not stop.is_set():
        user = f"u{rng.randrange(USERS)}" if rng.random() < 0.6 else None
        url = rng.choice(urls) + (f"?user={user}" if user else "")
        client = WsClient(url, timeout=5.0)
        try:
            async with asyncio.timeout(15):
                await client.open()
                rooms = rng.sample(range(ROOMS), rng.randint(1, 3))
                for room in rooms:
                    await client.subscribe(f"chat/r{room}")
                if rng.random() < 0.05:
                    await client.subscribe("chat/+")
                for n in range(rng.randint(1, 3)):
                    room = rng.choice(rooms)
                    answer = await client.publish(f"chat/r{room}", {"source": "soak", "n": n})
                    churn.publishes += 1
                    if answer["type"] != "ack":
                        churn.errors[answer.get("code", "?")] += 1
                me = await client.whoami()
                await client.call("to_conn", {"conn_id": me["conn_id"], "data": {"id": "self"}})
                if user:
                    await client.call("to_user", {"user": user, "data": {"id": "user"}})
                # read a little of what the others publish
                with contextlib.suppress(TimeoutError):
                    await client.wait_for(lambda evs: False, timeout=rng.uniform(0.0, 0.2))
                churn.received += len(client.events)
                if rng.random() < 0.2:
                    client.abort()  # vanish without a closing handshake
                    churn.aborted += 1
                churn.cycles += 1
        except (OSError, TimeoutError, ConnectionError) as exc:
            churn.errors[type(exc).__name__] += 1
        except Exception as exc:  # websockets' ConnectionClosed and the like
            churn.errors[type(exc).__name__] += 1
        finally:
            await client.close()


async def _state(server: UvicornServer) -> dict[str, Any]:
    code, body = await http_get_json(server.url + "/debug/state", timeout=5.0)
    if code != 200 or not isinstance(body, dict):
        raise RuntimeError(f"{server}: /debug/state answered {code}: {body!r}")
    return body


async def _sample(
    servers: list[UvicornServer], t0: float, phase: str, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    states = await asyncio.gather(*(_state(s) for s in servers))
    for i, state in enumerate(states):
        row = {k: state.get(k) for k in SAMPLE_FIELDS if k in state}
        row.update(t=round(time.monotonic() - t0, 2), phase=phase, instance=i)
        rows.append(row)
    return states


async def _settle(servers: list[UvicornServer], within: float = 15.0) -> None:
    """Wait (bounded) until no instance holds a connection or queued message."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        states = await asyncio.gather(*(_state(s) for s in servers))
        if all(s["connections"] == 0 and s["background"] == 0 for s in states):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # let the last unsubscribes and closes finish


async def _churn(
    urls: list[str], seconds: float, clients: int, seed: int, churn: Churn
) -> list[asyncio.Task[None]]:
    stop = asyncio.Event()
    deadline = time.monotonic() + seconds
    loop = asyncio.get_running_loop()
    return [
        loop.create_task(_client_loop(urls, deadline, random.Random(seed + i), churn, stop))
        for i in range(clients)
    ]


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    churn = Churn()
    with contextlib.ExitStack() as stack:
        redis = stack.enter_context(RedisServer())
        servers = [
            stack.enter_context(
                UvicornServer(
                    APP,
                    env={"ASYNCWS_BROKER_URL": redis.url},
                    ready_path="/health",
                )
            )
            for _ in range(args.instances)
        ]
        urls = [s.ws_url("/ws") for s in servers]
        t0 = time.monotonic()

        warm = max(2.0, min(10.0, args.seconds * 0.1))
        await asyncio.gather(*await _churn(urls, warm, args.clients, args.seed, Churn()))
        await _settle(servers)
        baseline = await _sample(servers, t0, "baseline", rows)

        tasks = await _churn(urls, args.seconds, args.clients, args.seed + 1000, churn)
        started = time.monotonic()
        half: list[dict[str, Any]] | None = None
        last: list[dict[str, Any]] = baseline
        while not all(t.done() for t in tasks):
            await asyncio.sleep(args.interval)
            last = await _sample(servers, t0, "churn", rows)
            if half is None and time.monotonic() - started >= args.seconds / 2:
                half = last
        await asyncio.gather(*tasks)
        end_of_churn = last
        await _settle(servers)
        final = await _sample(servers, t0, "final", rows)
        alive = all(s.running() for s in servers)

    checks: list[dict[str, Any]] = []
    for i, (base, end) in enumerate(zip(baseline, final, strict=True)):
        for key in EXACT:
            checks.append(
                {
                    "instance": i,
                    "check": f"{key} back to baseline",
                    "baseline": base[key],
                    "final": end[key],
                    "ok": end[key] == base[key],
                }
            )
        checks.append(
            {
                "instance": i,
                "check": "asyncio tasks back to baseline (+1)",
                "baseline": base["tasks"],
                "final": end["tasks"],
                "ok": end["tasks"] <= base["tasks"] + 1,
            }
        )
        grown = end["rss"] - base["rss"]
        checks.append(
            {
                "instance": i,
                "check": f"RSS within {args.rss_slack_mib} MiB of the baseline",
                "baseline": base["rss"],
                "final": end["rss"],
                "ok": grown <= args.rss_slack_mib * MiB,
            }
        )
        if half is not None:
            late = end_of_churn[i]["rss"] - half[i]["rss"]
            checks.append(
                {
                    "instance": i,
                    "check": f"RSS growth over the second half of the churn <= "
                    f"{args.rss_late_mib} MiB",
                    "baseline": half[i]["rss"],
                    "final": end_of_churn[i]["rss"],
                    "ok": late <= args.rss_late_mib * MiB,
                }
            )
    checks.append(
        {
            "instance": None,
            "check": "instances alive",
            "baseline": 1,
            "final": int(alive),
            "ok": alive,
        }
    )
    checks.append(
        {
            "instance": None,
            "check": "client cycles completed",
            "baseline": 1,
            "final": churn.cycles,
            "ok": churn.cycles > 0,
        }
    )
    return {
        "config": vars(args),
        "churn": {
            "cycles": churn.cycles,
            "aborted": churn.aborted,
            "publishes": churn.publishes,
            "frames_received": churn.received,
            "errors": dict(churn.errors),
        },
        "baseline": baseline,
        "final": final,
        "checks": checks,
        "ok": all(c["ok"] for c in checks),
        "samples": rows,
    }


def _write(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = out / f"soak-{stamp}.json"
    csv_path = out / f"soak-{stamp}.csv"
    json_path.write_text(json.dumps(result, indent=2, default=str))
    with csv_path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SAMPLE_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result["samples"])
    return json_path, csv_path


def _summary(result: dict[str, Any]) -> str:
    lines = []
    c = result["churn"]
    lines.append(
        f"soak: {result['config']['seconds']:.0f}s, {result['config']['clients']} client loops, "
        f"{c['cycles']} connect/disconnect cycles ({c['aborted']} aborted), "
        f"{c['publishes']} publishes, {c['frames_received']} frames received, "
        f"errors {c['errors'] or 'none'}"
    )
    for i, (base, end) in enumerate(zip(result["baseline"], result["final"], strict=True)):
        peak = max((r["rss"] for r in result["samples"] if r["instance"] == i), default=end["rss"])
        peak_conns = max(
            (r["connections"] for r in result["samples"] if r["instance"] == i), default=0
        )
        lines.append(
            f"  instance {i}: RSS {base['rss'] / MiB:.1f} -> {end['rss'] / MiB:.1f} MiB "
            f"(peak {peak / MiB:.1f}), tasks {base['tasks']} -> {end['tasks']}, "
            f"connections {base['connections']} -> {end['connections']} "
            f"(peak {peak_conns}), index {base['index_patterns']}/{base['index_nodes']} -> "
            f"{end['index_patterns']}/{end['index_nodes']} (patterns/nodes), "
            f"broker subscriptions {base['broker_channels']} -> {end['broker_channels']}"
        )
    failed = [c for c in result["checks"] if not c["ok"]]
    lines.append("  all checks passed" if not failed else f"  FAILED: {failed}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="churn duration (180)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent client loops (16)")
    parser.add_argument("--instances", type=int, default=2, help="uvicorn instances (2)")
    parser.add_argument("--interval", type=float, default=1.0, help="sampling period, s (1)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument("--rss-slack-mib", type=float, default=16.0, help="final vs baseline")
    parser.add_argument(
        "--rss-late-mib", type=float, default=8.0, help="growth over the churn's second half"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results", help="output directory"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.seconds > 3600 or not 1 <= args.clients <= 200:
        parser.error("--seconds must be in (0, 3600] and --clients in [1, 200]")
    result = asyncio.run(soak(args))
    json_path, csv_path = _write(result, args.out)
    print(_summary(result))
    print(f"  wrote {json_path} and {csv_path}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
