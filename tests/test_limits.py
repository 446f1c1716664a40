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


def test_limits_hold_the_queue_frame_and_subscription_bounds() -> None:
    limits = Limits()
    assert (limits.max_queue, limits.max_queue_bytes, limits.slow_consumer) == (
        2048,
        1 << 20,
        "close",
    )
    assert (limits.max_frame_size, limits.max_subscriptions) == (1 << 20, 256)
    for bad in (
        {"max_queue": 0},
        {"max_queue_bytes": 0},
        {"max_frame_size": 0},
        {"max_subscriptions": -1},
        {"slow_consumer": "block"},
    ):
        with pytest.raises(ValueError):
            Limits(**bad)  # type: ignore[arg-type]


def test_the_app_passes_its_limits_to_its_manager() -> None:
    limits = Limits(
        max_queue=8,
        max_queue_bytes=4096,
        slow_consumer="drop_oldest",
        max_frame_size=512,
        max_subscriptions=3,
    )
    manager = AsyncWS(title="folded", limits=limits).manager
    assert manager.limits is limits
    assert (manager.max_queue, manager.max_queue_bytes, manager.slow_consumer) == (
        8,
        4096,
        "drop_oldest",
    )
    assert (manager.max_frame_size, manager.max_subscriptions) == (512, 3)


def test_the_separate_limit_arguments_still_work_with_a_deprecation_warning() -> None:
    given = Limits(max_connections=7, max_frame_size=1000)
    with pytest.deprecated_call(match=r"AsyncWS\(max_frame_size=, max_subscriptions=\)"):
        app = AsyncWS(title="old", limits=given, max_frame_size=100, max_subscriptions=2)
    # the old arguments override the fields of the same name; the rest stays as given
    assert app.limits == Limits(max_connections=7, max_frame_size=100, max_subscriptions=2)
    assert (app.manager.max_frame_size, app.manager.max_subscriptions) == (100, 2)
    with pytest.deprecated_call(match="limits=Limits"):
        app = AsyncWS(title="old", max_queue=4, max_queue_bytes=64, slow_consumer="drop_oldest")
    assert (app.limits.max_queue, app.limits.max_queue_bytes) == (4, 64)
    assert app.manager.slow_consumer == "drop_oldest"


def test_the_deprecation_warning_points_at_the_caller() -> None:
    with pytest.deprecated_call() as caught:
        AsyncWS(title="old", max_queue=4)
    assert [w.filename for w in caught] == [__file__]


def test_no_warning_without_the_old_arguments() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert AsyncWS(title="new", limits=Limits(max_queue=4)).manager.max_queue == 4


async def test_a_deprecated_frame_size_argument_still_closes_with_1009() -> None:
    router = Router()

    @router.operation("ping")
    async def ping(msg: Ping) -> Ping:
        return msg

    with pytest.deprecated_call():
        ws = AsyncWS(title="old", max_frame_size=64)
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as client, client.connect("/ws") as s:
        assert (await s.call("ping", {"n": 1}))["data"] == {"n": 1}
        await s.send_json({"type": "ping", "data": {"n": 2}, "pad": "x" * 64})
        assert await s.expect_closed() == 1009
