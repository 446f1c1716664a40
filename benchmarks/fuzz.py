"""The long fuzz: the protocol properties of tests/test_fuzz.py for minutes, then over a network.

    python benchmarks/fuzz.py --minutes 10       # ~60% in memory, ~40% over the network
    python benchmarks/fuzz.py --minutes 1        # a quick look

Phase 1 (in memory) runs the hypothesis properties of ``tests/test_fuzz.py`` -- a victim, a
bystander and 1-3 attackers sending random valid, malformed and hostile frames -- on the chat
example (declarative protocol) and the seed-protocol app, in batches with fresh random seeds,
until its share of the time is used; and the hostile corpus once per endpoint.

Phase 2 (network) starts one uvicorn process of the chat app and one of the seed app
(``tests.servers.UvicornServer``: 127.0.0.1, free ports, stopped by PID) and, while a victim
keeps receiving a bystander's posts (one every 50 ms, each with a marker):

* sends every hostile case of the corpus with a real ``websockets`` client, each on its own
  connection, and records what the server answered (error code, close code, HTTP status);
* sends raw RFC 6455 abuse a well-behaved client library cannot: fragmented messages, ping
  floods, frames after a close, invalid close codes, invalid UTF-8, unmasked frames, reserved
  opcodes and bits, absurd lengths, half frames, a reset mid-frame, bad handshakes;
* then keeps 3 attackers sending random corpus cases at once until the time is up.

It prints a table (hostile case -> answer in memory and over the network, expected), the
counts, and whether the victims missed a delivery; writes a JSON report to ``--out``
(``benchmarks/results`` by default); and exits non-zero on any violation: a crash, a
traceback in a server log or an error frame, ``internal_error``, a close with 1011, an answer
that differs from the documented one, or a victim that missed a post. Every loop and wait is
bounded; all traffic is on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

from tests.fuzz_frames import (  # noqa: E402
    Checker,
    Frame,
    FuzzViolation,
    Tally,
    Target,
    chat_frames,
    chat_target,
    corpus,
    dump,
    outcome_name,
    run_corpus,
    run_scenario,
    seed_frames,
    seed_target,
    steps,
)
from tests.servers import UvicornServer  # noqa: E402

TIMEOUT = 5.0  # seconds for any single answer
POST_EVERY = 0.05  # the bystander's pace
RAW_CLOSE_OK = frozenset({1000, 1002, 1007, 1008, 1009})  # what protocol abuse may get


# -- phase 1: in memory ----------------------------------------------------------------------------


def fuzz_in_memory(target: Target, seconds: float, tally: Tally, batch: int = 100) -> int:
    """Run the hypothesis property on ``target`` in batches until ``seconds`` are used.
    Returns the number of failing batches (each one's shrunk failure is in the tally)."""
    frames = chat_frames() if target.name == "chat" else seed_frames()
    failures = 0

    @settings(
        max_examples=batch,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(n_attackers=st.integers(1, 3), scenario=steps(frames, max_steps=12))
    def run(n_attackers: int, scenario: Any) -> None:
        asyncio.run(run_scenario(target, n_attackers, scenario, tally))

    deadline = time.monotonic() + seconds
    batches = 0
    while time.monotonic() < deadline and batches < 100_000:
        batches += 1
        try:
            run()
        except FuzzViolation as exc:
            failures += 1
            tally.violations.append(f"[{target.name} in memory, shrunk] {exc}")
            print(f"  VIOLATION ({target.name}): {str(exc)[:2000]}", flush=True)
            if failures >= 3:
                break
        print(
            f"  {target.name}: {tally.examples} scenarios, {tally.frames_sent} frames, "
            f"{tally.deliveries} deliveries checked",
            flush=True,
        )
    return failures


# -- phase 2: the network ---------------------------------------------------------------------------


async def ws_connect(server: UvicornServer, path: str) -> ClientConnection:
    return await connect(
        server.ws_url(path),
        ping_interval=None,
        compression=None,
        proxy=None,
        max_size=8 << 20,
        open_timeout=TIMEOUT,
        close_timeout=2,
    )


@dataclass
class Victim:
    """The victim and the bystander over the network: posts every `POST_EVERY` seconds, and
    checks the victim gets every post the server accepted, within `TIMEOUT`."""

    target: Target
    server: UvicornServer
    checker: Checker
    sent: dict[str, float] = field(default_factory=dict)  # marker -> time posted
    received: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    closed: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    nonce: str = field(default_factory=lambda: os.urandom(4).hex())

    async def run(self) -> None:
        victim = await ws_connect(self.server, self.target.victim_url)
        bystander = await ws_connect(self.server, self.target.bystander_url)
        for i, pattern in enumerate(self.target.victim_patterns):
            await victim.send(dump({"type": "subscribe", "topic": pattern, "id": i}))
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._read(victim, "victim"))
            tasks.create_task(self._read(bystander, "bystander"))
            tasks.create_task(self._post(bystander))
            await self.stop.wait()
            await asyncio.sleep(TIMEOUT)  # the last posts arrive
            for ws in (victim, bystander):
                await ws.close()

    def _key(self, marker: str) -> str:
        return marker if self.target.name == "seed" else f"post {marker}"

    async def _post(self, bystander: ClientConnection) -> None:
        n = 0
        while not self.stop.is_set() and n < 10_000_000:
            n += 1
            marker = f"m{n}-{self.nonce}"
            self.sent[self._key(marker)] = time.monotonic()
            try:
                await bystander.send(dump(self.target.post(marker, f"post {marker}")))
            except ConnectionClosed:
                self.closed.append("bystander (sending)")
                return
            await asyncio.sleep(POST_EVERY)

    async def _read(self, ws: ClientConnection, role: str) -> None:
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    self.checker.fail(f"{role}: a binary frame from the server")
                    continue
                obj = self.checker.frame(role, message)
                if obj is None or role != "victim":
                    continue
                key = self.target.post_key(obj)
                if key is not None and key in self.sent:
                    if key in self.received:
                        self.duplicates += 1
                    self.received[key] = time.monotonic()
        except ConnectionClosed as closed:
            if not self.stop.is_set() or (closed.rcvd is not None and closed.rcvd.code != 1000):
                self.closed.append(f"{role}: {closed}")

    def report(self) -> dict[str, Any]:
        missed = [k for k in self.sent if k not in self.received]
        late = [k for k, t in self.received.items() if t - self.sent[k] > TIMEOUT]
        latencies = sorted(self.received[k] - self.sent[k] for k in self.received)
        return {
            "posted": len(self.sent),
            "received": len(self.received),
            "missed": len(missed),
            "late": len(late),
            "duplicates": self.duplicates,
            "closed": self.closed,
            "latency_p50_ms": round(1000 * latencies[len(latencies) // 2], 2)
            if latencies
            else None,
            "latency_max_ms": round(1000 * latencies[-1], 2) if latencies else None,
        }


async def send_case(
    server: UvicornServer, target: Target, frame: Frame, suffix: str, checker: Checker
) -> tuple[str, bool]:
    """One hostile case over a real websocket: its outcome name, and whether the connection
    still answered the probe afterwards (or was closed)."""
    try:
        ws = await ws_connect(server, target.attacker_url(suffix))
    except InvalidStatus as exc:
        return f"http:{exc.response.status_code}", False
    frames: list[dict[str, Any]] = []
    close_code: int | None = None
    probe_ok = False

    async def send_all() -> None:
        for i, payload in enumerate(frame.payloads):
            if frame.pace and i >= frame.burst:
                await asyncio.sleep(frame.pace)
            await ws.send(payload)
        await ws.send(target.probe)

    sender = asyncio.create_task(send_all())
    try:
        async with asyncio.timeout(TIMEOUT + len(frame.payloads) * (frame.pace or 0.0)):
            async for message in ws:
                obj = checker.frame("attacker", str(message))
                if obj is None:
                    continue
                if obj.get("id") == "probe":
                    probe_ok = obj.get("type") == target.probe_answer
                    break
                frames.append(obj)
    except ConnectionClosed as closed:
        close_code = closed.rcvd.code if closed.rcvd is not None else 1006
    except TimeoutError:
        checker.fail(f"attacker: neither the probe's answer nor a close after {frame.case}")
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await sender
        if close_code is None and not probe_ok and ws.close_code is not None:
            close_code = ws.close_code  # a normal close ends the iteration without raising
        await ws.close()
    return outcome_name(frames, close_code), probe_ok


# -- raw RFC 6455 abuse --------------------------------------------------------------------------


def ws_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length: int | None = None,
) -> bytes:
    """A client frame, as RFC 6455 section 5.2 lays it out (``length`` may lie)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    stream = (key * (len(payload) // 4 + 1))[: len(payload)]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(
        len(payload), "big"
    )
    return head + key + masked


TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


class RawClient:
    """A websocket client on a bare TCP stream, for frames no client library would send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, port: int, path: str, *, key: str | None = None, version: str = "13"
    ) -> tuple[RawClient | None, int]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: {version}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            writer.close()
            return None, status
        return cls(reader, writer), status

    async def send(self, *frames: bytes) -> None:
        for data in frames:
            self.writer.write(data)
        await self.writer.drain()

    async def read(self, until_id: str | None, timeout: float = TIMEOUT) -> tuple[list[Any], str]:
        """Frames until the one with ``id == until_id``, a close, EOF or ``timeout``: the
        text frames (decoded) and how it ended (``answered``, ``close:N``, ``eof``, ...)."""
        texts: list[Any] = []
        pongs = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            for _ in range(1_000_000):
                left = deadline - loop.time()
                if left <= 0:
                    return texts, "timeout" + (f" (pong x{pongs})" if pongs else "")
                b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), left)
                n = b1 & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", await self.reader.readexactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
                payload = await self.reader.readexactly(n)
                opcode = b0 & 0x0F
                if opcode == CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    return texts, f"close:{code}" + (f" (pong x{pongs})" if pongs else "")
                if opcode == PONG:
                    pongs += 1
                elif opcode == TEXT:
                    obj = json.loads(payload.decode())
                    if until_id is not None and obj.get("id") == until_id:
                        return texts, "answered" + (f" (pong x{pongs})" if pongs else "")
                    texts.append(obj)
            return texts, "too many frames"
        except (asyncio.IncompleteReadError, ConnectionError):
            return texts, "eof" + (f" (pong x{pongs})" if pongs else "")
        except TimeoutError:
            return texts, "timeout" + (f" (pong x{pongs})" if pongs else "")

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2)


