"""asyncws.testing: the in-memory test client, tested against small raw ASGI/Starlette apps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from asyncws.testing import TestClient, WebSocketClosed, WebSocketDenied, WebSocketSession

lifespan_events: list[str] = []


async def echo(websocket: WebSocket) -> None:
    """Echoes frames; a few commands make it misbehave on purpose."""
    protocols = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=protocols[0] if protocols else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await websocket.send_text(json.dumps({"bytes": len(message["bytes"])}))
                continue
            frame = json.loads(message["text"])
            command = frame.get("do")
            if command == "close":
                await websocket.close(4000, "bye")
                return
            if command == "info":
                await websocket.send_json(
                    {
                        "path": websocket.url.path,
                        "query": websocket.url.query,
                        "header": websocket.headers.get("x-h"),
                        "state": websocket.scope["state"].get("started"),
                    }
                )
                continue
            if command == "burst":  # unrelated frames first, then the answer
                await websocket.send_json({"topic": "t/1", "n": 1})
                await websocket.send_json({"type": "ack", "id": 999})
                await websocket.send_json({"topic": "t/2", "n": 2})
            if command == "bytes":
                await websocket.send_bytes(b"\x00")
                continue
            if command == "silence":
                continue
            if "id" in frame:
                await websocket.send_json({"type": "reply", "id": frame["id"], "data": frame})
    except WebSocketDisconnect:
        return


async def refuse(websocket: WebSocket) -> None:
    await websocket.close(1008)


async def http_refuse(websocket: WebSocket) -> None:
    from starlette.responses import PlainTextResponse

    await websocket.send_denial_response(PlainTextResponse("nope", status_code=401))


async def ignore(websocket: WebSocket) -> None:
    return  # neither accepts nor closes: an ASGI server answers 403


async def crash(websocket: WebSocket) -> None:
    raise RuntimeError("the handshake crashed")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    lifespan_events.append("startup")
    yield {"started": True}
    lifespan_events.append("shutdown")


app = Starlette(
    routes=[
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/refuse", refuse),
        WebSocketRoute("/http-refuse", http_refuse),
        WebSocketRoute("/crash", crash),
        WebSocketRoute("/ignore", ignore),
    ],
    lifespan=lifespan,
)


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(app, timeout=2) as c:
        yield c


@pytest.fixture
async def ws(client: TestClient) -> AsyncIterator[WebSocketSession]:
    async with client.connect("/echo") as session:
        yield session


async def test_the_lifespan_runs_around_the_client() -> None:
    lifespan_events.clear()
    async with TestClient(app) as c:
        assert lifespan_events == ["startup"]
        async with c.connect("/echo") as s:
            await s.send_json({"do": "info"})
            assert (await s.receive_json())["state"] is True  # lifespan state reaches scopes
    assert lifespan_events == ["startup", "shutdown"]


async def test_without_lifespan() -> None:
    lifespan_events.clear()
    async with TestClient(app, lifespan=False) as c, c.connect("/echo") as s:
        assert (await s.call("x"))["type"] == "reply"
    assert lifespan_events == []


async def test_a_failing_lifespan_raises() -> None:
    @asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("cannot start")
        yield

    with pytest.raises(RuntimeError, match="cannot start"):
        async with TestClient(Starlette(lifespan=broken)):
            pass


async def test_path_query_headers_and_subprotocols(client: TestClient) -> None:
    async with client.connect(
        "/echo?a=1&b=2", headers={"X-H": "v"}, subprotocols=["p1", "p2"]
    ) as s:
        assert s.accepted_subprotocol == "p1"
        await s.send_json({"do": "info"})
        info = await s.receive_json()
        assert info == {"path": "/echo", "query": "a=1&b=2", "header": "v", "state": True}
    async with client.connect("/echo", headers=[("x-h", "list")]) as s:
        await s.send_json({"do": "info"})
        assert (await s.receive_json())["header"] == "list"


async def test_send_and_receive(ws: WebSocketSession) -> None:
    await ws.send_text('{"id": 1}')
    assert json.loads(await ws.receive_text()) == {"type": "reply", "id": 1, "data": {"id": 1}}
    await ws.send_bytes(b"abc")
    assert await ws.receive_json() == {"bytes": 3}


async def test_call_numbers_frames_and_skips_unrelated_ones(ws: WebSocketSession) -> None:
    answer = await ws.call("op", {"k": "v"}, do="burst")
    assert answer == {
        "type": "reply",
        "id": 1,
        "data": {"type": "op", "id": 1, "data": {"k": "v"}, "do": "burst"},
    }
    # the skipped frames are kept, in order
    assert await ws.receive_event() == {"topic": "t/1", "n": 1}
    assert await ws.receive_json() == {"type": "ack", "id": 999}
    assert await ws.receive_event("t/2") == {"topic": "t/2", "n": 2}
    assert (await ws.call("op"))["id"] == 2


async def test_call_without_data_sends_no_data_field(ws: WebSocketSession) -> None:
    assert (await ws.call("op"))["data"] == {"type": "op", "id": 1}


async def test_subscribe_and_unsubscribe_helpers(ws: WebSocketSession) -> None:
    assert (await ws.subscribe("a/b"))["data"] == {"type": "subscribe", "id": 1, "topic": "a/b"}
    assert (await ws.unsubscribe("a/b"))["data"] == {
        "type": "unsubscribe",
        "id": 2,
        "topic": "a/b",
    }


async def test_receive_event_filters_by_topic(ws: WebSocketSession) -> None:
    await ws.send_json({"do": "burst"})
    assert (await ws.receive_event("t/2"))["n"] == 2
    assert (await ws.receive_event())["n"] == 1


async def test_receive_times_out(ws: WebSocketSession) -> None:
    await ws.send_json({"do": "silence"})
    with pytest.raises(TimeoutError):
        await ws.receive_json(timeout=0.05)
    with pytest.raises(TimeoutError):
        await ws.call("x", do="silence", timeout=0.05)
    with pytest.raises(TimeoutError):
        await ws.receive_until(lambda f: False, timeout=0.05)


async def test_receive_until_keeps_what_it_skipped(ws: WebSocketSession) -> None:
    await ws.send_json({"do": "burst"})
    with pytest.raises(TimeoutError):
        await ws.receive_until(lambda f: f.get("n") == 3, timeout=0.1)
    assert [await ws.receive_json() for _ in range(3)] == [
        {"topic": "t/1", "n": 1},
        {"type": "ack", "id": 999},
        {"topic": "t/2", "n": 2},
    ]


async def test_a_binary_frame_from_the_app_is_an_assertion(ws: WebSocketSession) -> None:
    await ws.send_json({"do": "bytes"})
    with pytest.raises(AssertionError, match="bytes"):
        await ws.receive_text()


async def test_the_app_closing_raises_websocket_closed(ws: WebSocketSession) -> None:
    await ws.send_json({"do": "close"})
    with pytest.raises(WebSocketClosed) as closed:
        await ws.receive_json()
    assert closed.value.code == 4000 and closed.value.reason == "bye"
    assert ws.close_code == 4000


async def test_expect_closed(ws: WebSocketSession) -> None:
    await ws.send_json({"do": "burst"})
    await ws.send_json({"do": "close"})
    assert await ws.expect_closed() == 4000


async def test_refused_handshakes(client: TestClient) -> None:
    with pytest.raises(WebSocketDenied) as denied:
        await client.websocket_connect("/refuse")
    assert denied.value.status == 403
    with pytest.raises(WebSocketDenied) as denied:
        await client.websocket_connect("/http-refuse")
    assert denied.value.status == 401 and denied.value.body == b"nope"
    with pytest.raises(WebSocketDenied):
        await client.websocket_connect("/no-such-route")
    with pytest.raises(WebSocketDenied) as denied:
        await client.websocket_connect("/ignore")
    assert denied.value.status == 403


async def test_an_app_crashing_in_the_handshake_raises_its_exception(client: TestClient) -> None:
    with pytest.raises(RuntimeError, match="the handshake crashed"):
        await client.websocket_connect("/crash")


async def test_closing_twice_is_fine(client: TestClient) -> None:
    session = await client.websocket_connect("/echo")
    await session.close()
    await session.close()
    async with session:  # the context manager closes too
        pass


async def test_many_sessions_at_once(client: TestClient) -> None:
    sessions = [await client.websocket_connect("/echo") for _ in range(10)]
    answers = await asyncio.gather(*(s.call("n", {"i": i}) for i, s in enumerate(sessions)))
    assert [a["data"]["data"]["i"] for a in answers] == list(range(10))
    for s in sessions:
        await s.close()


async def test_receiving_after_the_app_ended_fails_at_once(ws: WebSocketSession) -> None:
    await ws.send_json({"do": "close"})
    assert await ws.expect_closed() == 4000
    for _ in range(3):  # no waiting for a timeout: the app is gone
        with pytest.raises(WebSocketClosed):
            await ws.receive_json(timeout=30)


async def test_a_zero_timeout_is_a_zero_timeout(ws: WebSocketSession) -> None:
    with pytest.raises(TimeoutError):
        await ws.receive_json(timeout=0)
