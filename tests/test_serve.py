"""`asyncws run`: uvicorn with limits that match the app, against real attacks.

Each attack (tests/attacks.py) runs against a server started with ``asyncws run``; the same
attacks against plain ``uvicorn`` with its defaults are in benchmarks/server_limits.py, which
prints the before/after figures quoted in docs/hostile-input.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect

from asyncws import AsyncWS
from asyncws.cli import CLIError, main
from asyncws.limits import Limits
from asyncws.serve import DEFAULT_MAX_SIZE, asyncws_apps, check_server, run, server_settings
from tests.attacks import (
    RunServer,
    close_all,
    closed_by_server,
    compression_bomb,
    memory,
    ping_flood,
    real_client_gets_in,
    slowloris,
)
from tests.servers import REPO_ROOT

MiB = 1 << 20

small = AsyncWS(title="small", limits=Limits(max_frame_size=64 * 1024, max_connections=500))
small_app = FastAPI(lifespan=small.lifespan)
small_app.include_router(small.asgi_router)
lifespan_only = FastAPI(lifespan=small.lifespan)  # the AsyncWS found through its lifespan


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO_ROOT)


def test_settings_follow_the_app(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "examples.chat.app:app", "--show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ws_max_size"] == MiB  # the chat's max_frame_size
    assert shown["limit_concurrency"] == 11_000  # max_connections 10,000 + 10 %
    assert shown["ws"] == "asyncws._uvicorn:WebSocketProtocol"
    assert shown["http"].startswith("asyncws._uvicorn:")
    assert shown["ASYNCWS_HEADER_TIMEOUT"] == "10.0"

    assert run("examples/chat/app.py:app", show=True).ws_max_size == MiB  # a file path
    settings = run("tests.test_serve:small_app", show=True)
    assert (settings.ws_max_size, settings.limit_concurrency) == (64 * 1024, 600)
    assert asyncws_apps(lifespan_only) == [small]
    # a gateway serves no AsyncWS: WebSocketProxy's default max_size
    assert run("tests.apps.bomb_apps:gateway_app", show=True).ws_max_size == DEFAULT_MAX_SIZE
    overridden = run("tests.test_serve:small_app", show=True, ws_max_size=4096, header_timeout=2)
    assert (overridden.ws_max_size, overridden.header_timeout) == (4096, 2)
    assert server_settings([]).limit_concurrency == 11_000

    with pytest.raises(CLIError, match="not an ASGI app"):
        run("tests.test_serve:small", show=True)
    with pytest.raises(CLIError, match="expected MODULE:APP"):
        run("tests.test_serve", show=True)
    with pytest.raises(CLIError, match="no attribute"):
        run("tests.test_serve:nope", show=True)


async def test_no_warning_outside_uvicorn() -> None:
    assert check_server(small) == []  # not under uvicorn's lifespan: nothing to compare


def _growth(before: dict[str, int], after: dict[str, int], key: str = "VmHWM") -> float:
    return (after[key] - before[key]) / MiB


async def _chat_round_trip(url: str) -> dict[str, Any]:
    async with connect(url, open_timeout=5) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topic": "rooms/lobby", "id": 1}))
        return dict(json.loads(await asyncio.wait_for(ws.recv(), 5)))


@pytest.mark.slow
async def test_warning_under_uvicorn_defaults() -> None:
    with RunServer("examples.chat.app:app", plain=True, ready_path="/asyncapi.json") as plain:
        assert "ws_max_size (16777216 bytes) is above the app's max_frame_size" in (
            plain.log_text()
        )


@pytest.mark.slow
async def test_compression_bomb_is_refused_while_inflating() -> None:
    with RunServer("examples.chat.app:app", ready_path="/asyncapi.json") as server:
        before = memory(server.pid or 0)
        result = await compression_bomb(server.ws_url("/ws?user=mallory"), clients=4)
        after = memory(server.pid or 0)
        print(f"4 x 10 MB in {result.wire_bytes} bytes: peak RSS +{_growth(before, after):.1f} MiB")
        assert result.close_codes == [1009] * 4
        assert _growth(before, after) < 24  # plain uvicorn: +50-60 MiB (4 x 10 MB inflated)
        assert (await _chat_round_trip(server.ws_url("/ws?user=ann")))["type"] == "ack"
        assert "ws_max_size" not in server.log_text()  # asyncws run: no warning


@pytest.mark.slow
async def test_compression_bomb_through_the_gateway() -> None:
    with (
        RunServer("tests.apps.bomb_apps:upstream_app", ready_path="/stats") as upstream,
        RunServer(
            "tests.apps.bomb_apps:gateway_app",
            env={"ASYNCWS_TEST_UPSTREAM": f"ws://127.0.0.1:{upstream.port}"},
            ready_path="/stats",
        ) as gateway,
    ):
        before = memory(gateway.pid or 0)
        # client -> gateway: the gateway's uvicorn stops inflating at 1 MiB
        result = await compression_bomb(gateway.ws_url("/ws"), clients=4)
        assert result.close_codes == [1009] * 4
        # upstream -> gateway: the proxy's websockets client stops inflating at max_size
        async with connect(gateway.ws_url("/deflate"), open_timeout=5) as ws:
            with pytest.raises(Exception) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert getattr(getattr(closed.value, "rcvd", None), "code", None) == 1009
        after = memory(gateway.pid or 0)
        print(f"gateway peak RSS +{_growth(before, after):.1f} MiB")
        assert _growth(before, after) < 24
        async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
            relayed = (await http.get(f"{upstream.url}/stats")).json()
            assert relayed == {"frames": 0, "bytes": 0}  # nothing of the bombs went upstream
            last = (await http.get(f"{gateway.url}/stats")).json()
            assert last["code"] == 1009 and last["closed_by"] == "upstream"
        async with connect(gateway.ws_url("/ws"), open_timeout=5) as ws:  # still relays
            await ws.send("x" * 1000)
            assert await asyncio.wait_for(ws.recv(), 5) == "1000"


@pytest.mark.slow
async def test_ping_flood_is_pushed_back() -> None:
    with RunServer("examples.chat.app:app", ready_path="/asyncapi.json") as server:
        assert server.pid is not None
        before = memory(server.pid)
        flood = await asyncio.to_thread(
            ping_flood, server.port, "/ws?user=pinger", server.pid, pings=400_000, seconds=15
        )
        growth = _growth(before, flood.memory, "VmRSS")
        print(f"{flood.pings_sent} pings in {flood.seconds:.1f}s: RSS +{growth:.1f} MiB")
        assert flood.pushed_back  # the server stopped reading pings it could not answer
        assert growth < 16  # plain uvicorn: +35-50 MiB for the same 400,000 pings
        assert (await _chat_round_trip(server.ws_url("/ws?user=ann")))["type"] == "ack"


@pytest.mark.slow
async def test_slowloris_does_not_lock_out_a_real_client() -> None:
    with RunServer(
        "examples.chat.app:app",
        nofile=128,  # 160 sockets are more than the server can hold
        extra_args=["--header-timeout", "1"],
        ready_path="/asyncapi.json",
    ) as server:
        opened = await slowloris(server.port, "/ws?user=x", sockets=160)
        try:
            watch = asyncio.create_task(closed_by_server(opened, hold=6))
            waited = await real_client_gets_in(server.ws_url("/ws?user=ann"), deadline=8)
            closed = await watch
        finally:
            close_all(opened)
        print(f"real client in after {waited}s; {closed} of {len(opened)} slow sockets closed")
        assert waited is not None  # plain uvicorn: locked out for as long as the sockets stay
        assert closed == len(opened) == 160


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> bytes:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    await asyncio.wait_for(reader.readexactly(length), 5)
    return head.split(b"\r\n")[0]


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closes the connection within ``seconds`` (h11 may answer 400 first)."""
    try:
        await asyncio.wait_for(reader.read(), seconds)  # until EOF
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