@dataclass(frozen=True)
class RawCase:
    name: str
    frames: tuple[bytes, ...]
    expect: str  # how it must end: "answered" (the probe got its reply), "close:1002", ...
    probe: bool = True  # send the probe after the frames
    note: str = ""
    abort: bool = False  # reset the TCP connection after sending
    pause: float = 0.0  # wait before reading (a half frame: the server waits for the rest)


def raw_cases(probe: bytes) -> list[RawCase]:
    ok = dump({"type": "whoami", "id": "probe"}).encode()
    big = dump({"type": "whoami", "id": "probe", "pad": "x" * (1 << 20)}).encode()
    return [
        RawCase(
            "fragmented message (3 parts)",
            (
                ws_frame(TEXT, ok[:5], fin=False),
                ws_frame(CONT, ok[5:10], fin=False),
                ws_frame(CONT, ok[10:]),
            ),
            "answered",
            probe=False,
            note="reassembled: the probe is the fragmented frame",
        ),
        RawCase(
            "fragmented message (1 byte per fragment)",
            tuple(
                ws_frame(TEXT if i == 0 else CONT, ok[i : i + 1], fin=i == len(ok) - 1)
                for i in range(len(ok))
            ),
            "answered",
            probe=False,
        ),
        RawCase(
            "ping in the middle of a fragmented message",
            (
                ws_frame(TEXT, ok[:5], fin=False),
                ws_frame(PING, b"hi"),
                ws_frame(CONT, ok[5:]),
            ),
            "answered (pong x1)",
            probe=False,
        ),
        RawCase(
            "fragments over 1 MiB in total",
            (
                ws_frame(TEXT, big[: 1 << 19], fin=False),
                ws_frame(CONT, big[1 << 19 :]),
            ),
            "close:1009",
            probe=False,
        ),
        RawCase(
            "ping flood (2000 pings)",
            tuple(ws_frame(PING, b"p") for _ in range(2000)),
            "answered (pong x2000)",
        ),
        RawCase(
            "ping with a 125-byte payload", (ws_frame(PING, b"x" * 125),), "answered (pong x1)"
        ),
        RawCase(
            "unsolicited pongs (1000)", tuple(ws_frame(PONG, b"p") for _ in range(1000)), "answered"
        ),
        RawCase("control frame over 125 bytes", (ws_frame(PING, b"x" * 126),), "close:1002"),
        RawCase("fragmented control frame", (ws_frame(PING, b"x", fin=False),), "close:1002"),
        RawCase("continuation without a start", (ws_frame(CONT, b"abc"),), "close:1002"),
        RawCase(
            "new message inside a fragmented one",
            (
                ws_frame(TEXT, b'{"a"', fin=False),
                ws_frame(TEXT, b"{}"),
            ),
            "close:1002",
        ),
        RawCase(
            "text frame with invalid UTF-8", (ws_frame(TEXT, b'{"type":"\xff\xfe"}'),), "close:1007"
        ),
        RawCase(
            "text frame with an encoded surrogate (CESU)",
            (ws_frame(TEXT, b'"\xed\xa0\x80"'),),
            "close:1007",
        ),
        RawCase(
            "unmasked client frame", (ws_frame(TEXT, ok, mask=False),), "close:1002", probe=False
        ),
        RawCase("reserved opcode 0x3", (ws_frame(0x3, b"x"),), "close:1002"),
        RawCase("reserved control opcode 0xB", (ws_frame(0xB, b"x"),), "close:1002"),
        RawCase(
            "RSV1 set without an extension", (ws_frame(TEXT, ok, rsv=4),), "close:1002", probe=False
        ),
        RawCase("RSV3 set", (ws_frame(TEXT, ok, rsv=1),), "close:1002", probe=False),
        RawCase(
            "length header of 2^63-1",
            (ws_frame(TEXT, b"", length=(1 << 63) - 1),),
            "close:1009",
            probe=False,
        ),
        RawCase(
            "length header with the top bit set",
            (ws_frame(TEXT, b"", length=1 << 63),),
            "close:1009",
            probe=False,
            note="read as a huge length",
        ),
        RawCase(
            "close with code 999", (ws_frame(CLOSE, close_payload(999)),), "close:1002", probe=False
        ),
        RawCase(
            "close with code 1005 (reserved)",
            (ws_frame(CLOSE, close_payload(1005)),),
            "close:1002",
            probe=False,
        ),
        RawCase(
            "close with code 1006 (reserved)",
            (ws_frame(CLOSE, close_payload(1006)),),
            "close:1002",
            probe=False,
        ),
        RawCase(
            "close with code 5000",
            (ws_frame(CLOSE, close_payload(5000)),),
            "close:1002",
            probe=False,
        ),
        RawCase(
            "close with a 1-byte payload", (ws_frame(CLOSE, b"\x03"),), "close:1002", probe=False
        ),
        RawCase(
            "close with an invalid UTF-8 reason",
            (ws_frame(CLOSE, close_payload(1000, b"\xff")),),
            "close:1007",
            probe=False,
        ),
        RawCase(
            "frames after the close",
            (
                ws_frame(CLOSE, close_payload(1000)),
                ws_frame(TEXT, ok),
                ws_frame(TEXT, ok),
            ),
            "close:1000",
            probe=False,
            note="the server answers the close and ignores the rest",
        ),
        RawCase(
            "half a frame, then silence",
            (ws_frame(TEXT, ok)[:5],),
            "timeout",
            probe=False,
            note="the server waits (uvicorn's ping timeout ends it); others are unaffected",
        ),
        RawCase(
            "reset in the middle of a frame",
            (ws_frame(TEXT, big)[: 1 << 16],),
            "eof",
            probe=False,
            abort=True,
        ),
    ]


