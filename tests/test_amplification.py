"""No amplification through asyncws' own frames (issue 18, finding 2).

One seed-protocol frame ``{"type":"send_by_conn_id","conn_id":["sink"]*1000,"text":"A"*900000}``
(about 1 KB on the wire with permessage-deflate) used to become 1000 broker messages of
900 KB: ~900 MB into Redis, enough for Redis to drop the pub/sub link of the instance that
holds ``sink`` (client output buffer limit) and for a bystander there to lose messages.
Now ids are deduplicated and capped (``Limits.max_recipients``), each recipient counts
against the frame rate, and recipients x payload bytes are bounded per frame and per second
(`asyncws.limits.FanoutBudget`). The distributed test runs two uvicorn instances of the seed
app on a private Redis and reads Redis' ``total_net_input_bytes`` before and after.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI, WebSocket
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect

from asyncws import AsyncWS, Router, WebSocketManager
from asyncws.exceptions import ProtocolError, RateLimitedError
from asyncws.limits import FanoutBudget, Limits
from asyncws.testing import TestClient
from tests.servers import UvicornServer

WAIT = 30.0
PAYLOAD = "A" * 900_000
BYSTANDER_MESSAGES = 300
MIB = 1 << 20


class Blob(BaseModel):
    body: str


def attack(ids: list[str]) -> str:
    return json.dumps({"type": "send_by_conn_id", "conn_id": ids, "text": PAYLOAD})


def redis_input_bytes(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_net_input_bytes"])
    finally:
        client.close()


async def answers_until_ack(ws: ClientConnection, ack_id: int) -> list[dict[str, Any]]:
    """Every frame before the ack of ``ack_id`` (frames are handled in order, so the ack
    says every frame sent before it was handled)."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "ack" and frame.get("id") == ack_id:
                return seen
            seen.append(frame)


# -- the pure budget ----------------------------------------------------------------------


def test_fanout_budget_caps_recipients_bytes_and_rate() -> None:
    limits = Limits(rate=10, burst=20, max_fanout_bytes=1000, fanout_bytes_rate=2000)
    budget = FanoutBudget(limits)
    t = time.monotonic()  # the buckets start full now
    with pytest.raises(ProtocolError):
        budget.charge(17, 1, now=t)  # over max_recipients (16)
    with pytest.raises(RateLimitedError):
        budget.charge(2, 501, now=t)  # 1002 bytes in one frame
    budget.charge(16, 10, count_recipients=True, now=t)  # 16 of 20 recipient tokens
    with pytest.raises(RateLimitedError):
        budget.charge(5, 10, count_recipients=True, now=t)  # 5 more: over the burst
    budget.charge(5, 10, count_recipients=True, now=t + 0.2)  # 2 tokens back in 0.2 s
    budget.charge(1, 1000, now=t + 0.2)
    with pytest.raises(RateLimitedError):  # the bytes of this second are spent
        budget.charge(1, 1000, now=t + 0.2)
    budget.charge(1, 1000, now=t + 1.0)  # refilled at 2000 bytes/s


# -- in process: the seed dialect and the declarative publish -------------------------------


def seed_app(manager: WebSocketManager) -> FastAPI:
    app = FastAPI()

    @app.websocket("/ws/{conn_id}")
    async def endpoint(websocket: WebSocket, conn_id: str) -> None:
        connection = await manager.new_connection(websocket, conn_id)
        async for message in connection.iter_json():
            await manager.receive(connection, message)
        await manager.remove_connection(connection)

    return app


