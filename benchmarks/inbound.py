"""The inbound path in-process: client frame -> operation -> publish, with the broker stubbed.

    python benchmarks/inbound.py                   # µs per frame, declarative / compat / raw-style
    python benchmarks/inbound.py --profile decl    # pyinstrument profile of one path

No sockets and no Redis: each path gets the frame text a websocket would hand it and ends in
a broker whose ``publish`` only counts (the Redis write is measured by peerbench's phase 3).
What is left is the Python work asyncws adds per inbound message, beside the least a server
can do (``json.loads`` + ``json.dumps``, as peerbench's ``raw``). ``op`` / ``raw_echo``: an
operation with a reply (request/reply) beside ``json.loads`` + a pydantic model + the reply. Bounded: ``--frames`` per
round, ``--rounds`` rounds; the median round is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import BaseModel

from asyncws import AsyncWS, Connection, Router, WebSocketManager
from asyncws.brokers.base import BrokerInterface, BrokerMessage
from asyncws.connection import ConnectionState
from asyncws.limits import Limits


class CountingBroker(BrokerInterface):
    """A broker whose publish completes at once and only counts."""

    def __init__(self) -> None:
        self.published = 0

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...

    async def publish(self, channel: str, message: Any) -> None:
        self.published += 1

    async def get_message(self, **kwargs: Any) -> BrokerMessage | None:
        return None


class FakeSocket:
    """Enough of a Starlette WebSocket for `Connection` (nothing is sent on this path)."""

    def __init__(self) -> None:
        self.path_params: dict[str, Any] = {}
        self.sent = 0

    async def send(self, message: Any) -> None:
        self.sent += 1


class BenchMsg(BaseModel):
    seq: int
    ts: float
    pad: str


def frames(n: int, topics: int) -> list[str]:
    pad = "x" * 60
    return [
        f'{{"type":"publish","topic":"bench/i{i % topics}","data":'
        f'{{"seq":{i},"ts":{1.0 + i:f},"pad":"{pad}"}}}}'
        for i in range(n)
    ]


def seed_frames(n: int, topics: int) -> list[dict[str, Any]]:
    # The compat path receives decoded JSON (iter_json decodes it): time the decode too.
    return [
        json.loads(
            f'{{"type":"send","topic":"bench/i{i % topics}","seq":{i},'
            f'"ts":{1.0 + i:f},"pad":"{"x" * 60}"}}'
        )
        for i in range(n)
    ]


async def run_declarative(texts: list[str]) -> float:
    router = Router()
    router.topic("bench/{room}", BenchMsg, client_publish=True)
    broker = CountingBroker()
    ws = AsyncWS(
        manager=WebSocketManager("bench", broker=broker),
        limits=Limits(rate=1e6, burst=1_000_000),
        asyncapi_url=None,
        asyncapi_yaml_url=None,
        docs_url=None,
    )
    ws.include_router(router)
    await ws.manager.startup()
    conn = Connection(FakeSocket())  # type: ignore[arg-type]
    conn.state = ConnectionState.OPEN
    handle = ws.handle_frame
    start = time.perf_counter()
    for text in texts:
        await handle(conn, text)
    elapsed = time.perf_counter() - start
    await ws.manager.shutdown()
    assert broker.published == len(texts), broker.published
    return elapsed


def echo_frames(n: int, topics: int) -> list[str]:
    pad = "x" * 60
    return [
        f'{{"type":"echo","id":{i},"data":{{"seq":{i},"ts":{1.0 + i:f},"pad":"{pad}"}}}}'
        for i in range(n)
    ]


async def run_operation(texts: list[str]) -> float:
    """Request/reply: an operation with a pydantic payload whose reply is the model."""
    router = Router()

    @router.operation("echo")
    async def echo(msg: BenchMsg) -> BenchMsg:
        return msg

    ws = AsyncWS(
        manager=WebSocketManager("bench", broker=CountingBroker()),
        limits=Limits(rate=1e6, burst=1_000_000),
        asyncapi_url=None,
        asyncapi_yaml_url=None,
        docs_url=None,
    )
    ws.include_router(router)
    await ws.manager.startup()
    sock = FakeSocket()
    conn = Connection(sock)  # type: ignore[arg-type]
    conn.state = ConnectionState.OPEN
    handle = ws.handle_frame
    start = time.perf_counter()
    for text in texts:
        await handle(conn, text)
    elapsed = time.perf_counter() - start
    await ws.manager.shutdown()
    assert sock.sent == len(texts), sock.sent
    return elapsed


async def run_raw_echo(texts: list[str]) -> float:
    """The raw Starlette echo's work: json.loads, pydantic validation, reply."""
    sock = FakeSocket()
    start = time.perf_counter()
    for text in texts:
        frame = json.loads(text)
        msg = BenchMsg.model_validate(frame["data"])
        reply = f'{{"type":"reply","id":{int(frame["id"])},"data":{msg.model_dump_json()}}}'
        await sock.send({"type": "websocket.send", "text": reply})
    elapsed = time.perf_counter() - start
    assert sock.sent == len(texts), sock.sent
    return elapsed


async def run_compat(texts: list[str]) -> float:
    broker = CountingBroker()
    manager = WebSocketManager("bench", broker=broker)
    await manager.startup()
    conn = Connection(FakeSocket())  # type: ignore[arg-type]
    conn.state = ConnectionState.OPEN
    receive = manager.receive
    start = time.perf_counter()
    for text in texts:
        await receive(conn, json.loads(text))
    elapsed = time.perf_counter() - start
    await manager.shutdown()
    assert broker.published == len(texts), broker.published
    return elapsed


async def run_raw(texts: list[str]) -> float:
    broker = CountingBroker()
    publish = broker.publish
    start = time.perf_counter()
    for text in texts:
        frame = json.loads(text)
        if frame.get("type") == "publish":
            await publish(frame["topic"], json.dumps(frame["data"], separators=(",", ":")))
    return time.perf_counter() - start


def seed_texts(n: int, topics: int) -> list[str]:
    return [json.dumps(f, separators=(",", ":")) for f in seed_frames(n, topics)]


PATHS = {
    "decl": (run_declarative, frames),
    "compat": (run_compat, seed_texts),
    "raw": (run_raw, frames),
    "op": (run_operation, echo_frames),
    "raw_echo": (run_raw_echo, echo_frames),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--profile", choices=sorted(PATHS), help="pyinstrument one path")
    args = parser.parse_args()
    if args.profile:
        from pyinstrument import Profiler

        run, make = PATHS[args.profile]
        texts = make(args.frames, args.topics)
        profiler = Profiler(interval=0.0002, async_mode="disabled")
        profiler.start()
        asyncio.run(run(texts))
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        return 0
    results: dict[str, float] = {}
    for name, (run, make) in PATHS.items():
        texts = make(args.frames, args.topics)
        rounds = [asyncio.run(run(texts)) for _ in range(args.rounds)]
        results[name] = statistics.median(rounds) / args.frames * 1e6
    print(f"inbound path, in-process, broker stubbed ({args.frames} frames x {args.rounds})")
    for name, us in results.items():
        base = results["raw_echo" if name in ("op", "raw_echo") else "raw"]
        print(f"  {name:8s} {us:6.2f} µs/frame  ({us / base:4.2f}x raw-style)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