async def run_raw(server: UvicornServer, path: str, case: RawCase, probe: bytes) -> str:
    client, status = await RawClient.open(server.port, path)
    if client is None:
        return f"http:{status}"
    try:
        frames = case.frames + ((ws_frame(TEXT, probe),) if case.probe else ())
        # the server may close before reading everything
        with contextlib.suppress(ConnectionError, TimeoutError):
            await asyncio.wait_for(client.send(*frames), TIMEOUT)
        if case.abort:
            client.abort()
            return "eof"
        texts, ended = await client.read(
            "probe", timeout=2.0 if case.name.startswith("half") else TIMEOUT
        )
        codes = sorted({f"error:{t.get('code')}" for t in texts if t.get("type") == "error"})
        return " + ".join([*codes, ended])
    finally:
        await client.close()


async def handshake_cases(server: UvicornServer) -> list[tuple[str, str, str]]:
    """(case, answer, expected) for handshakes the server must refuse."""
    out = []
    for name, path, kw, expect in [
        ("handshake without a user (chat auth)", "/ws", {}, "http:403"),
        ("handshake with an invalid user name", "/ws?user=%3Cscript%3E", {}, "http:403"),
        ("handshake with version 8", "/ws?user=x", {"version": "8"}, "http:400"),
        ("handshake with an invalid key", "/ws?user=x", {"key": "short"}, "http:400"),
        ("handshake on an unknown path", "/nope", {}, "http:403"),
    ]:
        try:
            client, status = await RawClient.open(server.port, path, **kw)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
            out.append((name, f"error {type(exc).__name__}", expect))
            continue
        if client is not None:
            await client.close()
        out.append((name, f"http:{status}", expect))
    return out