async def test_seed_send_by_conn_id_is_deduplicated_capped_and_rate_counted() -> None:
    manager = WebSocketManager("amp-seed")
    published: list[str] = []
    real = manager.bridge.publish

    async def spy(channel: str, text: str, route: str | None = None) -> None:
        published.append(channel)
        await real(channel, text, route)

    manager.bridge.publish = spy  # type: ignore[method-assign]
    async with (
        manager,
        TestClient(seed_app(manager)) as client,
        client.connect("/ws/sink") as sink,
        client.connect("/ws/attacker") as ws,
    ):
        await ws.send_json({"type": "send_by_conn_id", "conn_id": ["sink"] * 1000, "x": 1})
        assert (await sink.receive_json()) == {"x": 1}  # once
        assert len(published) == 1
        many = [f"c{i}" for i in range(17)]
        await ws.send_json({"type": "send_by_conn_id", "conn_id": many, "id": 7})
        error = await ws.receive_json()
        assert error["code"] == "invalid_frame" and "16" in error["message"]
        assert len(published) == 1
        # each recipient is a frame of the rate: 100 tokens of burst = 6 frames of 16
        sent_before = len(published)
        codes = []
        for n in range(8):
            await ws.send_json({"type": "send_by_conn_id", "conn_id": many[:16], "id": n, "x": 1})
            await ws.send_json({"type": "subscribe", "topic": "probe", "id": 100 + n})
            frame = await ws.receive_json()
            codes.append(frame.get("code", frame["type"]))
            if frame["type"] == "error":
                assert (await ws.receive_json())["type"] == "ack"
        assert codes[:6] == ["ack"] * 6 and "rate_limited" in codes[6:]
        assert len(published) - sent_before == 16 * codes.count("ack")


async def test_declarative_publish_frames_are_byte_budgeted() -> None:
    router = Router()
    router.topic("blobs/{name}", Blob, client_publish=True)
    ws_app = AsyncWS(limits=Limits(max_fanout_bytes=MIB, fanout_bytes_rate=2 * MIB))
    ws_app.include_router(router)
    app = FastAPI(lifespan=ws_app.lifespan)
    app.include_router(ws_app.asgi_router)
    async with TestClient(app) as client, client.connect("/ws") as ws:
        answers = []
        for n in range(4):
            data = {"body": "B" * 700_000}
            frame = {"type": "publish", "topic": "blobs/a", "id": n, "data": data}
            await ws.send_json(frame)
            answers.append((await ws.receive_json()).get("code", "ack"))
        assert answers[:2] == ["ack", "ack"] and answers[3] == "rate_limited"


# -- two instances on a real Redis ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.redis
async def test_one_frame_cannot_flood_the_broker_or_starve_a_bystander(redis_url: str) -> None:
    env = {"ASYNCWS_BROKER_URL": redis_url, "ASYNCWS_BROKER_CHANNEL": "amp"}
    app = "tests.apps.seed_app:app"
    with (
        UvicornServer(app, env=env, ready_path="/health") as a,
        UvicornServer(app, env=env, ready_path="/health") as b,
    ):
        async with (
            connect(b.ws_url("/ws/sink"), max_size=None) as _sink,  # never reads
            connect(b.ws_url("/ws/bystander")) as bystander,
            connect(a.ws_url("/ws/attacker"), compression="deflate") as attacker,
            httpx.AsyncClient(trust_env=False, timeout=WAIT) as http,
        ):
            await bystander.send(json.dumps({"type": "subscribe", "topic": "news", "id": 1}))
            assert (await answers_until_ack(bystander, 1)) == []
            before = redis_input_bytes(redis_url)
            start = time.monotonic()
            for _ in range(3):
                await attacker.send(attack(["sink"] * 1000))
            await attacker.send(attack([f"c{i}" for i in range(16)]))  # 14 MB at once
            await attacker.send(json.dumps({"type": "subscribe", "topic": "x", "id": 99}))

            async def publish_news() -> None:
                for n in range(BYSTANDER_MESSAGES):
                    response = await http.post(f"{a.url}/publish/news", json={"n": n})
                    assert response.status_code == 200, response.text

            publisher = asyncio.create_task(publish_news())
            answers = await answers_until_ack(attacker, 99)
            await publisher
            got: set[int] = set()
            try:
                async with asyncio.timeout(WAIT):
                    while len(got) < BYSTANDER_MESSAGES:
                        got.add(json.loads(await bystander.recv())["n"])
            except TimeoutError:
                pass
            elapsed = time.monotonic() - start
            broker_bytes = redis_input_bytes(redis_url) - before
    print(
        f"\nbroker input {broker_bytes / MIB:.1f} MiB for 4 attack frames in {elapsed:.1f} s; "
        f"bystander lost {BYSTANDER_MESSAGES - len(got)} of {BYSTANDER_MESSAGES}"
    )
    assert [f.get("code") for f in answers] == ["rate_limited"]  # the 16 x 900 KB frame
    # 3 x 900 KB (one recipient each), the bystander's news, commands: nothing like 2.7 GB
    assert broker_bytes < 4 * MIB
    assert got == set(range(BYSTANDER_MESSAGES))
