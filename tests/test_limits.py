"""Limits: frame rate, connections per instance and per user, handshake and idle timeouts."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, Connection, Router
from asyncws.limits import Limits, TokenBucket
from asyncws.testing import TestClient, WebSocketDenied


class Ping(BaseModel):
    n: int


def build(limits: Limits, authenticate: object = None) -> tuple[FastAPI, AsyncWS]:
    router = Router()

    @router.operation("ping")
    async def ping(msg: Ping) -> Ping:
        return msg

    ws = AsyncWS(
        title="limits",
        limits=limits,
        authenticate=authenticate,  # type: ignore[arg-type]
        user_id=(lambda p: p["user"]) if authenticate else None,
    )
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return app, ws


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    t0 = bucket._last
    assert [bucket.take(t0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(t0 + 0.05) is False  # half a token
    assert bucket.take(t0 + 0.11) is True  # a whole token after 1/rate seconds
    assert bucket.take(t0 + 100) is True  # never more than burst
    assert [bucket.take(t0 + 100) for _ in range(3)] == [True, True, False]


def test_limits_validate() -> None:
    with pytest.raises(ValueError):
        Limits(rate=0)


async def test_flood_gets_rate_limited_frames_then_1008() -> None:
    app, _ = build(Limits(rate=1, burst=5, rate_strikes=3))
    async with TestClient(app) as client, client.connect("/ws") as ws:
        for n in range(5):  # the burst passes
            assert (await ws.call("ping", {"n": n}))["type"] == "reply"
        for n in range(3):  # then each frame over the rate is answered, not handled
            frame = await ws.call("ping", {"n": 100 + n})
            assert frame["code"] == "rate_limited"
            assert frame["id"] is not None
        await ws.send_json({"type": "ping", "data": {"n": 0}})
        assert await ws.expect_closed() == 1008


async def test_max_connections_per_instance_refuses_at_the_handshake() -> None:
    app, ws_app = build(Limits(max_connections=2))
    async with TestClient(app) as client:
        async with client.connect("/ws"), client.connect("/ws"):
            with pytest.raises(WebSocketDenied) as denied:
                await client.websocket_connect("/ws")
            assert denied.value.status == 503  # capacity: try again later, not "forbidden"
            assert len(ws_app.manager.connections) == 2
        async with client.connect("/ws") as again:  # room again once they left
            assert (await again.call("ping", {"n": 1}))["data"] == {"n": 1}


async def test_max_connections_per_user() -> None:
    def auth(conn: Connection) -> dict[str, str]:
        return {"user": conn.websocket.query_params["user"]}

    app, _ = build(Limits(max_connections_per_user=2), authenticate=auth)
    async with (
        TestClient(app) as client,
        client.connect("/ws?user=ann"),
        client.connect("/ws?user=ann"),
    ):
        with pytest.raises(WebSocketDenied):
            await client.websocket_connect("/ws?user=ann")
        async with client.connect("/ws?user=bob") as bob:  # other users are not affected
            assert (await bob.call("ping", {"n": 2}))["type"] == "reply"


async def test_handshake_timeout_refuses() -> None:
    never = asyncio.Event()

    async def slow_auth() -> dict[str, str]:
        await never.wait()
        return {"user": "x"}

    app, _ = build(Limits(handshake_timeout=0.2), authenticate=slow_auth)
    async with TestClient(app) as client:
        with pytest.raises(WebSocketDenied) as denied:
            await client.websocket_connect("/ws")
        assert denied.value.status == 403


async def test_idle_timeout_closes_quiet_connections() -> None:
    app, _ = build(Limits(idle_timeout=0.2))
    async with TestClient(app) as client, client.connect("/ws") as ws:
        assert (await ws.call("ping", {"n": 1}))["type"] == "reply"
        assert await ws.expect_closed(timeout=3) == 1000