# -- the network phase ---------------------------------------------------------------------------


@dataclass
class NetResult:
    table: list[dict[str, Any]] = field(default_factory=list)
    random_cases: Counter[str] = field(default_factory=Counter)
    random_outcomes: dict[str, Counter[str]] = field(default_factory=dict)
    victims: dict[str, Any] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    log_notes: Counter[str] = field(default_factory=Counter)


async def network_phase(seconds: float, memory_answers: dict[str, dict[str, str]]) -> NetResult:
    result = NetResult()
    chat, seed = chat_target(), seed_target()
    with (
        tempfile.TemporaryDirectory(prefix="asyncws-fuzz-") as tmp,
        UvicornServer("examples.chat.app:app", extra_args=log_args(tmp)) as chat_server,
        UvicornServer("tests.apps.seed_app:app", extra_args=log_args(tmp)) as seed_server,
    ):
        servers = {"chat": chat_server, "seed": seed_server}
        checkers = {"chat": Checker(chat), "seed": Checker(seed)}
        victims = {
            name: Victim(t, servers[name], checkers[name])
            for name, t in (("chat", chat), ("seed", seed))
        }
        deadline = time.monotonic() + seconds
        async with asyncio.TaskGroup() as tasks:
            for v in victims.values():
                tasks.create_task(v.run())
            await asyncio.sleep(0.5)
            try:
                await _corpus_over_network(result, servers, checkers, memory_answers)
                await _raw_over_network(result, servers)
                await _random_over_network(result, servers, checkers, deadline)
            finally:
                for v in victims.values():
                    v.stop.set()
        for name, v in victims.items():
            report = v.report()
            result.victims[name] = report
            if report["missed"] or report["late"] or report["duplicates"] or report["closed"]:
                result.violations.append(f"{name} victim: {report}")
        for name, checker in checkers.items():
            result.violations.extend(f"{name} over the network: {m}" for m in checker.violations)
        for name, server in servers.items():
            if not server.running():
                result.violations.append(f"the {name} server died")
            errors, notes = scan_log(server.log_text())
            result.violations.extend(f"{name} server log: {e}" for e in errors)
            result.log_notes.update(f"{name}: {n}" for n in notes)
    return result


