#!/usr/bin/env python3
"""The receiving side of fan-out, in-process: broker message -> listener -> N local sends.

    python benchmarks/delivery_path.py                     # raw, compat, declarative; µs
    python benchmarks/delivery_path.py -n 1,100,200 -k 2000 --rounds 5
    python benchmarks/delivery_path.py --callgrind         # instructions (valgrind), repeatable

What it measures is what peerbench's delivering instance does per broker message, without
the sockets: each system's app (``benchmarks/raw_app.py``, ``compat_app.py``,
``bench_app.py``) runs in one process on a real Redis (started here, on a free port) with its
real lifespan and its real broker listener; N websockets are driven through the app's ASGI
interface by a fake server whose ``send`` only counts (no framing, no ``transport.write``:
that part is uvicorn's and the kernel's, the same for every system). Every system is asked
to publish one message the way its clients do; the bytes it put on Redis are then published
K times more (sequence numbers renewed) by another process while this one's event loop is
blocked, so the K messages wait in the socket, and the CPU this process spends until all K x
N sends were counted is the figure: ``process_time`` (median of ``--rounds``), or with
``--callgrind`` the instructions counted by callgrind between two client requests (a small C
helper compiled at run time), which do not move with the machine's load.

From two values of N the cost splits into a part per broker message and a part per delivery
(least squares over the N given). Bounded: K messages per round, ``--rounds`` rounds, every
wait has a timeout; the Redis server is stopped by its PID.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
sys.path.insert(0, str(REPO_ROOT))

#: system -> (app module, subscribe frame, publish frame with {seq})
SYSTEMS: dict[str, tuple[str, bytes, bytes]] = {
    "raw": (
        "benchmarks.raw_app",
        b'{"type":"subscribe","topic":"bench/t"}',
        b'{"type":"publish","topic":"bench/t","data":{"seq":%d,"ts":1.5,"pad":"%s"}}',
    ),
    "compat": (
        "benchmarks.compat_app",
        b'{"type":"subscribe","topic":"bench/t"}',
        b'{"type":"send","topic":"bench/t","seq":%d,"ts":1.5,"pad":"%s"}',
    ),
    "declarative": (
        "benchmarks.bench_app",
        b'{"type":"subscribe","topic":"bench/t"}',
        b'{"type":"publish","topic":"bench/t","data":{"seq":%d,"ts":1.5,"pad":"%s"}}',
    ),
}
PAD = b"x" * 60  # ~100-byte payloads, as peerbench's
MARK = -7  # the seq of the captured message
_HEADER = re.compile(rb"^(aws1:[^:\n]+:)(\d+)(:\d+)?\n")

_CALLGRIND_C = r"""
#include <valgrind/callgrind.h>
void cg_zero(void) { CALLGRIND_ZERO_STATS; }
void cg_dump(const char *label) { CALLGRIND_DUMP_STATS_AT(label); }
"""


class Callgrind:
    """Zero and dump callgrind's counters from Python (no-ops outside valgrind)."""

    def __init__(self) -> None:
        build = Path(tempfile.mkdtemp(prefix="asyncws-cg-"))
        (build / "cg.c").write_text(_CALLGRIND_C)
        subprocess.run(
            ["gcc", "-O1", "-shared", "-fPIC", "-o", str(build / "cg.so"), str(build / "cg.c")],
            check=True,
        )
        self._lib = ctypes.CDLL(str(build / "cg.so"))
        self._lib.cg_dump.argtypes = [ctypes.c_char_p]

    def zero(self) -> None:
        self._lib.cg_zero()

    def dump(self, label: str) -> None:
        self._lib.cg_dump(label.encode())


# -- the fake ASGI server -----------------------------------------------------------------------


class Sink:
    """The ASGI ``send`` of every fake websocket: counts ``websocket.send`` messages."""

    def __init__(self) -> None:
        self.count = 0
        self.target = -1
        self.done = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            self.count += 1
            if self.count == self.target:
                self.done.set()


