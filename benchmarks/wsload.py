"""Load-client worker for bench.py and ci_guard.py: many websockets in one process.

A small sans-dependency websocket client (asyncio protocol, uvloop when installed) and a
worker loop driven by JSON lines: one command per line on stdin, one answer per line on
stdout. The worker exits on stdin EOF, on ``quit`` or after ``--max-seconds``.

Client frames are masked with an all-zero key (a valid key that leaves the payload as is, so
sending costs nothing); server frames are parsed without copying more than one slice.
Received payloads are searched for ``"seq":N,"ts":T``; ``ts`` is the publisher's
``time.monotonic()`` (CLOCK_MONOTONIC is system-wide), so latency = receive time - ts.
Every wait is bounded: connects, handshakes, phases, replies.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import socket
import sys
import time
import zlib
from array import array
from typing import Any

now = time.monotonic
PAYLOAD_RE = re.compile(rb'"seq":(-?\d+),"ts":([0-9.]+)')
REPLY_RE = re.compile(rb'^\{"type":"(?:reply|ack|error)","id":(\d+)')
PAD = b"x" * 60  # a ~100-byte payload: {"seq":..,"ts":..,"pad":"xxx..."}


def _header(opcode: int, length: int) -> bytes:
    """A masked client frame header with the all-zero masking key."""
    if length < 126:
        return bytes((0x80 | opcode, 0x80 | length)) + b"\0\0\0\0"
    if length < 65536:
        return bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big") + b"\0\0\0\0"
    return bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big") + b"\0\0\0\0"


class Recorder:
    """First-receipt latency and duplicates per connection, for ``seq`` in [0, size)."""

    __slots__ = ("count", "dups", "first_rx", "last_rx", "lat", "seen", "wake", "warm")

    def __init__(self, size: int, phases: int) -> None:
        self.seen = bytearray(size)
        self.lat = [array("d") for _ in range(phases)]
        self.count = [0] * phases
        self.dups = [0] * phases
        self.first_rx = [0.0] * phases
        self.last_rx = [0.0] * phases
        self.warm = False
        #: (phase, count, future): resolved once ``count[phase]`` reaches ``count``.
        self.wake: tuple[int, int, asyncio.Future[None]] | None = None


class WS(asyncio.Protocol):
    """One client websocket. With ``deflate`` it offers permessage-deflate as browsers do
    (Chromium: ``permessage-deflate; client_max_window_bits``) and inflates what the server
    compressed (frames with RSV1 set); the client's own frames stay uncompressed."""

    def __init__(
        self, host: str, path: str, recorder: Recorder | None, m: int, deflate: bool = False
    ) -> None:
        self.host, self.path, self.rec, self.m = host, path, recorder, m
        self.deflate = deflate
        self.inflater: Any = None  # set when the server accepted permessage-deflate
        self.compressed = 0  # frames received compressed
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.open = False
        self.closed = False
        self._hbuf = b""
        self._buf = b""
        self.replies: dict[int, asyncio.Future[bytes]] = {}
        self.other = 0
        self.renamed = 0  # set_conn_id frames: the server replaced the id the path asked for

    # -- connection ---------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16))
        ext = (
            b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            if self.deflate
            else b""
        )
        transport.write(
            b"GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n"
            % (self.path.encode(), self.host.encode(), key, ext)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before the handshake: {exc}"))

    def send_text(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(_header(1, len(data)) + data)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            with contextlib.suppress(Exception):
                self.transport.write(_header(8, 2) + b"\x03\xe8")
                self.transport.close()

    # -- frames -------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if not self.open:
            self._hbuf += data
            end = self._hbuf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._hbuf) > 65536:
                    self.transport.close()  # type: ignore[union-attr]
                return
            head, data = self._hbuf[:end], self._hbuf[end + 4 :]
            self._hbuf = b""
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                if not self.opened.done():
                    status = head.split(b"\r\n", 1)[0].decode(errors="replace")
                    self.opened.set_exception(ConnectionError(f"handshake refused: {status}"))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.open = True
            if self.deflate and b"permessage-deflate" in head.lower():
                no_context = b"server_no_context_takeover" in head.lower()
                self.inflater = (no_context, zlib.decompressobj(-15))
            if not self.opened.done():
                self.opened.set_result(None)
            if not data:
                return
        buf = self._buf + data if self._buf else data
        i, n = 0, len(buf)
        while n - i >= 2:
            length = buf[i + 1] & 0x7F
            h = 2
            if length == 126:
                if n - i < 4:
                    break
                length = int.from_bytes(buf[i + 2 : i + 4], "big")
                h = 4
            elif length == 127:
                if n - i < 10:
                    break
                length = int.from_bytes(buf[i + 2 : i + 10], "big")
                h = 10
            if n - i < h + length:
                break
            opcode = buf[i] & 0x0F
            rsv1 = buf[i] & 0x40
            payload = buf[i + h : i + h + length]
            i += h + length
            if rsv1 and self.inflater is not None and opcode in (1, 2):
                no_context, inflater = self.inflater
                if no_context:
                    inflater = zlib.decompressobj(-15)
                    self.inflater = (no_context, inflater)
                payload = inflater.decompress(payload + b"\x00\x00\xff\xff")
                self.compressed += 1
            if opcode == 1 or opcode == 2:
                self.on_message(payload)
            elif opcode == 9:  # ping -> pong
                self.transport.write(_header(10, len(payload)) + payload)  # type: ignore[union-attr]
            elif opcode == 8:
                self.close()
        self._buf = buf[i:] if i < n else b""

    def on_message(self, payload: bytes) -> None:
        t = now()
        rec = self.rec
        mo = PAYLOAD_RE.search(payload)
        if mo is None or rec is None:
            r = REPLY_RE.match(payload)  # a reply may carry a payload too (request/reply)
            if r is not None:
                fut = self.replies.pop(int(r.group(1)), None)
                if fut is not None and not fut.done():
                    fut.set_result(payload)
                    return
            if mo is None:
                self.other += 1
                if payload.startswith(b'{"type":"set_conn_id"'):
                    self.renamed += 1
            return
        seq = int(mo.group(1))
        if seq < 0:
            rec.warm = True
            return
        phase = seq // self.m
        if phase >= len(rec.count):
            return
        if rec.seen[seq]:
            rec.dups[phase] += 1
            return
        rec.seen[seq] = 1
        rec.lat[phase].append(t - float(mo.group(2)))
        c = rec.count[phase] = rec.count[phase] + 1
        if c == 1:
            rec.first_rx[phase] = t
        rec.last_rx[phase] = t
        wake = rec.wake
        if wake is not None and wake[0] == phase and c >= wake[1] and not wake[2].done():
            wake[2].set_result(None)

    async def request(self, frame_id: int, frame: bytes, timeout: float) -> bytes:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.replies[frame_id] = fut
        self.send_text(frame)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.replies.pop(frame_id, None)


class Worker:
    def __init__(self, m: int, phases: int) -> None:
        self.m, self.phases = m, phases
        self.groups: dict[str, list[WS]] = {}
        self._ids = 0

    async def open_one(
        self,
        port: int,
        path: str,
        record: bool,
        timeout: float,
        attempts: int = 3,
        rcvbuf: int = 0,
        deflate: bool = False,
    ) -> WS:
        loop = asyncio.get_running_loop()
        err: Exception | None = None
        for attempt in range(attempts):
            rec = Recorder(self.m * self.phases, self.phases) if record else None
            host = f"127.0.0.1:{port}"
            try:
                where: dict[str, Any] = {"host": "127.0.0.1", "port": port}
                if rcvbuf:  # a small fixed receive window (no autotuning): a slow link
                    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                    sock.setblocking(False)
                    await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
                    where = {"sock": sock}
                _, ws = await asyncio.wait_for(
                    loop.create_connection(
                        lambda r=rec, h=host: WS(h, path, r, self.m, deflate), **where
                    ),
                    timeout,
                )
                await asyncio.wait_for(ws.opened, timeout)
                return ws
            except Exception as exc:
                err = exc
                await asyncio.sleep(0.2 * (attempt + 1))
        raise ConnectionError(f"{type(err).__name__}: {err}")

    async def open(
        self,
        group: str,
        ports: list[int],
        count: int,
        path: str = "/ws",
        topics: list[str] | None = None,
        record: bool = True,
        ack: bool = True,
        concurrency: int = 64,
        timeout: float = 20.0,
        offset: int = 0,
        rcvbuf: int = 0,
        spread: int = 0,
        deflate: bool = False,
    ) -> dict[str, Any]:
        """Open ``count`` websockets (connection i on ports[i % len]); ``path`` and ``topics``
        may contain ``{i}`` (global index) and ``{t}`` (i modulo the topic count, for topics).
        Each subscribes to its topic(s); with ``ack`` it waits for the server's acks. ``offset``
        is added to i (so that several workers can share one numbering). With ``spread``,
        ``{t}`` in a topic is i modulo ``spread``."""
        sem = asyncio.Semaphore(concurrency)
        errors: list[str] = []
        out: list[WS | None] = [None] * count
        topics = topics or []

        async def one(k: int) -> None:
            i = k + offset
            async with sem:
                try:
                    ws = await self.open_one(
                        ports[i % len(ports)],
                        path.format(i=i),
                        record,
                        timeout,
                        rcvbuf=rcvbuf,
                        deflate=deflate,
                    )
                except Exception as exc:
                    errors.append(str(exc))
                    return
                for topic in topics:
                    name = topic.format(i=i, t=i % spread if spread else i)
                    if ack:
                        fid = self._next_id()
                        frame = b'{"type":"subscribe","id":%d,"topic":"%s"}' % (fid, name.encode())
                        try:
                            await ws.request(fid, frame, timeout)
                        except Exception as exc:
                            errors.append(f"subscribe {name}: {type(exc).__name__} {exc}")
                    else:
                        ws.send_text(b'{"type":"subscribe","topic":"%s"}' % name.encode())
                out[k] = ws

        await asyncio.gather(*(one(k) for k in range(count)))
        conns = [c for c in out if c is not None]
        self.groups.setdefault(group, []).extend(conns)
        return {
            "opened": len(conns),
            "errors": errors[:5],
            "n_errors": len(errors),
            # ids the server replaced (set_conn_id; it comes before the acks)
            "renamed": sum(c.renamed for c in conns),
        }

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    async def whoami(self, group: str, timeout: float = 10.0) -> dict[str, Any]:
        ids = []
        for ws in self.groups.get(group, []):
            fid = self._next_id()
            reply = await ws.request(fid, b'{"type":"whoami","id":%d}' % fid, timeout)
            ids.append(json.loads(reply)["data"]["conn_id"])
        return {"ids": ids}

    def status(self, group: str | None = None) -> dict[str, Any]:
        conns = (
            self.groups.get(group, []) if group else [c for g in self.groups.values() for c in g]
        )
        recs = [c.rec for c in conns if c.rec is not None]
        return {
            "count": [sum(r.count[p] for r in recs) for p in range(self.phases)],
            "warm": sum(r.warm for r in recs),
            "closed": sum(c.closed for c in conns),
            "open": len(conns),
            "compressed": sum(c.compressed for c in conns),
        }

    async def rpc(
        self, group: str, kind: str, count: int, timeout: float = 10.0, deadline_s: float = 60.0
    ) -> dict[str, Any]:
        """Request/reply, closed loop: every connection of ``group`` sends ``count`` requests
        ``{"type":kind,"id":N,"data":{payload}}`` one after the other, each once the previous
        one was answered. Returns the round-trip times (ms) and how many failed."""
        conns = self.groups.get(group, [])
        rtts = array("d")
        failed = 0
        t_end = now() + deadline_s

        async def one(ws: WS) -> None:
            nonlocal failed
            for _ in range(count):
                if now() > t_end:
                    return
                fid = self._next_id()
                msg = b'{"seq":%d,"ts":%.6f,"pad":"%s"}' % (fid, now(), PAD)
                frame = b'{"type":"%s","id":%d,"data":%s}' % (kind.encode(), fid, msg)
                t0 = now()
                try:
                    reply = await ws.request(fid, frame, timeout)
                except Exception:
                    failed += 1
                    continue
                if not reply.startswith(b'{"type":"reply"') or b'"seq":%d' % fid not in reply:
                    failed += 1
                    continue
                rtts.append((now() - t0) * 1000)

        t0 = now()
        await asyncio.gather(*(one(ws) for ws in conns))
        wall = now() - t0
        ordered = sorted(rtts)

        def pct(q: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None

        return {
            "answered": len(ordered),
            "failed": failed,
            "wall_s": wall,
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
            "max_ms": ordered[-1] if ordered else None,
        }

    def stall(self, group: str) -> dict[str, Any]:
        """Stop reading on every connection of ``group`` (a client that stopped reading)."""
        conns = self.groups.get(group, [])
        for c in conns:
            if c.transport is not None:
                c.transport.pause_reading()
        return {"stalled": len(conns)}

    def _frame(self, kind: str, seq: int, target: str, pad: bytes = PAD) -> bytes:
        msg = b'{"seq":%d,"ts":%.6f,"pad":"%s"}' % (seq, now(), pad)
        if kind == "topic":
            return b'{"type":"publish","topic":"%s","data":%s}' % (target.encode(), msg)
        if kind == "send":  # seed-compatible
            return b'{"type":"send","topic":"%s",%s' % (target.encode(), msg[1:])
        by = b"user" if kind == "user" else b"conn"
        return b'{"type":"direct","data":{"to":"%s","by":"%s","msg":%s}}' % (
            target.encode(),
            by,
            msg,
        )

    def warmup(self, kind: str, targets: list[str]) -> dict[str, Any]:
        pub = self.groups["pub"][0]
        for target in targets:
            pub.send_text(self._frame(kind, -1, target))
        return {"sent": len(targets)}

    async def publish(
        self,
        phase: int,
        kind: str,
        targets: list[str],
        rate: float = 0.0,
        window: int = 0,
        deadline_s: float = 60.0,
        stall_s: float = 1.0,
        pad: int = 0,
        count: int = 0,
    ) -> dict[str, Any]:
        """Send M messages round-robin over ``targets``: at ``rate`` msg/s (open loop), or as
        fast as possible but at most ``window`` ahead of the ``probe`` group's deliveries.
        ``pad``: the payload's padding in bytes (default ~100-byte payloads)."""
        padding = b"x" * pad if pad else PAD
        pub = self.groups["pub"][0]
        probe = self.groups.get("probe", [None])[0]
        base, m = phase * self.m, min(count or self.m, self.m)
        sent, stalls, max_lag = 0, 0, 0.0
        t0 = now()
        for i in range(m):
            if now() - t0 > deadline_s:
                break
            if window and probe is not None and probe.rec is not None:
                rec = probe.rec
                if i - rec.count[phase] >= window:
                    fut = asyncio.get_running_loop().create_future()
                    rec.wake = (phase, i - window + 1, fut)
                    try:
                        await asyncio.wait_for(fut, stall_s)
                    except TimeoutError:
                        stalls += 1  # the probe got nothing for stall_s: send anyway (bounded)
                    finally:
                        rec.wake = None
            elif rate:
                d = t0 + i / rate - now()
                if d > 0:
                    await asyncio.sleep(d)
                else:
                    max_lag = max(max_lag, -d)
            pub.send_text(self._frame(kind, base + i, targets[i % len(targets)], padding))
            sent += 1
            if i % 64 == 63:
                await asyncio.sleep(0)
        t1 = now()
        return {
            "sent": sent,
            "first_send": t0,
            "last_send": t1,
            "send_rate": sent / max(t1 - t0, 1e-9),
            "window_stalls": stalls,
            "max_lag_s": max_lag,
        }

    async def publish_many(
        self,
        phase: int,
        kind: str,
        targets: list[str],
        rate: float = 2000.0,
        window: int = 0,
        deadline_s: float = 60.0,
        group: str = "pubs",
        count: int = 0,
    ) -> dict[str, Any]:
        """Many publishers (the chat pattern): connection j of ``group`` publishes to
        ``targets[j]``; message g (of M) goes out from connection g mod K at t0 + g/rate, on
        one absolute schedule (late ones go at once, their lateness is recorded)."""
        pubs = self.groups[group]
        k, base, m = len(pubs), phase * self.m, min(count or self.m, self.m)
        sent, max_lag = 0, 0.0
        t0 = now()
        for g in range(m):
            if now() - t0 > deadline_s:
                break
            d = t0 + g / rate - now()
            if d > 0.0005:
                await asyncio.sleep(d)
            elif d < 0:
                max_lag = max(max_lag, -d)
            pubs[g % k].send_text(self._frame(kind, base + g, targets[g % k]))
            sent += 1
        t1 = now()
        return {
            "sent": sent,
            "first_send": t0,
            "last_send": t1,
            "send_rate": sent / max(t1 - t0, 1e-9),
            "window_stalls": 0,
            "max_lag_s": max_lag,
        }

    def stats(self, phase: int, lat_path: str, group: str = "sub") -> dict[str, Any]:
        conns = self.groups.get(group, [])
        lat = array("d")
        unique = dups = 0
        first, last = [], []
        for c in conns:
            r = c.rec
            if r is None:
                continue
            lat.extend(r.lat[phase])
            unique += r.count[phase]
            dups += r.dups[phase]
            if r.count[phase]:
                first.append(r.first_rx[phase])
                last.append(r.last_rx[phase])
        with open(lat_path, "wb") as f:
            lat.tofile(f)
        return {
            "unique": unique,
            "dups": dups,
            "first_rx": min(first) if first else None,
            "last_rx": max(last) if last else None,
            "other_frames": sum(c.other for c in conns),
            "closed": sum(c.closed for c in conns),
        }

    def close_all(self) -> None:
        for conns in self.groups.values():
            for c in conns:
                c.close()


async def serve(args: argparse.Namespace) -> None:
    worker = Worker(args.m, args.phases)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    deadline = now() + args.max_seconds

    def answer(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    answer({"hello": os.getpid()})
    while now() < deadline:
        try:
            line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - now()))
        except TimeoutError:
            break
        if not line:
            break
        cmd = json.loads(line)
        op = cmd.pop("op")
        try:
            if op == "quit":
                worker.close_all()
                await asyncio.sleep(0.2)
                answer({"ok": True})
                break
            handler = getattr(worker, op, None)
            if handler is None or op.startswith("_"):
                raise ValueError(f"unknown op {op!r}")
            res = handler(**cmd)
            if asyncio.iscoroutine(res):
                res = await res
        except Exception as exc:
            res = {"error": f"{type(exc).__name__}: {exc}"}
        answer(res)
    worker.close_all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--m", type=int, required=True, help="messages per phase")
    ap.add_argument("--phases", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=900.0)
    args = ap.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))


if __name__ == "__main__":
    main()