def log_args(directory: str) -> list[str]:
    """uvicorn arguments for a log that names every record's level and logger (asyncws logs
    to the root handler, which would otherwise print bare messages)."""
    path = Path(directory) / "logging.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
                "handlers": {
                    "stderr": {
                        "class": "logging.StreamHandler",
                        "formatter": "plain",
                        "stream": "ext://sys.stderr",
                    }
                },
                "root": {"level": "WARNING", "handlers": ["stderr"]},
            }
        )
    )
    return ["--log-config", str(path)]


def scan_log(log: str) -> tuple[list[str], list[str]]:
    """(violations, notes) in a server log: an ERROR from asyncws or the app, or an exception
    that escaped the app, is a violation; uvicorn's own errors about protocol abuse (e.g. the
    traceback it logs for invalid UTF-8, then closing with 1007) are notes."""
    violations: list[str] = []
    notes: list[str] = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith(("ERROR ", "CRITICAL ")):
            continue
        block = "\n".join(lines[i : i + 30])
        own = "Exception in ASGI application" in line or not line.split(" ", 2)[1].startswith(
            "uvicorn"
        )
        if own or f'File "{ROOT}/asyncws' in block:
            if len(violations) < 20:
                violations.append(block[:3000])
        else:
            notes.append(line[:200])
    return violations, notes