class FakeSocket:
    """One websocket driven through the app's ASGI interface."""

    def __init__(self, app: Any, sink: Sink, state: dict[str, Any], port: int) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.inbox.put_nowait({"type": "websocket.connect"})
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "ws",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", port),
            "root_path": "",
            "path": "/ws",
            "raw_path": b"/ws",
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1:8000")],
            "subprotocols": [],
            "state": dict(state),
        }
        self.task = asyncio.get_running_loop().create_task(app(scope, self.inbox.get, sink.send))

    def frame(self, text: bytes) -> None:
        self.inbox.put_nowait({"type": "websocket.receive", "text": text.decode()})

    async def close(self) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 5.0)


class Lifespan:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._started = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"].startswith("lifespan.startup"):
            self._started.set()

    async def __aenter__(self) -> Lifespan:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self._inbox.put_nowait({"type": "lifespan.startup"})
        self._task = asyncio.get_running_loop().create_task(
            self.app(scope, self._inbox.get, self._send)
        )
        await asyncio.wait_for(self._started.wait(), 10.0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._inbox.put_nowait({"type": "lifespan.shutdown"})
        assert self._task is not None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 10.0)


# -- one system, in this process ------------------------------------------------------------------


async def _capture(redis_url: str, publisher: FakeSocket, frame: bytes) -> tuple[bytes, bytes]:
    """Have the app publish ``frame``; the channel and bytes it put on Redis."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    sniff = client.pubsub()
    await sniff.psubscribe("*")
    try:
        await sniff.get_message(timeout=1.0)  # the psubscribe confirmation
        publisher.frame(frame)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            raw = await sniff.get_message(timeout=1.0)
            if raw and raw["type"] == "pmessage" and b'"seq":%d' % MARK in raw["data"]:
                return raw["channel"], raw["data"]
        raise RuntimeError("the app published nothing")
    finally:
        await sniff.aclose()
        await client.aclose()


_REPLAY = r"""
import re, sys, time, redis
url, channel, body, k, base = sys.argv[1], sys.argv[2].encode(), bytes.fromhex(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
spaced = float(sys.argv[6])
m = re.match(rb"^(aws1:[^:\n]+:)(\d+)(:\d+)?\n", body)
client = redis.Redis.from_url(url)
pipe = client.pipeline(transaction=False)
for i in range(k):
    if m:
        head = b"%s%d:%d\n" % (m.group(1), base + i, time.time_ns() // 1000)
        data = head + body[m.end():]
    else:
        data = body
    if spaced:
        client.publish(channel, data)
        time.sleep(spaced)
    else:
        pipe.publish(channel, data)
if not spaced:
    pipe.execute()
"""


def _replay_cmd(
    redis_url: str, channel: bytes, body: bytes, k: int, base: int, spaced: float
) -> list[str]:
    return [
        sys.executable,
        "-c",
        _REPLAY,
        redis_url,
        channel.decode(),
        body.hex(),
        str(k),
        str(base),
        str(spaced),
    ]


def _replay(redis_url: str, channel: bytes, body: bytes, k: int, base: int) -> None:
    """Publish ``body`` K times from another process (blocks this loop: the messages wait)."""
    subprocess.run(_replay_cmd(redis_url, channel, body, k, base, 0.0), check=True, timeout=60)


async def _replay_spaced(
    redis_url: str, channel: bytes, body: bytes, k: int, base: int, spaced: float
) -> asyncio.subprocess.Process:
    """Publish ``body`` K times from another process, one every ``spaced`` seconds, while
    this loop runs (each message arrives alone and wakes the listener, as at a fixed rate)."""
    cmd = _replay_cmd(redis_url, channel, body, k, base, spaced)
    return await asyncio.create_subprocess_exec(*cmd)


async def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    module_name, subscribe, publish = SYSTEMS[args.worker]
    os.environ["ASYNCWS_BENCH_REDIS"] = args.redis
    import importlib

    app = importlib.import_module(module_name).app
    cg = Callgrind() if args.cg_requests else None
    sink = Sink()
    import asyncws

    results: dict[str, Any] = {
        "system": args.worker,
        "k": args.k,
        "asyncws": str(Path(asyncws.__file__).parent),
        "per_n": {},
    }
    async with Lifespan(app) as life:
        publisher = FakeSocket(app, sink, life.state, 50000)
        sockets: list[FakeSocket] = []
        port = 50001
        seq = 0
        base = 10_000_000
        for n in sorted(args.n):
            while len(sockets) < n:
                sock = FakeSocket(app, sink, life.state, port)
                port += 1
                sock.frame(subscribe)
                sockets.append(sock)
            # Warm up until every subscriber receives (the subscriptions are in place).
            for _ in range(50):
                seq += 1
                sink.target = sink.count + n
                sink.done.clear()
                publisher.frame(publish % (seq, PAD))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sink.done.wait(), 0.5)
                    break
            else:
                raise RuntimeError(f"{args.worker}: subscribers do not receive at N={n}")
            await asyncio.sleep(0.2)  # acks and warm-ups flushed
            channel, body = await _capture(args.redis, publisher, publish % (MARK, PAD))
            await asyncio.sleep(0.2)
            rounds: list[float] = []
            for r in range(args.rounds):
                sink.target = sink.count + args.k * n
                sink.done.clear()
                replayer = None
                if args.spaced:
                    if cg is not None:
                        cg.zero()
                    t0 = time.process_time()
                    replayer = await _replay_spaced(
                        args.redis, channel, body, args.k, base, args.spaced / 1000
                    )
                else:
                    _replay(args.redis, channel, body, args.k, base)
                    if cg is not None:
                        cg.zero()
                    t0 = time.process_time()
                base += args.k
                await asyncio.wait_for(sink.done.wait(), 600.0)
                t1 = time.process_time()
                if cg is not None:
                    cg.dump(f"{args.worker}-n{n}-r{r}")
                if replayer is not None:
                    await asyncio.wait_for(replayer.wait(), 30.0)
                rounds.append(t1 - t0)
                await asyncio.sleep(0.05)
            results["per_n"][n] = {
                "cpu_us_per_msg": statistics.median(rounds) / args.k * 1e6,
                "rounds_s": rounds,
            }
        for sock in [publisher, *sockets]:
            await sock.close()
    return results


# -- driver -----------------------------------------------------------------------------------------


def _split(points: dict[int, float]) -> tuple[float, float]:
    """Least squares cost = a + b*N: (per message a, per delivery b)."""
    ns = sorted(points)
    if len(ns) < 2:
        n = ns[0]
        return 0.0, points[n] / n
    mean_n = statistics.fmean(ns)
    mean_c = statistics.fmean(points[n] for n in ns)
    b = sum((n - mean_n) * (points[n] - mean_c) for n in ns) / sum((n - mean_n) ** 2 for n in ns)
    return mean_c - b * mean_n, b


def _callgrind_totals(out_dir: Path, system: str) -> dict[int, list[float]]:
    """Instructions per dump label ``{system}-n{N}-r{r}`` from callgrind's dump files."""
    per_n: dict[int, list[float]] = {}
    for path in out_dir.glob(f"callgrind.out.{system}.*"):
        text = path.read_text(errors="replace")
        label = re.search(r"^desc: Trigger: Client Request: (\S+)", text, re.M)
        total = re.search(r"^summary: (\d+)", text, re.M)
        if not label or not total or not label.group(1).startswith(system + "-n"):
            continue
        n = int(label.group(1).split("-n")[1].split("-r")[0])
        per_n.setdefault(n, []).append(float(total.group(1)))
    return per_n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default="raw,compat,declarative")
    parser.add_argument("-n", default="1,100,200", help="subscriber counts (comma list)")
    parser.add_argument("-k", type=int, default=2000, help="broker messages per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true", help="count instructions (valgrind)")
    parser.add_argument(
        "--spaced",
        type=float,
        default=0.0,
        help="publish one message every this many ms while the app runs (a fixed rate: each "
        "message wakes the listener alone; includes the idle loop's own work) instead of K "
        "messages queued at once",
    )
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    parser.add_argument("--cg-requests", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.n = [int(x) for x in str(args.n).split(",")]

    if args.worker:
        runner: Any = asyncio.run
        if not os.environ.get("ASYNCWS_BENCH_NO_UVLOOP"):
            with contextlib.suppress(ImportError):
                import uvloop

                runner = uvloop.run
        print(json.dumps(runner(run_worker(args))))
        return 0

    from tests.servers import RedisServer

    if shutil.which("redis-server") is None:
        print("SKIP: no redis-server")
        return 0
    if args.callgrind and shutil.which("valgrind") is None:
        print("SKIP: no valgrind")
        return 0
    out: dict[str, Any] = {}
    cg_dir = Path(tempfile.mkdtemp(prefix="asyncws-cgout-"))
    with RedisServer() as redis:
        for system in args.systems.split(","):
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                system,
                "--redis",
                redis.url,
                "-n",
                ",".join(map(str, args.n)),
                "-k",
                str(args.k),
                "--rounds",
                str(1 if args.callgrind else args.rounds),
                "--spaced",
                str(args.spaced),
            ]
            if args.callgrind:
                cmd = [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={cg_dir}/callgrind.out.{system}.%p",
                    "--dump-line=no",
                    "--compress-strings=no",
                    *cmd,
                    "--cg-requests",
                ]
            env = {**os.environ, "PYTHONHASHSEED": "0"}
            done = subprocess.run(
                cmd, capture_output=True, text=True, env=env, timeout=3600, cwd=REPO_ROOT
            )
            if done.returncode != 0:
                print(f"{system}: failed\n{done.stderr[-3000:]}")
                return 1
            result = json.loads(done.stdout.strip().splitlines()[-1])
            if args.callgrind:
                per_n = _callgrind_totals(cg_dir, system)
                result["instr_per_msg"] = {
                    n: statistics.median(v) / args.k for n, v in sorted(per_n.items())
                }
            out[system] = result
    shutil.rmtree(cg_dir, ignore_errors=True)
    _report(out, args)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


def _report(out: dict[str, Any], args: argparse.Namespace) -> None:
    unit = "instructions" if args.callgrind else "µs CPU"
    rounds = 1 if args.callgrind else args.rounds
    how = f"one every {args.spaced:g} ms" if args.spaced else "queued at once"
    print(f"per broker message, K={args.k} ({how}), {unit} (median of {rounds} round(s))")
    print(
        "system        "
        + "".join(f"{'N=' + str(n):>12}" for n in args.n)
        + "   per msg  per deliv."
    )
    base: dict[str, tuple[float, float]] = {}
    for system, result in out.items():
        if args.callgrind:
            points = {int(n): v for n, v in result["instr_per_msg"].items()}
        else:
            points = {int(n): v["cpu_us_per_msg"] for n, v in result["per_n"].items()}
        a, b = _split(points)
        base[system] = (a, b)
        fmt = "{:>12,.0f}" if args.callgrind else "{:>12.1f}"
        cells = "".join(fmt.format(points[n]) for n in sorted(points))
        fa = "{:>10,.0f}{:>11,.0f}" if args.callgrind else "{:>10.2f}{:>11.3f}"
        print(f"{system:<14}{cells}{fa.format(a, b)}")
    if "raw" in out:
        for system, result in out.items():
            if system == "raw":
                continue
            if args.callgrind:
                points = {int(n): v for n, v in result["instr_per_msg"].items()}
                rawp = {int(n): v for n, v in out["raw"]["instr_per_msg"].items()}
            else:
                points = {int(n): v["cpu_us_per_msg"] for n, v in result["per_n"].items()}
                rawp = {int(n): v["cpu_us_per_msg"] for n, v in out["raw"]["per_n"].items()}
            ratios = ", ".join(f"N={n}: {points[n] / rawp[n]:.2f}" for n in sorted(points))
            print(f"{system} ÷ raw: {ratios}")


if __name__ == "__main__":
    sys.exit(main())
