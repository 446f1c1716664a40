"""A client-requested connection id is unique across instances (claimed on the broker)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fastapi import FastAPI, WebSocket

from asyncws import InMemoryBroker, WebSocketManager
from asyncws.testing import TestClient


def seed_app(manager: WebSocketManager) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with manager:
            yield

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/ws/{conn_id}")
    async def endpoint(ws: WebSocket, conn_id: str) -> None:
        connection = await manager.new_connection(ws, conn_id)
        async for msg in connection.iter_json():
            await manager.receive(connection, msg)
        await manager.remove_connection(connection)

    return app


def broker_urls(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return f"memory://claims-{uuid.uuid4().hex}"
    if request.param == "cluster":
        cluster: str = request.getfixturevalue("cluster_url")
        return cluster
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("cluster", marks=pytest.mark.cluster),
    ]
)
def url(request: pytest.FixtureRequest) -> str:
    return broker_urls(request)


async def test_an_id_held_on_another_instance_is_not_given_out(url: str) -> None:
    a, b = WebSocketManager("claims", broker_url=url), WebSocketManager("claims", broker_url=url)
    async with TestClient(seed_app(a)) as ca, TestClient(seed_app(b)) as cb:
        async with ca.connect("/ws/alice") as first:
            async with cb.connect("/ws/alice") as second:  # same id, other instance
                frame = await second.receive_json()
                assert frame["type"] == "set_conn_id" and frame["conn_id"] != "alice"
                assert list(a.connections) == ["alice"]
                # a direct message to "alice" reaches the first client only
                await second.send_json({"type": "send_by_conn_id", "conn_id": "alice", "x": 1})
                assert await first.receive_json() == {"x": 1}
                await second.send_json(
                    {"type": "send_by_conn_id", "conn_id": frame["conn_id"], "y": 2}
                )
                assert await second.receive_json() == {"y": 2}  # nothing else came first
            # the first client leaves: its id is released once the manager has forgotten it
            for conn in list(a.connections.values()):
                await conn.close()
                await a.disconnect(conn)
        # once the first client left, its id is free again, on any instance
        async with cb.connect("/ws/alice") as again:
            await again.send_json({"type": "send_by_conn_id", "conn_id": "alice", "z": 3})
            assert await again.receive_json() == {"z": 3}
            assert "alice" in b.connections


async def test_claims_expire_when_their_owner_is_gone() -> None:
    broker = InMemoryBroker(f"claims-{uuid.uuid4().hex}")
    assert await broker.claim("k", "one", ttl=60)
    assert await broker.claim("k", "one", ttl=60)  # renewing is fine
    assert not await broker.claim("k", "two", ttl=60)
    await broker.release("k", "two")  # not the owner: no effect
    assert not await broker.claim("k", "two", ttl=60)
    await broker.release("k", "one")
    assert await broker.claim("k", "two", ttl=0.0)  # expires at once
    assert await broker.claim("k", "three", ttl=60)