async def _corpus_over_network(
    result: NetResult,
    servers: dict[str, UvicornServer],
    checkers: dict[str, Checker],
    memory_answers: dict[str, dict[str, str]],
) -> None:
    targets = {"chat": chat_target(), "seed": seed_target()}
    for n, case in enumerate(corpus()):
        row: dict[str, Any] = {"case": case.name, "note": case.note}
        for name, target in targets.items():
            frame = case.frame(name)
            if frame is None:
                continue
            answer, probe_ok = await send_case(
                servers[name], target, frame, f"n{n}", checkers[name]
            )
            expected = case.expect(name)
            row[name] = {
                "expected": expected,
                "memory": memory_answers[name].get(case.name),
                "network": answer,
                "still_works": probe_ok,
            }
            if not case.accepts(name, answer):
                result.violations.append(
                    f"{name}: {case.name!r} answered {answer!r} over the network, documented {expected!r}"
                )
        result.table.append(row)
        print(
            f"  {case.name:55} chat={row.get('chat', {}).get('network', '-'):38} "
            f"seed={row.get('seed', {}).get('network', '-')}",
            flush=True,
        )


async def _raw_over_network(result: NetResult, servers: dict[str, UvicornServer]) -> None:
    probe = dump({"type": "whoami", "id": "probe"}).encode()
    server = servers["chat"]
    for case in raw_cases(probe):
        answer = await run_raw(server, "/ws?user=raw", case, probe)
        ok = answer == case.expect
        if not ok:
            result.violations.append(
                f"raw: {case.name!r} ended {answer!r}, expected {case.expect!r}"
            )
        if "close:1011" in answer:
            result.violations.append(f"raw: {case.name!r} closed with 1011")
        result.table.append(
            {
                "case": case.name,
                "note": case.note,
                "raw": {"expected": case.expect, "network": answer},
            }
        )
        print(f"  raw: {case.name:50} {answer}", flush=True)
    for name, answer, expect in await handshake_cases(server):
        if answer != expect:
            result.violations.append(
                f"handshake: {name!r} answered {answer!r}, expected {expect!r}"
            )
        result.table.append(
            {"case": name, "note": "", "raw": {"expected": expect, "network": answer}}
        )
        print(f"  handshake: {name:45} {answer}", flush=True)


async def _random_over_network(
    result: NetResult,
    servers: dict[str, UvicornServer],
    checkers: dict[str, Checker],
    deadline: float,
) -> None:
    """3 attackers per endpoint sending random corpus cases at once until the deadline."""
    targets = {"chat": chat_target(), "seed": seed_target()}
    rng = random.Random()
    cases = {
        name: [c for c in corpus() if c.frame(name) is not None and not c.frame(name).pace]  # type: ignore[union-attr]
        for name in targets
    }

    async def attacker(name: str, index: int) -> None:
        for n in range(1_000_000):
            if time.monotonic() >= deadline:
                return
            case = rng.choice(cases[name])
            frame = case.frame(name)
            assert frame is not None
            answer, _ = await send_case(
                servers[name], targets[name], frame, f"r{index}-{n}", checkers[name]
            )
            key = f"{name}: {case.name}"
            result.random_cases[key] += 1
            result.random_outcomes.setdefault(key, Counter())[answer] += 1
            if not case.accepts(name, answer):
                result.violations.append(
                    f"random {key!r} answered {answer!r}, documented {case.expect(name)!r}"
                )

    async with asyncio.TaskGroup() as tasks:
        for name in targets:
            for i in range(3):
                tasks.create_task(attacker(name, i))


# -- main ------------------------------------------------------------------------------------------


