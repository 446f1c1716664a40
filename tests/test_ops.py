"""Metrics and health endpoints (asyncws.metrics, asyncws.ops), in one process.

The counters behind them are checked too: frames in/out by type, publish errors (and their
rate-limited warning; a client retrying during an outage is not closed for it), slow-consumer
drops and closes, and the publish-to-delivery histogram fed by the broker header's time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, BrokerError, BrokerState, Connection, InMemoryBroker, Router
from asyncws import WebSocketManager as Manager
from asyncws.manager import LATENCY_BUCKETS
from asyncws.metrics import METRIC_NAMES
from asyncws.ops import health_status, ops_router
from asyncws.testing import TestClient

pytest.importorskip("prometheus_client")


class Note(BaseModel):
    text: str


class FlakyBroker(InMemoryBroker):
    """A memory broker whose publishes fail while ``down`` is set."""

    down = False

    async def publish(self, channel: str, message: Any) -> None:
        if self.down:
            raise BrokerError("the broker is unavailable; the message was not published")
        await super().publish(channel, message)


def build(
    broker: InMemoryBroker | None = None, *, health_detail: bool = True
) -> tuple[FastAPI, AsyncWS]:
    router = Router()
    router.topic("chat/{room}", Note, client_publish=True)

    @router.operation("ping")
    async def ping() -> str:
        return "pong"

    manager = Manager("ops-test", broker=broker or InMemoryBroker())
    ws = AsyncWS(manager=manager)
    ws.include_router(router)
    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    app.include_router(ops_router(ws.manager, health_detail=health_detail))
    return app, ws


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[tuple[TestClient, httpx.AsyncClient]]:
    async with TestClient(app) as client:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield client, http


async def scrape(http: httpx.AsyncClient) -> dict[str, float]:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out = {}
    for line in response.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def test_metrics_expose_every_family_and_count_frames() -> None:
    app, ws = build()
    async with running(app) as (client, http), client.connect("/ws") as s:
        await s.send_json({"type": "subscribe", "topic": "chat/a", "id": 1})
        assert (await s.receive_json())["type"] == "ack"
        for i in range(3):
            await s.send_json(
                {"type": "publish", "topic": "chat/a", "id": 10 + i, "data": {"text": "x"}}
            )
            await s.receive_until(lambda f, i=i: f.get("id") == 10 + i)
        await s.send_json({"type": "ping", "id": 20})
        await s.receive_until(lambda f: f.get("id") == 20)
        await s.send_json({"type": "nope", "id": 21})
        await s.receive_until(lambda f: f.get("id") == 21)
        await s.send_text("not json")
        await s.receive_until(lambda f: f.get("type") == "error" and "id" not in f)

        text = (await http.get("/metrics")).text
        for name in METRIC_NAMES:
            assert f"# HELP {name}" in text, name
        m = await scrape(http)
        assert m['asyncws_connections{state="open"}'] == 1
        assert m["asyncws_subscription_patterns"] == 1
        assert m['asyncws_frames_received_total{type="subscribe"}'] == 1
        assert m['asyncws_frames_received_total{type="publish"}'] == 3
        assert m['asyncws_frames_received_total{type="ping"}'] == 1
        assert m['asyncws_frames_received_total{type="invalid"}'] == 2
        assert m['asyncws_frames_sent_total{type="ack"}'] == 4
        assert m['asyncws_frames_sent_total{type="reply"}'] == 1
        assert m['asyncws_frames_sent_total{type="error"}'] == 2
        assert m["asyncws_published_total"] == 3
        assert m["asyncws_deliveries_total"] == 3
        assert m["asyncws_broker_messages_total"] == 3
        assert m["asyncws_publish_errors_total"] == 0
        assert m["asyncws_broker_up"] == 1
        assert m['asyncws_broker_state{state="connected"}'] == 1
        assert m["asyncws_delivery_latency_seconds_count"] == 3
        assert m['asyncws_delivery_latency_seconds_bucket{le="+Inf"}'] == 3
        assert 0 <= m["asyncws_delivery_latency_seconds_sum"] < 1
        assert m["asyncws_accepting"] == 1
        assert "process_resident_memory_bytes" in m
        info = next(k for k in m if k.startswith("asyncws_instance_info{"))
        assert f'instance="{ws.manager.instance_id}"' in info


async def test_openmetrics_on_request() -> None:
    app, _ = build()
    async with running(app) as (_, http):
        response = await http.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        assert response.text.rstrip().endswith("# EOF")


async def test_health_follows_the_broker_and_shutdown() -> None:
    app, ws = build()
    async with running(app) as (_, http):
        response = await http.get("/health")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok" and body["broker"] == "connected"
        assert response.headers["cache-control"] == "no-store"

        ws.manager.broker.state = BrokerState.RECONNECTING  # what Redis' listener does
        response = await http.get("/health")
        assert response.status_code == 503
        assert response.json()["broker"] == "reconnecting"
        assert (await http.get("/health/live")).status_code == 200
        ws.manager.broker.state = BrokerState.CONNECTED
        assert (await http.get("/health")).status_code == 200
    # after shutdown: not accepting, broker closed
    status, body = health_status(ws.manager, detail=True)
    assert status == 503 and body["accepting"] is False


async def test_health_tells_only_its_status_by_default() -> None:
    """Anyone who reaches /health learns up or down, not the instance id or the counts."""
    app, ws = build(health_detail=False)
    async with running(app) as (client, http), client.connect("/ws"):
        response = await http.get("/health")
        assert response.status_code == 200 and response.json() == {"status": "ok"}
        ws.manager.broker.state = BrokerState.RECONNECTING
        response = await http.get("/health")
        assert response.status_code == 503 and response.json() == {"status": "unavailable"}
        ws.manager.broker.state = BrokerState.CONNECTED
    status, body = health_status(ws.manager)
    assert status == 503 and body == {"status": "unavailable"}
    assert set(health_status(ws.manager, detail=True)[1]) >= {"instance", "connections"}


def test_ops_router_without_metrics() -> None:
    _, ws = build()
    paths = {getattr(r, "path", None) for r in ops_router(ws.manager, metrics=False).routes}
    assert paths == {"/health", "/health/live"}


async def test_publish_errors_are_answered_counted_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = FlakyBroker()
    app, ws = build(broker)
    caplog.set_level(logging.WARNING, logger="asyncws.manager")
    async with running(app) as (client, http), client.connect("/ws") as s:
        broker.down = True
        for i in range(30):  # more than the strikes that close a client for bad frames
            await s.send_json(
                {"type": "publish", "topic": "chat/a", "id": i, "data": {"text": "x"}}
            )
            answer = await s.receive_until(lambda f, i=i: f.get("id") == i)
            assert answer["code"] == "broker_unavailable"
        # still open and served: broker errors are not the client's fault
        await s.send_json({"type": "ping", "id": "p"})
        assert (await s.receive_until(lambda f: f.get("id") == "p"))["data"] == "pong"
        m = await scrape(http)
        assert m["asyncws_publish_errors_total"] == 30
        assert ws.manager.stats["publish_errors"] == 30
        lost = [r for r in caplog.records if "broker publish failed" in r.getMessage()]
        assert len(lost) == 1  # loud, but one line per few seconds, not one per message

        broker.down = False
        await s.send_json({"type": "publish", "topic": "chat/a", "id": "ok", "data": {"text": "x"}})
        assert (await s.receive_until(lambda f: f.get("id") == "ok"))["type"] == "ack"
        lost = [r for r in caplog.records if "broker publish failed" in r.getMessage()]
        assert len(lost) == 2 and "publishing works again" in lost[-1].getMessage()
        assert "29 message(s)" in lost[-1].getMessage()


class _SilentSocket:
    """Enough of a websocket for a Connection whose peer never reads: `send` never completes,
    so the first message stays with the writer task and the rest fill the queue."""

    application_state = client_state = None

    def __init__(self) -> None:
        self._never = asyncio.Event()

    async def send(self, message: Any) -> None:
        await self._never.wait()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        return None


def _connection(manager: Manager, policy: Any) -> Connection:
    conn = Connection(_SilentSocket(), "c1", max_queue=2, slow_consumer=policy)  # type: ignore[arg-type]
    conn.manager = manager
    conn.state = conn.state.__class__.OPEN
    return conn


async def test_slow_consumer_drops_and_closes_are_counted() -> None:
    manager = Manager(broker=InMemoryBroker())
    dropper = _connection(manager, "drop_oldest")
    for i in range(6):  # 0 is stuck in the writer, 1..5 go through a queue of 2
        assert dropper.push({"type": "websocket.send", "text": str(i)})
    assert dropper.queued == 2
    assert manager.stats["slow_consumer_drops"] == 3
    dropper._mark_closed()  # stops its writer
    closer = _connection(manager, "close")
    for i in range(3):  # one in the writer, two queued
        assert closer.push({"type": "websocket.send", "text": str(i)})
    assert not closer.push({"type": "websocket.send", "text": "3"})
    assert manager.stats["slow_consumer_closes"] == 1
    await closer.wait_closed()


async def test_latency_histogram_and_header_versions() -> None:
    manager = Manager("ns", broker=InMemoryBroker())
    conn = _connection(manager, "drop_oldest")
    manager._register(conn)
    manager.subscribe_nowait(conn, "t/1")
    manager.bridge.dispatch("ns/t/t/1", b"aws1:old:1\n{}")  # an older publisher: no time, delivered
    assert manager.stats["deliveries"] == 1
    assert sum(manager.latency_counts) == 0
    sent = time.time_ns() // 1000 - 30_000  # published 30 ms ago
    manager.bridge.dispatch("ns/t/t/1", b"aws1:new:1:%d\n{}" % sent)
    assert manager.stats["deliveries"] == 2
    assert sum(manager.latency_counts) == 1
    assert manager.latency_counts[LATENCY_BUCKETS.index(0.05)] == 1
    assert 0.03 <= manager.latency_sum < 1.0
    manager.bridge.dispatch("ns/t/t/1", b"aws1:new:2:notatime\n{}")  # malformed: skipped
    assert manager.stats["deliveries"] == 2
    assert manager.stats["broker_malformed"] == 1
    conn._mark_closed()
