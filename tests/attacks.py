"""Attacks on a running server, for tests/test_serve.py and benchmarks/server_limits.py.

Each is bounded in count and time and talks to 127.0.0.1 only:

- `compression_bomb`: clients that negotiate permessage-deflate and each send one text frame
  of zeros (10 MB inflates from ~10 KB on the wire);
- `ping_flood`: a raw RFC 6455 client that sends pings and never reads;
- `slowloris`: sockets that send a partial upgrade request and then nothing.

`RunServer` starts ``asyncws run`` (or, with ``plain=True``, plain uvicorn with its defaults) as a
`tests.servers.UvicornServer`; `memory` reads a process's VmRSS and VmHWM from /proc.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.servers import UvicornServer

__all__ = [
    "BombResult",
    "FloodResult",
    "RunServer",
    "closed_by_server",
    "compression_bomb",
    "memory",
    "ping_flood",
    "real_client_gets_in",
    "slowloris",
    "wire_size",
]


class RunServer(UvicornServer):
    """``python -m asyncws.cli run APP`` on 127.0.0.1 and a free port (``plain=True``: plain
    ``python -m uvicorn APP``, uvicorn's defaults, for the before figures). ``nofile`` caps the
    server's file descriptors (RLIMIT_NOFILE), to show what a slowloris does to a real limit.

    ``ASYNCWS_TEST_PLAIN=1`` makes every server plain (and drops the options only ``asyncws
    run`` knows): ``ASYNCWS_TEST_PLAIN=1 pytest tests/test_serve.py`` shows each attack test
    failing against uvicorn's defaults.
    """

    def __init__(self, app: str, *, plain: bool = False, nofile: int | None = None, **kw: object):
        super().__init__(app, **kw)  # type: ignore[arg-type]
        self.plain = plain or os.environ.get("ASYNCWS_TEST_PLAIN") == "1"
        self.nofile = nofile
        if self.plain and "--header-timeout" in self.extra_args:
            at = self.extra_args.index("--header-timeout")
            del self.extra_args[at : at + 2]

    def argv(self) -> list[str]:
        argv = super().argv()
        if not self.plain:
            argv[1:4] = ["-m", "asyncws.cli", "run", self.app]
        if self.nofile is not None:
            limit = f"import resource; resource.setrlimit(resource.RLIMIT_NOFILE, ({self.nofile}, {self.nofile}))"
            module = "asyncws.cli" if not self.plain else "uvicorn"
            start = f"import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_module({module!r}, run_name='__main__')"
            argv = [sys.executable, "-c", f"{limit}; {start}", module, *argv[3:]]
        return argv


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in bytes."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0]) * 1024
    return values


def wire_size(size: int) -> int:
    """Bytes on the wire for ``size`` zeros, deflated as a permessage-deflate client would."""
    compressor = zlib.compressobj(wbits=-15)
    return len(compressor.compress(b"0" * size) + compressor.flush(zlib.Z_SYNC_FLUSH)) - 4


@dataclass
class BombResult:
    close_codes: list[int | None] = field(default_factory=list)
    wire_bytes: int = 0


async def compression_bomb(
    url: str, *, clients: int = 4, size: int = 10_000_000, timeout: float = 20.0
) -> BombResult:
    """``clients`` connections at once, each sending one compressed text frame of ``size``
    zeros; returns the close code each one got (None: not closed within ``timeout``)."""
    payload = "0" * size
    result = BombResult(wire_bytes=clients * wire_size(size))

    async def one() -> int | None:
        async with connect(
            url, compression="deflate", max_size=None, open_timeout=timeout, close_timeout=2
        ) as ws:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(payload)
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        await ws.recv()
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd is not None else None
            except TimeoutError:
                return None

    result.close_codes = list(await asyncio.gather(*(one() for _ in range(clients))))
    return result


def _upgrade_request(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _masked_ping(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x89, 0x80 | len(payload)) + mask + masked


@dataclass
class FloodResult:
    pings_sent: int = 0
    seconds: float = 0.0
    pushed_back: bool = False  # the server stopped reading (our send timed out)
    memory: dict[str, int] = field(default_factory=dict)  # the server's, flood still open


def _server_rx_queue(server_port: int, client_port: int) -> int | None:
    """Bytes the server has not read yet on its side of our connection (/proc/net/tcp)."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    with open("/proc/net/tcp", encoding="ascii") as table:
        for line in table:
            fields = line.split()
            if len(fields) > 4 and fields[1] == local and fields[2] == remote:
                return int(fields[4].split(":")[1], 16)
    return None


def ping_flood(
    port: int,
    path: str,
    pid: int,
    *,
    pings: int = 200_000,
    seconds: float = 15.0,
    stall: float = 2.0,
) -> FloodResult:
    """Upgrade, then send up to ``pings`` 125-byte pings within ``seconds`` and never read.

    Sending stops early when the server stops reading for ``stall`` seconds (it pushed back).
    The socket's receive buffer is small, so the pongs pile up on the server's side. The
    server's memory (process ``pid``) is read while the connection is still open, once the
    server has read everything it was sent or pushed back.
    """
    result = FloodResult()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.settimeout(5.0)
        sock.connect(("127.0.0.1", port))
        sock.sendall(_upgrade_request("127.0.0.1", port, path))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)
            if not chunk:
                raise ConnectionError("the server closed the connection during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"upgrade refused: {head[:60]!r}")
        batch = b"".join(_masked_ping(os.urandom(125)) for _ in range(1000))
        sock.settimeout(stall)
        started = time.monotonic()
        while result.pings_sent < pings and time.monotonic() - started < seconds:
            try:
                sock.sendall(batch)
            except TimeoutError:
                result.pushed_back = True
                break
            result.pings_sent += 1000
        result.seconds = time.monotonic() - started
        if not result.pushed_back:  # wait (bounded) until the server read all of it
            client_port = sock.getsockname()[1]
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and _server_rx_queue(port, client_port):
                time.sleep(0.05)
        result.memory = memory(pid)
        return result
    finally:
        sock.close()


async def slowloris(port: int, path: str, *, sockets: int) -> list[socket.socket]:
    """Open up to ``sockets`` connections, each sending a partial upgrade request (no blank
    line), and return them (the caller closes them, see `closed_by_server`)."""
    partial = _upgrade_request("127.0.0.1", port, path)[:-2]
    loop = asyncio.get_running_loop()
    opened: list[socket.socket] = []
    for _ in range(sockets):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 2.0)
            await asyncio.wait_for(loop.sock_sendall(sock, partial), 2.0)
        except (OSError, TimeoutError):
            sock.close()
            continue
        opened.append(sock)
    return opened


async def closed_by_server(sockets: Sequence[socket.socket], hold: float) -> int:
    """How many of ``sockets`` the server closes within ``hold`` seconds."""
    loop = asyncio.get_running_loop()

    async def closed(sock: socket.socket) -> bool:
        try:
            return await asyncio.wait_for(loop.sock_recv(sock, 1), hold) == b""
        except TimeoutError:
            return False
        except OSError:  # reset by the server
            return True

    return sum(await asyncio.gather(*(closed(s) for s in sockets)))


async def real_client_gets_in(url: str, deadline: float) -> float | None:
    """Seconds until a websocket handshake to ``url`` succeeds (None: not within ``deadline``)."""
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        left = deadline - (time.monotonic() - started)
        try:
            async with connect(url, open_timeout=max(left, 0.1), close_timeout=1):
                return time.monotonic() - started
        except (OSError, TimeoutError, InvalidHandshake):
            await asyncio.sleep(0.1)
    return None


def close_all(sockets: Sequence[socket.socket]) -> None:
    for sock in sockets:
        sock.close()