def _memory_corpus(tally: Tally) -> tuple[dict[str, dict[str, str]], list[str]]:
    answers: dict[str, dict[str, str]] = {}
    violations: list[str] = []
    for target in (chat_target(), seed_target()):
        results, found = asyncio.run(run_corpus(target, corpus(), tally))
        violations.extend(f"{target.name} corpus in memory: {v}" for v in found)
        answers[target.name] = {r.case.name: r.outcome for r in results}
        for r in results:
            if not r.case.accepts(target.name, r.outcome):
                violations.append(
                    f"{target.name}: {r.case.name!r} answered {r.outcome!r} in memory, "
                    f"documented {r.case.expect(target.name)!r}"
                )
    return answers, violations


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    print(f"\n{'hostile case':58} {'chat (declarative)':36} {'seed protocol':36} ok")
    print("-" * 136)
    for row in rows:
        if "raw" in row:
            r = row["raw"]
            ok = "yes" if r["network"] == r["expected"] else "NO"
            print(
                f"{row['case'][:58]:58} {r['network'][:36]:36} {'(uvicorn, protocol level)':36} {ok}"
            )
            continue
        cells, oks = [], []
        for name in ("chat", "seed"):
            r = row.get(name)
            if r is None:
                cells.append("-")
                continue
            cells.append(r["network"])
            alternatives = str(r["expected"]).split(" | ")
            oks.append(r["network"] in alternatives and r["memory"] in alternatives)
        ok = "yes" if all(oks) else "NO"
        print(f"{row['case'][:58]:58} {cells[0][:36]:36} {cells[1][:36]:36} {ok}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--network-share", type=float, default=0.4, help="of the time (0-1)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    total = max(30.0, args.minutes * 60)
    started = time.monotonic()
    memory_seconds = total * (1 - args.network_share)
    print(
        f"fuzz: {total:.0f} s: {memory_seconds:.0f} s in memory, the rest over the network",
        flush=True,
    )

    tallies = {"chat": Tally(), "seed": Tally()}
    violations: list[str] = []
    print("\n== corpus in memory", flush=True)
    memory_answers, found = _memory_corpus(Tally())
    violations.extend(found)
    print("\n== hypothesis in memory", flush=True)
    half = (memory_seconds - (time.monotonic() - started)) / 2
    for target in (chat_target(), seed_target()):
        fuzz_in_memory(target, max(5.0, half), tallies[target.name])
        violations.extend(tallies[target.name].violations)

    print("\n== over the network", flush=True)
    left = max(20.0, total - (time.monotonic() - started))
    net = asyncio.run(network_phase(left, memory_answers))
    violations.extend(net.violations)

    print_table(net.table)
    print("\n== random cases over the network (3 attackers per endpoint at once)")
    for key, n in sorted(net.random_cases.items()):
        answers = ", ".join(f"{a} x{c}" for a, c in net.random_outcomes[key].most_common())
        print(f"  {key:70} {n:5}  {answers}")
    print("\n== in memory (hypothesis)")
    for name, t in tallies.items():
        print(
            f"  {name}: {t.examples} scenarios, {t.steps} steps, {t.frames_sent} frames "
            f"({len(t.sent)} kinds), {t.deliveries} deliveries checked, "
            f"{t.missed_deliveries} missed; closes {dict(sorted(Counter({int(k): v for k, v in t.closes.items()}).items()))}; "
            f"errors {dict(t.errors.most_common())}"
        )
    print("\n== uvicorn's own log records about protocol abuse (not asyncws)")
    for note, n in net.log_notes.most_common():
        print(f"  {n:5} x {note}")
    print("\n== victims over the network")
    for name, report in net.victims.items():
        print(f"  {name}: {report}")
    elapsed = time.monotonic() - started
    print(f"\n{len(violations)} violation(s) in {elapsed:.0f} s")
    for v in violations[:50]:
        print(f"  - {v[:3000]}")

    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"fuzz-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "seconds": round(elapsed, 1),
                "in_memory": {
                    name: {
                        "scenarios": t.examples,
                        "steps": t.steps,
                        "frames": t.frames_sent,
                        "deliveries": t.deliveries,
                        "missed": t.missed_deliveries,
                        "closes": {str(k): v for k, v in t.closes.items()},
                        "errors": dict(t.errors),
                        "sent": dict(t.sent),
                        "answers": {k: dict(v) for k, v in t.answers.items()},
                    }
                    for name, t in tallies.items()
                },
                "table": net.table,
                "random": {k: dict(v) for k, v in net.random_outcomes.items()},
                "victims": net.victims,
                "violations": violations,
            },
            indent=2,
            default=str,
        )
    )
    print(f"report: {out}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
