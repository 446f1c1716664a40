"""Wildcard subscriptions: capped per connection, per user and per instance, and cheap to
tear down on Redis (each distinct one is a PSUBSCRIBE glob, refcounted by the broker)."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, Connection, Router
from asyncws.brokers.redis import RedisBroker
from asyncws.limits import Limits
from asyncws.testing import TestClient


class Note(BaseModel):
    text: str


def build(limits: Limits) -> tuple[AsyncWS, FastAPI]:
    router = Router()
    router.topic("t/{a}/{b}", Note)

    def authenticate(conn: Connection) -> dict[str, str]:
        return {"user": conn.websocket.query_params["user"]}

    ws = AsyncWS(
        title="wildcards", limits=limits, authenticate=authenticate, user_id=lambda p: p["user"]
    )
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return ws, app


FAST: dict[str, float] = {"rate": 10_000.0, "burst": 10_000}


async def test_wildcards_per_connection() -> None:
    _, app = build(Limits(max_wildcards=3, **FAST))  # type: ignore[arg-type]
    async with TestClient(app) as client, client.connect("/ws?user=ann") as ann:
        for i in range(3):
            assert (await ann.subscribe(f"t/{i}/+"))["type"] == "ack"
        refused = await ann.subscribe("t/3/+")
        assert refused["code"] == "too_many_subscriptions"
        assert "3 wildcard subscriptions per connection" in refused["message"]
        assert (await ann.subscribe("t/3/x"))["type"] == "ack"  # exact topics are not capped
        assert (await ann.subscribe("t/0/+"))["type"] == "ack"  # held already
        await ann.send_json({"type": "unsubscribe", "topic": "t/0/+", "id": 99})
        assert (await ann.receive_json())["type"] == "ack"
        assert (await ann.subscribe("t/3/+"))["type"] == "ack"  # room again


async def test_wildcards_per_user_and_per_instance() -> None:
    ws, app = build(
        Limits(max_wildcards=10, max_wildcards_per_user=4, max_wildcards_per_instance=6, **FAST)  # type: ignore[arg-type]
    )
    async with TestClient(app) as client:
        async with client.connect("/ws?user=ann") as ann1, client.connect("/ws?user=ann") as ann2:
            for i in range(3):
                assert (await ann1.subscribe(f"t/{i}/+"))["type"] == "ack"
            assert (await ann2.subscribe("t/0/+"))["type"] == "ack"  # not a new one for ann
            assert (await ann2.subscribe("t/3/+"))["type"] == "ack"  # ann's 4th
            refused = await ann2.subscribe("t/4/#")
            assert refused["code"] == "too_many_subscriptions"
            assert "4 distinct wildcard subscriptions per user" in refused["message"]
            async with client.connect("/ws?user=bob") as bob:
                assert (await bob.subscribe("t/4/+"))["type"] == "ack"
                assert (await bob.subscribe("t/5/+"))["type"] == "ack"  # 6 distinct: full
                assert ws.manager._wildcards == 6
                refused = await bob.subscribe("t/6/+")
                assert refused["code"] == "too_many_subscriptions"
                assert "too many distinct wildcard subscriptions" in refused["message"]
                assert (await bob.subscribe("t/0/+"))["type"] == "ack"  # held: no new pattern
        # ann and bob left: their patterns are gone, and so is the count
        assert ws.manager._wildcards == 0
        async with client.connect("/ws?user=carol") as carol:
            assert (await carol.subscribe("t/6/+"))["type"] == "ack"


async def _teardown_cpu(broker: RedisBroker, n: int, tag: str) -> float:
    """Process CPU seconds to unsubscribe ``n`` distinct wildcard patterns."""
    patterns = [f"app/t/{tag}/{i}/+" for i in range(n)]
    for pattern in patterns:
        await broker.subscribe(pattern)
    assert len(broker._globs) == n
    started = time.process_time()
    for pattern in patterns:
        await broker.unsubscribe(pattern)
    spent = time.process_time() - started
    assert broker._globs == {} and broker._patterns == set()
    return spent


@pytest.mark.redis
@pytest.mark.slow
async def test_pattern_teardown_is_linear(redis_url: str) -> None:
    broker = RedisBroker(redis_url)
    await broker.connect()
    try:
        small, large = 1000, 4000
        per_small = await _teardown_cpu(broker, small, "s") / small
        per_large = await _teardown_cpu(broker, large, "l") / large
        ratio = per_large / per_small
        print(
            f"teardown CPU per pattern: {per_small * 1e6:.0f} us at {small}, "
            f"{per_large * 1e6:.0f} us at {large} (ratio {ratio:.2f})"
        )
        # O(n) in all: the cost per pattern does not grow with the number held (the
        # quadratic version cost ~4x per pattern at 4x the patterns).
        assert ratio < 2.0
    finally:
        await broker.disconnect()


@pytest.mark.redis
async def test_shared_globs_are_refcounted(redis_url: str) -> None:
    broker = RedisBroker(redis_url)
    await broker.connect()
    try:
        await broker.subscribe("+")  # glob *
        await broker.subscribe("#")  # glob * as well
        await broker.subscribe("a/+")  # glob a/*
        await broker.subscribe("a/+")  # the same pattern twice: held once
        assert broker._globs == {"*": 2, "a/*": 1}
        await broker.unsubscribe("+")
        assert broker._globs == {"*": 1, "a/*": 1}  # '#' still needs '*' on Redis
        await broker.publish("zzz", b"still here")
        message = await broker.get_message(timeout=5.0)
        assert message is not None and message.data == b"still here"
        await broker.unsubscribe("#")
        await broker.unsubscribe("a/+")
        await broker.unsubscribe("never/+")  # never subscribed: nothing happens
        assert broker._globs == {} and broker._patterns == set()
    finally:
        await broker.disconnect()