@pytest.mark.slow
@pytest.mark.parametrize("http", ["HttpToolsProtocol", "H11Protocol"])
async def test_request_header_deadline_and_size(http: str) -> None:
    """The header deadline: on a new connection and between keep-alive requests, never
    during a request in progress; and the header size limit."""
    with RunServer(
        "tests.apps.bomb_apps:upstream_app",
        plain=True,  # plain uvicorn given the protocol classes, as docs/deployment.md says
        extra_args=["--http", f"asyncws._uvicorn:{http}"],
        env={"ASYNCWS_HEADER_TIMEOUT": "2", "ASYNCWS_MAX_HEADER_BYTES": "8192"},
        ready_path="/stats",
    ) as server:
        # a partial request on a new connection
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert await _closed_within(reader, 5)
        writer.close()
        # keep-alive: a request slower than the deadline completes, then the next request's
        # headers are due within the deadline again
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await _http(reader, writer, "/slow?seconds=2.5") == b"HTTP/1.1 200 OK"
        assert await _http(reader, writer, "/stats") == b"HTTP/1.1 200 OK"
        writer.write(b"GET /stats HTTP/1.1\r\n")
        assert await _closed_within(reader, 5)
        writer.close()
        # 10 KB of headers: over the 8 KiB limit, under h11's own 16 KiB, sent at once
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        with contextlib.suppress(ConnectionError):
            for i in range(10):
                writer.write(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000))
                await writer.drain()
        assert await _closed_within(reader, 1.5)  # before the 2 s deadline: the size did it
        writer.close()
        # a websocket upgrade is not cut by the deadline: it belongs to the ws protocol then
        async with connect(server.ws_url("/count"), open_timeout=5) as ws:
            await ws.send("x")
            assert await asyncio.wait_for(ws.recv(), 5) == "1"
            await ws.send("y" * 10)
            assert await asyncio.wait_for(ws.recv(), 5) == "10"
