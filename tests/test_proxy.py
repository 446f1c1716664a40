"""WebSocketProxy: a real gateway process relaying real clients to a real upstream process.

The apps are in tests/apps/proxy_apps.py. Server tests are marked ``slow``; the URL template
and close-code tests need no server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asyncws.proxy import UPSTREAM_UNAVAILABLE, WebSocketProxy, upstream_url, wire_close_code
from asyncws.testing import TestClient, WebSocketDenied
from tests.servers import UvicornServer, free_port

CONNECT_TIMEOUT = 1.0  # the gateway's connect timeout, for the unreachable-upstream cases
WAIT = 10.0  # bound of every poll


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def blackhole_port() -> Iterator[int]:
    """A port that completes TCP handshakes (the kernel's backlog) and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture(scope="module")
def upstream() -> Iterator[UvicornServer]:
    with UvicornServer("tests.apps.proxy_apps:upstream_app", ready_path="/stats") as server:
        yield server
        log = server.log_text()
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def gateway(upstream: UvicornServer, blackhole_port: int) -> Iterator[UvicornServer]:
    env = {
        "ASYNCWS_TEST_UPSTREAM": f"ws://127.0.0.1:{upstream.port}",
        "ASYNCWS_TEST_DEAD_UPSTREAM": f"ws://127.0.0.1:{free_port()}",
        "ASYNCWS_TEST_BLACKHOLE_UPSTREAM": f"ws://127.0.0.1:{blackhole_port}",
        "ASYNCWS_TEST_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
    }
    with UvicornServer("tests.apps.proxy_apps:gateway_app", env=env, ready_path="/stats") as server:
        yield server
        log = server.log_text()
    assert "Traceback" not in log, log


async def stats(server: UvicornServer) -> dict[str, Any]:
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as http:
        response = await http.get(f"{server.url}/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


async def poll(
    check: Callable[[], Awaitable[Any]], *, timeout: float = WAIT, what: str = "condition"
) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s (last: {result!r})")
        await asyncio.sleep(0.05)


def client(url: str, **kwargs: Any) -> connect:
    return connect(url, proxy=None, open_timeout=5.0, close_timeout=5.0, **kwargs)


async def upstream_close(upstream: UvicornServer, conn_id: str) -> dict[str, Any]:
    async def ended() -> Any:
        return (await stats(upstream))["closes"].get(conn_id)

    result: dict[str, Any] = await poll(ended, what=f"upstream close of {conn_id}")
    return result


async def gateway_idle(gateway: UvicornServer) -> None:
    """No proxy running and no relay task left in the gateway."""

    async def idle() -> bool:
        s = await stats(gateway)
        return bool(s["active"] == 0 and s["relay_tasks"] == 0)

    await poll(idle, what="gateway idle")


def room() -> str:
    return f"c{uuid.uuid4().hex[:12]}"


def rss_bytes(pid: int | None) -> int:
    assert pid is not None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


# -- relaying -------------------------------------------------------------------------------


@pytest.mark.slow
async def test_text_and_binary_round_trip(gateway: UvicornServer) -> None:
    async with client(gateway.ws_url("/ws")) as ws:
        for frame in ["hello", "héllo ✓ 🚀", "", "x" * 100_000]:
            await ws.send(frame)
            assert await asyncio.wait_for(ws.recv(), 5) == frame
        for data in [b"\x00\xff\xfe binary", b"", bytes(range(256)) * 1000]:
            await ws.send(data)
            echoed = await asyncio.wait_for(ws.recv(), 5)
            assert isinstance(echoed, bytes) and echoed == data
    await gateway_idle(gateway)


@pytest.mark.slow
async def test_only_allow_listed_headers_are_forwarded(gateway: UvicornServer) -> None:
    headers = {"Authorization": "Bearer abc.def", "Cookie": "session=1", "X-Secret": "no"}
    async with client(gateway.ws_url("/ws"), additional_headers=headers) as ws:
        await ws.send("info")
        info = json.loads(await asyncio.wait_for(ws.recv(), 5))
    received = info["headers"]
    assert received["authorization"] == "Bearer abc.def"
    assert "cookie" not in received and "x-secret" not in received
    assert info["path"] == "/ws"


@pytest.mark.slow
async def test_subprotocol_negotiated_end_to_end(gateway: UvicornServer) -> None:
    async with client(gateway.ws_url("/ws"), subprotocols=["other", "chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"  # the upstream's choice, accepted by the gateway
        await ws.send("info")
        info = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert info["offered"] == ["other", "chat.v1"]
        assert info["subprotocol"] == "chat.v1"
    async with client(gateway.ws_url("/ws"), subprotocols=["other"]) as ws:
        assert ws.subprotocol is None
    async with client(gateway.ws_url("/ws")) as ws:
        assert ws.subprotocol is None


@pytest.mark.slow
async def test_bearer_token_through_the_gateway(gateway: UvicornServer) -> None:
    """An upstream protected by WebSocketOAuth2PasswordBearer, behind the gateway."""
    headers = {"Authorization": "Bearer header-token"}
    async with client(gateway.ws_url("/secure"), additional_headers=headers) as ws:
        assert await asyncio.wait_for(ws.recv(), 5) == "header-token"
    # A browser's way: the token as a subprotocol entry, next to the real subprotocol.
    async with client(gateway.ws_url("/secure"), subprotocols=["chat.v1", "bearer.sp-tok"]) as ws:
        assert ws.subprotocol == "chat.v1"  # never the token
        assert await asyncio.wait_for(ws.recv(), 5) == "sp-tok"
    await expect_refused(gateway.ws_url("/secure"))  # no token: the upstream refuses
    await gateway_idle(gateway)


# -- closing --------------------------------------------------------------------------------


async def expect_close(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as caught:
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    rcvd = caught.value.rcvd
    assert rcvd is not None, caught.value
    return rcvd.code, rcvd.reason


@pytest.mark.slow
async def test_upstream_close_code_and_reason_reach_the_client(gateway: UvicornServer) -> None:
    async with client(gateway.ws_url("/ws")) as ws:
        await ws.send("close 4001 bye")
        assert await expect_close(ws) == (4001, "bye")
    await gateway_idle(gateway)
    ending = (await stats(gateway))["endings"][-1]
    assert ending == {"by": "upstream", "code": 4001, "reason": "bye"}


@pytest.mark.slow
async def test_client_close_code_and_reason_reach_the_upstream(
    gateway: UvicornServer, upstream: UvicornServer
) -> None:
    conn_id = room()
    async with client(gateway.ws_url(f"/rooms/{conn_id}")) as ws:
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), 5) == "ping"
        assert conn_id in (await stats(upstream))["open_ids"]
        await ws.close(4002, "later")
    assert await upstream_close(upstream, conn_id) == {
        "by": "peer",
        "code": 4002,
        "reason": "later",
    }
    await poll(lambda: _not_open(upstream, conn_id), what="upstream connection closed after close")
    await gateway_idle(gateway)


async def _not_open(upstream: UvicornServer, conn_id: str) -> bool:
    return conn_id not in (await stats(upstream))["open_ids"]


@pytest.mark.slow
async def test_client_vanishing_closes_the_upstream(
    gateway: UvicornServer, upstream: UvicornServer
) -> None:
    """A client that drops its TCP connection (no close frame) leaks nothing upstream."""
    conn_id = room()
    ws = await client(gateway.ws_url(f"/rooms/{conn_id}"))
    await ws.send("ping")
    assert await asyncio.wait_for(ws.recv(), 5) == "ping"
    assert conn_id in (await stats(upstream))["open_ids"]
    ws.transport.abort()
    await poll(lambda: _not_open(upstream, conn_id), what="upstream connection closed")
    closed = await upstream_close(upstream, conn_id)
    assert closed["code"] == 1000  # uvicorn reports the drop as 1005: sent on as 1000
    await gateway_idle(gateway)


@pytest.mark.slow
async def test_silent_upstream_and_client_leaving(
    gateway: UvicornServer, upstream: UvicornServer
) -> None:
    async with client(gateway.ws_url("/silent")) as ws:
        await ws.send("anyone?")

        async def silent_open() -> bool:
            return "silent" in (await stats(upstream))["open_ids"]

        await poll(silent_open, what="silent upstream connection open")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.2)  # nothing comes back
    await poll(lambda: _not_open(upstream, "silent"), what="silent upstream closed")
    await gateway_idle(gateway)


@pytest.mark.slow
async def test_oversized_frames_close_both_sides_with_1009(
    gateway: UvicornServer, upstream: UvicornServer
) -> None:
    conn_id = room()
    async with client(gateway.ws_url(f"/rooms/{conn_id}"), max_size=None) as ws:
        await ws.send(b"\x00" * (2**20 + 1))  # over the proxy's 1 MiB
        assert (await expect_close(ws))[0] == 1009
    assert (await upstream_close(upstream, conn_id))["code"] == 1009

    async with client(gateway.ws_url("/ws"), max_size=None) as ws:
        await ws.send(f"big {2**20 + 1}")  # the upstream sends over 1 MiB
        assert (await expect_close(ws))[0] == 1009
    await gateway_idle(gateway)


# -- unreachable upstream -------------------------------------------------------------------


async def expect_refused(url: str) -> float:
    start = time.monotonic()
    with pytest.raises(InvalidStatus) as caught:
        async with client(url):
            pass
    assert caught.value.response.status_code == 403
    return time.monotonic() - start


@pytest.mark.slow
async def test_upstream_down_refuses_the_handshake(gateway: UvicornServer) -> None:
    assert await expect_refused(gateway.ws_url("/dead")) < CONNECT_TIMEOUT + 1.0
    await gateway_idle(gateway)


@pytest.mark.slow
async def test_upstream_refusing_refuses_the_handshake(gateway: UvicornServer) -> None:
    assert await expect_refused(gateway.ws_url("/refused")) < CONNECT_TIMEOUT + 1.0


@pytest.mark.slow
async def test_upstream_not_answering_refuses_within_the_connect_timeout(
    gateway: UvicornServer,
) -> None:
    elapsed = await expect_refused(gateway.ws_url("/blackhole"))
    assert CONNECT_TIMEOUT * 0.9 <= elapsed < CONNECT_TIMEOUT + 2.0
    await gateway_idle(gateway)


@pytest.mark.slow
async def test_upstream_down_after_accept_closes_with_1014(gateway: UvicornServer) -> None:
    async with client(gateway.ws_url("/dead-accept-first")) as ws:
        start = time.monotonic()
        assert await expect_close(ws) == (1014, UPSTREAM_UNAVAILABLE)
        assert time.monotonic() - start < CONNECT_TIMEOUT + 1.0
    await gateway_idle(gateway)


@pytest.mark.slow
async def test_accept_first_style_relays(gateway: UvicornServer) -> None:
    async with client(gateway.ws_url("/accept-first")) as ws:
        await ws.send(b"\x01\x02")
        assert await asyncio.wait_for(ws.recv(), 5) == b"\x01\x02"


@pytest.mark.slow
async def test_gateway_refuses_unsafe_template_values(gateway: UvicornServer) -> None:
    for value in ["@evil.example", "a%20b", "..", "x" * 129]:
        await expect_refused(gateway.ws_url(f"/rooms/{value}"))


# -- back-pressure --------------------------------------------------------------------------


@pytest.mark.slow
async def test_slow_client_back_pressures_the_upstream(
    gateway: UvicornServer, upstream: UvicornServer
) -> None:
    """The client reads nothing while the upstream floods: the upstream's sends stall and the
    gateway's memory stays bounded; reading again lets the stream go on."""
    conn_id = room()
    chunk = 64 * 1024
    rss_before = rss_bytes(gateway.pid)
    url = gateway.ws_url(f"/rooms/{conn_id}")
    async with client(url, max_queue=4, compression=None) as ws:
        await ws.send(f"flood {chunk}")

        history: list[int] = []

        async def stalled() -> int:
            history.append((await stats(upstream))["flooded"].get(conn_id, 0))
            recent = history[-8:]
            return recent[0] if len(recent) == 8 and recent[0] == recent[-1] > 0 else 0

        plateau = await poll(stalled, what="upstream flood stalled")
        # In flight: kernel socket buffers on two hops plus the bounded queues (about 16 MiB
        # here); without back-pressure the flood runs at hundreds of MiB per second.
        assert plateau < 64 * 2**20, plateau
        growth = rss_bytes(gateway.pid) - rss_before
        print(f"\ngateway RSS growth under a stalled client: {growth / 2**20:.1f} MiB")
        # the gateway's queue: max_buffer (1 MiB) of frames, + 2 MiB (transport buffers)
        assert growth < 3 * 2**20, growth

        for _ in range(200):  # reading again lets the upstream send more
            assert len(await asyncio.wait_for(ws.recv(), 5)) == chunk

        async def moving() -> bool:
            return bool((await stats(upstream))["flooded"][conn_id] > plateau)

        await poll(moving, what="flood resumed")

        # Close while still reading (so that this client's own closing handshake is not stuck
        # behind the flood): the gateway must close the upstream promptly even though the
        # upstream's close reply sits behind megabytes the gateway will never forward.
        async def discard() -> None:
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await ws.recv()

        draining = asyncio.create_task(discard())
        await ws.close(4002, "enough")
        await draining
    # Well under the proxy's 5 s close timeout.
    await poll(lambda: _not_open(upstream, conn_id), timeout=3.0, what="flooding upstream closed")
    assert (await upstream_close(upstream, conn_id))["code"] == 4002
    await gateway_idle(gateway)


# -- in process -----------------------------------------------------------------------------


def _relay_tasks() -> list[asyncio.Task[Any]]:
    return [
        t for t in asyncio.all_tasks() if t.get_name().startswith("asyncws.proxy.") and not t.done()
    ]


@pytest.mark.slow
async def test_in_process_proxy_leaves_no_task_behind(upstream: UvicornServer) -> None:
    """The gateway in this process (asyncws.testing): relay tasks are gone when the client
    leaves, and a cancelled proxy (server shutdown) still closes the upstream (1001)."""
    proxies: dict[str, asyncio.Task[Any]] = {}
    app = FastAPI()

    @app.websocket("/ws/{conn_id}")
    async def endpoint(websocket: WebSocket, conn_id: str) -> None:
        template = f"ws://127.0.0.1:{upstream.port}/ws/{{conn_id}}"
        proxy = WebSocketProxy.from_template(websocket, template, conn_id=conn_id)
        task = asyncio.current_task()
        assert task is not None
        proxies[conn_id] = task
        with contextlib.suppress(asyncio.CancelledError):  # so the test client ends quietly
            await proxy()

    async with TestClient(app) as test_client:
        first = room()
        async with test_client.connect(f"/ws/{first}") as ws:
            await ws.send_text("ping")
            assert await ws.receive_text() == "ping"
            await ws.send_bytes(b"\x00\x01")
            # WebSocketSession has no receive_bytes (yet): read the raw ASGI message.
            assert (await ws._next())["bytes"] == b"\x00\x01"
            assert len(_relay_tasks()) == 2
        assert _relay_tasks() == []
        assert (await upstream_close(upstream, first))["code"] == 1000

        second = room()
        async with test_client.connect(f"/ws/{second}") as ws:
            await ws.send_text("ping")
            assert await ws.receive_text() == "ping"
            proxies[second].cancel()
            await asyncio.wait([proxies[second]], timeout=5)
            assert proxies[second].done()
            assert _relay_tasks() == []
            assert (await upstream_close(upstream, second))["code"] == 1001


async def test_in_process_upstream_down_refuses_the_handshake() -> None:
    app = FastAPI()

    @app.websocket("/dead")
    async def dead(websocket: WebSocket) -> None:
        await WebSocketProxy(websocket, f"ws://127.0.0.1:{free_port()}/ws")()

    async with TestClient(app) as test_client:
        with pytest.raises(WebSocketDenied) as denied:
            await test_client.websocket_connect("/dead")
        assert denied.value.status == 403
    assert _relay_tasks() == []


# -- no server needed -----------------------------------------------------------------------


def test_upstream_url_fills_safe_segments() -> None:
    template = "ws://svc:8000/ws/{conn_id}"
    assert upstream_url(template, conn_id="abc-1.2_~X") == "ws://svc:8000/ws/abc-1.2_~X"
    assert upstream_url(template, conn_id=42) == "ws://svc:8000/ws/42"
    assert upstream_url("wss://svc/a/{x}/b/{y}?v=1", x="p", y="q") == "wss://svc/a/p/b/q?v=1"
    assert upstream_url("ws://svc/fixed") == "ws://svc/fixed"


@pytest.mark.parametrize(
    "value",
    [
        "../admin",
        "..",
        ".",
        "a/b",
        "/",
        "@evil.example",
        "user@evil.example",
        "evil.example:80",
        "a?b",
        "a#b",
        "a b",
        "a\nb",
        "%2e%2e",
        "",
        "x" * 129,
        "é",
        True,
        None,
        1.5,
    ],
)
def test_upstream_url_rejects_unsafe_values(value: Any) -> None:
    with pytest.raises(ValueError):
        upstream_url("ws://svc:8000/ws/{conn_id}", conn_id=value)


@pytest.mark.parametrize(
    "template",
    [
        "http://svc/ws/{x}",  # not a websocket scheme
        "ws://{x}/ws",  # the host
        "ws://svc:{x}/ws",  # the port
        "ws://svc{x}/ws",
        "ws://user{x}@svc/ws",
        "{x}://svc/ws",
        "ws://svc/{x!r}",  # conversion
        "ws://svc/{x:>10}",  # format spec
        "ws://svc/{x.attr}",
        "ws://svc/{x[0]}",
        "ws://svc/{0}",
        "ws://svc/{}",
        "ws://svc/{x",
    ],
)
def test_upstream_url_rejects_unsafe_templates(template: str) -> None:
    with pytest.raises(ValueError):
        upstream_url(template, x="a")


def test_upstream_url_wants_exactly_the_template_fields() -> None:
    with pytest.raises(ValueError, match="no value"):
        upstream_url("ws://svc/{a}/{b}", a="x")
    with pytest.raises(ValueError, match="without a template field"):
        upstream_url("ws://svc/{a}", a="x", host="evil")


def test_from_template_and_constructor_validate() -> None:
    ws: Any = object()  # not used before __call__
    proxy = WebSocketProxy.from_template(ws, "ws://svc/ws/{conn_id}", conn_id="room1", max_queue=8)
    assert proxy.server_endpoint == "ws://svc/ws/room1" and proxy.max_queue == 8
    # upstream -> client: max_buffer bytes of max_size frames, 1 to max_queue frames
    assert proxy.queue_frames == 1  # 1 MiB of frames of up to 1 MiB
    assert WebSocketProxy(ws, "ws://svc/ws", max_size=2**16).queue_frames == 16
    assert WebSocketProxy(ws, "ws://svc/ws", max_size=2**10).queue_frames == 64  # max_queue
    assert WebSocketProxy(ws, "ws://svc/ws", max_buffer=10).queue_frames == 1
    with pytest.raises(ValueError):
        WebSocketProxy(ws, "ws://svc/ws", max_buffer=0)
    with pytest.raises(ValueError):
        WebSocketProxy.from_template(ws, "ws://svc/ws/{conn_id}", conn_id="../x")
    for bad in ["http://svc/ws", "svc/ws", "ws:///ws", "ws://svc/ws#frag", "ws://svc/ a"]:
        with pytest.raises(ValueError):
            WebSocketProxy(ws, bad)
    for header in ["host", "Sec-WebSocket-Key", "connection", "upgrade"]:
        with pytest.raises(ValueError):
            WebSocketProxy(ws, "ws://svc/ws", forward_headers=[header])
    with pytest.raises(ValueError):
        WebSocketProxy(ws, "ws://svc/ws", connect_timeout=0)


@pytest.mark.parametrize(
    ("observed", "sent"),
    [
        (1000, 1000),
        (1001, 1001),
        (1008, 1008),
        (1014, 1014),
        (3000, 3000),
        (4999, 4999),
        (None, 1000),
        (1005, 1000),
        (1006, 1011),
        (1015, 1011),
        (1004, 1011),
        (2000, 1011),
        (5000, 1011),
    ],
)
def test_wire_close_code(observed: int | None, sent: int) -> None:
    assert wire_close_code(observed) == sent
